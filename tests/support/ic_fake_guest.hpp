// SPDX-License-Identifier: MIT
// IcFakePort + IcFakeGuest: an IcChannel's ChannelPort that queues what the host sends, and a
// guest that answers like Linux 6.1 hv_utils (vmbus_prep_negotiate_resp in channel_mgmt.c,
// the heartbeat/shutdown callbacks in hv_util.c), with knobs to misbehave. Used by the IC unit
// tests and the IC fuzz target.
#pragma once

#include <cstring>
#include <deque>
#include <functional>
#include <optional>
#include <vector>

#include "devices/ic/ic_channel.hpp"

namespace vmm::test {

class IcFakePort final : public vmbus::ChannelPort {
public:
    struct Sent {
        std::vector<std::byte> payload;
        std::uint64_t transaction_id;
    };
    Result<void> send_packet(std::span<std::byte const> payload, std::uint64_t transaction_id) override
    {
        if (busy)
            return fail(Errc::Busy, "ring full");
        sent.push_back({ { payload.begin(), payload.end() }, transaction_id });
        ++sent_total;
        return {};
    }
    Result<void> send(vmbus::OutboundPacket const& packet) override
    {
        if (packet.type != vmbus::VmPacketType::VM_PKT_DATA_INBAND || !packet.header.empty())
            return fail(Errc::Unsupported, "IC fake port: inband packets only");
        return send_packet(packet.payload, packet.transaction_id);
    }
    std::uint64_t send_space_bytes() const override { return busy ? 0 : 8192; }
    Result<vmbus::GpadlView> acquire_gpadl(std::uint32_t id) override { return fail(Errc::Unsupported, "no GPADLs", id); }
    void release_gpadl(std::uint32_t) override { }

    bool busy = false;
    std::deque<Sent> sent;
    std::uint64_t sent_total = 0; // Packets ever accepted: the newest sent_total - n are sent's last n.
};

// hv_utils' side of one IC channel.
class IcFakeGuest {
public:
    IcFakeGuest(ic::IcChannel& device, IcFakePort& port, std::vector<ic::IcVersion> service_versions)
        : m_device(device)
        , m_port(port)
        , m_service_versions(std::move(service_versions))
    {
    }
    // Answers every queued host message (as hv_util's channel callback does); returns how many.
    std::size_t answer_all()
    {
        std::size_t answered = 0;
        while (!m_port.sent.empty()) {
            auto message = std::move(m_port.sent.front());
            m_port.sent.pop_front();
            ++received;
            if (silent || !answer(message.payload))
                continue;
            deliver(message.payload, message.transaction_id);
            if (answer_twice)
                deliver(message.payload, message.transaction_id);
            ++answered;
        }
        return answered;
    }
    void deliver(std::vector<std::byte> const& payload, std::uint64_t transaction_id,
        std::uint16_t flags = 0)
    {
        m_device.on_packet(vmbus::InboundPacket { vmbus::VmPacketType::VM_PKT_DATA_INBAND, flags, transaction_id, {}, payload });
    }
    static ic::IcMessageHeader header_of(std::vector<std::byte> const& payload)
    {
        return wire_from<ic::IcMessageHeader>(std::span<std::byte const>(payload).subspan(sizeof(ic::PipeHeader)));
    }

    bool silent = false;       // Never answers.
    bool answer_twice = false; // Delivers every answer twice.
    bool wrong_sequence = false;
    std::uint32_t shutdown_status = ic::HV_S_OK;
    std::uint64_t received = 0;
    std::uint32_t last_shutdown_flags = 0xffff'ffff;
    // Optional: answers a service request (not the negotiation) in place, `body` being what
    // follows the ICMSG header, and returns the icmsg status; nullopt leaves it unanswered.
    std::function<std::optional<std::uint32_t>(ic::IcMessageHeader const&, std::span<std::byte>)> service_answer;

private:
    bool answer(std::vector<std::byte>& payload)
    {
        if (payload.size() < ic::ICMSG_HEADER_BYTES)
            return true;
        auto header = header_of(payload);
        auto body = std::span<std::byte>(payload).subspan(ic::ICMSG_HEADER_BYTES);
        if (header.type == static_cast<std::uint16_t>(ic::IcMessageType::Negotiate))
            negotiate(header, body);
        else if (service_answer) {
            auto status = service_answer(header, body);
            if (!status)
                return false;
            header.set_status(*status);
        }
        else if (header.type == static_cast<std::uint16_t>(ic::IcMessageType::Heartbeat) && body.size() >= 8) {
            std::uint64_t seq = 0;
            std::memcpy(&seq, body.data(), 8);
            seq += wrong_sequence ? 5 : 1;
            std::memcpy(body.data(), &seq, 8);
        } else if (header.type == static_cast<std::uint16_t>(ic::IcMessageType::Shutdown) && body.size() >= 12) {
            std::memcpy(&last_shutdown_flags, body.data() + 8, 4);
            header.set_status(shutdown_status);
        }
        header.flags = ic::ICMSGHDRFLAG_TRANSACTION | ic::ICMSGHDRFLAG_RESPONSE;
        std::memcpy(payload.data() + sizeof(ic::PipeHeader), &header, sizeof(header));
        return true;
    }
    // vmbus_prep_negotiate_resp(): first of our framework versions the host offers, then first
    // of our service versions; counts become 1/1 (or 0/0 on failure).
    void negotiate(ic::IcMessageHeader& header, std::span<std::byte> body)
    {
        header.size = 0x10;
        if (body.size() < sizeof(ic::IcNegotiate))
            return;
        auto negotiate = wire_from<ic::IcNegotiate>(body);
        auto versions = [&](std::size_t index) {
            return wire_from<ic::IcVersion>(body.subspan(sizeof(ic::IcNegotiate) + index * 4));
        };
        std::size_t offered = negotiate.framework_count + negotiate.message_count;
        if (body.size() < sizeof(ic::IcNegotiate) + offered * 4 || offered < 2)
            return;
        std::optional<ic::IcVersion> framework, service;
        for (auto mine : { ic::IcVersion { 3, 0 }, ic::IcVersion { 1, 0 } }) {
            for (std::size_t j = 0; j < negotiate.framework_count && !framework; ++j)
                if (versions(j) == mine)
                    framework = mine;
        }
        for (auto mine : m_service_versions) {
            for (std::size_t j = negotiate.framework_count; j < offered && !service; ++j)
                if (versions(j) == mine)
                    service = mine;
        }
        ic::IcNegotiate reply { static_cast<std::uint16_t>(framework && service ? 1 : 0),
            static_cast<std::uint16_t>(framework && service ? 1 : 0), 0 };
        std::memcpy(body.data(), &reply, sizeof(reply));
        auto f = framework.value_or(ic::IcVersion {});
        auto s = service.value_or(ic::IcVersion {});
        std::memcpy(body.data() + 8, &f, 4);
        std::memcpy(body.data() + 12, &s, 4);
    }

    ic::IcChannel& m_device;
    IcFakePort& m_port;
    std::vector<ic::IcVersion> m_service_versions;
};

} // namespace vmm::test

// SPDX-License-Identifier: MIT
// NetvscGuest: plays Linux 6.1's hv_netvsc against a NetvscDevice on the real VMBus host over
// fake guest memory (drivers/net/hyperv/netvsc.c, rndis_filter.c): NVSP INIT newest version
// first, NDIS version and config, receive and send buffers as GPADLs, RNDIS control messages
// in one GPA-direct page (like rndis_filter_send_request()), data from send-buffer sections
// or pages, and the receive path (transfer-page packets read out of the receive buffer, then
// completed). Used by the unit tests and the fuzz target.
#pragma once

#include <cstring>
#include <optional>
#include <vector>

#include "devices/netvsc/netvsc_device.hpp"
#include "devices/vmbus/connection.hpp"
#include "devices/vmbus/packet.hpp"
#include "tests/support/vmbus_fakes.hpp"
#include "tests/support/vmbus_test_guest.hpp"

namespace vmm::test {

class NetvscGuest {
public:
    static constexpr std::uint32_t RECV_GPADL = 0x100;
    static constexpr std::uint32_t SEND_GPADL = 0x101;
    static constexpr std::uint16_t RECV_ID = 0xcafe; // NETVSC_RECEIVE_BUFFER_ID
    static constexpr std::uint32_t RING_PAGES = 14;
    static constexpr std::uint32_t RECV_PAGES = 8;   // 32 KiB: 18 sub-allocations of 1728.
    static constexpr std::uint32_t SEND_PAGES = 3;   // 12 KiB: 2 sections of 6144.
    // A page of low RAM none of the scattered page sets uses: RNDIS requests are built here.
    static constexpr std::uint64_t REQUEST_GPN = 4;

    NetvscGuest(TestVmbusGuest& guest, FakeGuestMemory& memory)
        : m_guest(guest)
        , m_memory(memory)
    {
    }

    vmbus::OfferChannel offer {};
    std::vector<mem::Gpn> ring_pages = TestVmbusGuest::scattered_pages(RING_PAGES);
    std::vector<mem::Gpn> recv_pages = TestVmbusGuest::scattered_pages(RECV_PAGES, 1);
    std::vector<mem::Gpn> send_pages = TestVmbusGuest::scattered_pages(SEND_PAGES, 2);
    std::uint64_t next_tid = 1;

    // ---- NVSP ----
    template<Wire T>
    bool send_nvsp(T const& message, bool completion = true, std::uint64_t tid = 0)
    {
        std::array<std::byte, netvsc::NVSP_MESSAGE_BYTES> bytes {};
        std::memcpy(bytes.data(), &message, sizeof(T));
        return m_guest.write_packet(bytes, tid ? tid : next_tid++,
            static_cast<std::uint16_t>(vmbus::VmPacketType::VM_PKT_DATA_INBAND), {},
            completion ? vmbus::VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED : 0);
    }
    // The next host packet, as the guest's ring reader sees it.
    std::optional<TestVmbusGuest::FullPacket> next() { return m_guest.read_full_packet(); }
    template<Wire T>
    static T payload_as(TestVmbusGuest::FullPacket const& packet)
    {
        T value {};
        std::memcpy(&value, packet.payload.data(), std::min(sizeof(T), packet.payload.size()));
        return value;
    }
    // netvsc_connect_vsp(): versions newest first; returns the accepted one or 0.
    std::uint32_t negotiate(std::span<std::uint32_t const> versions)
    {
        for (auto version : versions) {
            send_nvsp(netvsc::NvspInit { netvsc::NVSP_MSG_TYPE_INIT, version, version });
            auto reply = next();
            if (!reply)
                return 0;
            auto init = payload_as<netvsc::NvspInitComplete>(*reply);
            if (init.status == netvsc::NVSP_STAT_SUCCESS)
                return version;
        }
        return 0;
    }
    // The whole Linux bring-up up to a usable RNDIS adapter (filter set).
    bool bring_up_linux(vmbus::VmbusHost& host, vmbus::ChannelDevice& device);

    // ---- RNDIS ----
    // An RNDIS message of `type` with `body` (after the 8-byte header) and `info` behind it.
    static std::vector<std::byte> rndis(std::uint32_t type, std::span<std::byte const> body,
        std::span<std::byte const> info = {})
    {
        std::vector<std::byte> out(8 + body.size() + info.size());
        std::uint32_t header[2] = { type, static_cast<std::uint32_t>(out.size()) };
        std::memcpy(out.data(), header, 8);
        if (!body.empty())
            std::memcpy(out.data() + 8, body.data(), body.size());
        if (!info.empty())
            std::memcpy(out.data() + 8 + body.size(), info.data(), info.size());
        return out;
    }
    static std::vector<std::byte> data_message(std::span<std::byte const> frame)
    {
        netvsc::RndisPacket packet {};
        packet.data_offset = sizeof(packet);
        packet.data_len = static_cast<std::uint32_t>(frame.size());
        return rndis(netvsc::RNDIS_MSG_PACKET, wire_bytes(packet), frame);
    }
    // rndis_filter_send_request(): the message in one page, one GPA-direct range.
    bool send_paged(std::span<std::byte const> message, std::uint32_t channel_type = netvsc::RMC_CONTROL,
        std::uint32_t offset_in_page = 0x100, std::uint64_t gpn = REQUEST_GPN)
    {
        std::vector<std::byte> header;
        auto put = [&](auto value) {
            auto bytes = wire_bytes(value);
            header.insert(header.end(), bytes.begin(), bytes.end());
        };
        std::uint32_t pages = static_cast<std::uint32_t>((offset_in_page + message.size() + 4095) / 4096);
        put(vmbus::GpaDirectHeader { 0, 1 });
        put(static_cast<std::uint32_t>(message.size()));
        put(offset_in_page);
        for (std::uint32_t p = 0; p < pages; ++p)
            put(static_cast<std::uint64_t>(gpn + p));
        // Consecutive page numbers are consecutive guest RAM here: one write.
        (void)m_memory.memory().write(mem::Gpa { gpn * 4096 + offset_in_page }, message);
        std::array<std::byte, netvsc::NVSP_MESSAGE_BYTES> nvsp {};
        netvsc::NvspSendRndisPacket rpkt { netvsc::NVSP_MSG1_TYPE_SEND_RNDIS_PKT, channel_type, netvsc::NETVSC_INVALID_INDEX, 0 };
        std::memcpy(nvsp.data(), &rpkt, sizeof(rpkt));
        return m_guest.write_packet(nvsp, next_tid++,
            static_cast<std::uint16_t>(vmbus::VmPacketType::VM_PKT_DATA_USING_GPA_DIRECT), header,
            vmbus::VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED);
    }
    // netvsc_copy_to_send_buf(): bytes into section `index`, then an inband SEND_RNDIS_PKT.
    bool send_in_section(std::span<std::byte const> bytes, std::uint32_t index, std::uint32_t size_override = 0)
    {
        write_buffer(send_pages, std::uint64_t { index } * netvsc::NetvscDevice::SEND_SECTION_BYTES, bytes);
        netvsc::NvspSendRndisPacket rpkt { netvsc::NVSP_MSG1_TYPE_SEND_RNDIS_PKT, netvsc::RMC_DATA, index,
            size_override ? size_override : static_cast<std::uint32_t>(bytes.size()) };
        return send_nvsp(rpkt);
    }

    // ---- Receive path ----
    struct Received {
        std::uint64_t tid;
        std::uint16_t set_id;
        std::uint32_t offset;
        std::vector<std::byte> rndis; // The RNDIS message read from the receive buffer.
    };
    // Reads host packets until a transfer-page one; completions are counted in `completions`.
    std::optional<Received> receive()
    {
        while (auto packet = next()) {
            if (packet->descriptor.type == static_cast<std::uint16_t>(vmbus::VmPacketType::VM_PKT_COMP)) {
                completions.push_back(*packet);
                continue;
            }
            if (packet->descriptor.type != static_cast<std::uint16_t>(vmbus::VmPacketType::VM_PKT_DATA_USING_XFER_PAGES))
                return std::nullopt;
            vmbus::InboundPacket seen { vmbus::VmPacketType::VM_PKT_DATA_USING_XFER_PAGES, 0, packet->descriptor.trans_id,
                packet->header, packet->payload };
            auto pages = vmbus::parse_transfer_pages(seen);
            if (!pages || pages->ranges.size() != 1)
                return std::nullopt;
            Received out { packet->descriptor.trans_id, pages->set_id, pages->ranges[0].byte_offset, {} };
            out.rndis = read_buffer(recv_pages, pages->ranges[0].byte_offset, pages->ranges[0].byte_count);
            return out;
        }
        return std::nullopt;
    }
    // netvsc_send_recv_completion(): VM_PKT_COMP with the packet's transaction id.
    bool complete_receive(std::uint64_t tid)
    {
        std::array<std::byte, netvsc::NVSP_MESSAGE_BYTES> bytes {};
        netvsc::NvspSendRndisPacketComplete done { netvsc::NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE, netvsc::NVSP_STAT_SUCCESS };
        std::memcpy(bytes.data(), &done, sizeof(done));
        return m_guest.write_packet(bytes, tid, static_cast<std::uint16_t>(vmbus::VmPacketType::VM_PKT_COMP));
    }
    // One RNDIS control request (paged) and its response, completed like Linux does.
    std::optional<std::vector<std::byte>> request(std::span<std::byte const> message)
    {
        if (!send_paged(message))
            return std::nullopt;
        auto got = receive();
        if (!got)
            return std::nullopt;
        complete_receive(got->tid);
        return got->rndis;
    }
    std::optional<std::vector<std::byte>> query(std::uint32_t oid, std::uint32_t req_id = 7, std::uint32_t buflen = 0)
    {
        netvsc::RndisQuerySetRequest q { req_id, oid, buflen, sizeof(netvsc::RndisQuerySetRequest), 0 };
        std::vector<std::byte> info(buflen);
        return request(rndis(netvsc::RNDIS_MSG_QUERY, wire_bytes(q), info));
    }
    std::optional<std::vector<std::byte>> set(std::uint32_t oid, std::span<std::byte const> info, std::uint32_t req_id = 8)
    {
        netvsc::RndisQuerySetRequest s { req_id, oid, static_cast<std::uint32_t>(info.size()),
            sizeof(netvsc::RndisQuerySetRequest), 0 };
        return request(rndis(netvsc::RNDIS_MSG_SET, wire_bytes(s), info));
    }

    // Page by page through the buffer's (scattered) pages, like the guest's virtual mapping.
    std::vector<std::byte> read_buffer(std::span<mem::Gpn const> pages, std::uint64_t offset, std::uint64_t size) const
    {
        std::vector<std::byte> out(size);
        for (std::uint64_t done = 0; done < size;) {
            std::uint64_t at = offset + done;
            std::uint64_t chunk = std::min<std::uint64_t>(size - done, 4096 - at % 4096);
            auto gpa = pages[at / 4096].address().raw() + at % 4096;
            (void)m_memory.memory().read(mem::Gpa { gpa }, std::span { out }.subspan(done, chunk));
            done += chunk;
        }
        return out;
    }
    void write_buffer(std::span<mem::Gpn const> pages, std::uint64_t offset, std::span<std::byte const> bytes) const
    {
        for (std::uint64_t done = 0; done < bytes.size();) {
            std::uint64_t at = offset + done;
            if (at / 4096 >= pages.size())
                return; // A hostile test's index past the buffer: only the NVSP message goes.
            std::uint64_t chunk = std::min<std::uint64_t>(bytes.size() - done, 4096 - at % 4096);
            auto gpa = pages[at / 4096].address().raw() + at % 4096;
            (void)m_memory.memory().write(mem::Gpa { gpa }, bytes.subspan(done, chunk));
            done += chunk;
        }
    }

    std::vector<TestVmbusGuest::FullPacket> completions;

private:
    TestVmbusGuest& m_guest;
    FakeGuestMemory& m_memory;
};

inline bool NetvscGuest::bring_up_linux(vmbus::VmbusHost& host, vmbus::ChannelDevice& device)
{
    if (!m_guest.initiate_contact(vmbus::VERSION_WIN10_V5_3))
        return false;
    (void)m_guest.request_offers();
    if (!host.add_device(device))
        return false;
    auto messages = m_guest.receive_all();
    if (messages.size() != 1)
        return false;
    offer = TestVmbusGuest::as<vmbus::OfferChannel>(messages[0]);
    if (m_guest.bring_up(offer, ring_pages, RING_PAGES / 2) != vmbus::CHANNEL_STATUS_SUCCESS)
        return false;
    static constexpr std::uint32_t versions[] = { netvsc::NVSP_PROTOCOL_VERSION_61, netvsc::NVSP_PROTOCOL_VERSION_6,
        netvsc::NVSP_PROTOCOL_VERSION_5, netvsc::NVSP_PROTOCOL_VERSION_4, netvsc::NVSP_PROTOCOL_VERSION_2,
        netvsc::NVSP_PROTOCOL_VERSION_1 };
    if (negotiate(versions) != netvsc::NVSP_PROTOCOL_VERSION_61)
        return false;
    send_nvsp(netvsc::NvspSendNdisConfig { netvsc::NVSP_MSG2_TYPE_SEND_NDIS_CONFIG, 1514, 0, 0x29, 0 }, false);
    send_nvsp(netvsc::NvspSendNdisVersion { netvsc::NVSP_MSG1_TYPE_SEND_NDIS_VER, 6, 30 }, false);
    if (m_guest.create_gpadl(offer.child_relid, RECV_GPADL, recv_pages) != vmbus::CHANNEL_STATUS_SUCCESS)
        return false;
    (void)m_guest.receive_all();
    send_nvsp(netvsc::NvspSendBuffer { netvsc::NVSP_MSG1_TYPE_SEND_RECV_BUF, RECV_GPADL, RECV_ID, 0 });
    auto recv_reply = next();
    if (!recv_reply || payload_as<netvsc::NvspSendReceiveBufferComplete>(*recv_reply).status != netvsc::NVSP_STAT_SUCCESS)
        return false;
    if (m_guest.create_gpadl(offer.child_relid, SEND_GPADL, send_pages) != vmbus::CHANNEL_STATUS_SUCCESS)
        return false;
    (void)m_guest.receive_all();
    send_nvsp(netvsc::NvspSendBuffer { netvsc::NVSP_MSG1_TYPE_SEND_SEND_BUF, SEND_GPADL, 0, 0 });
    auto send_reply = next();
    if (!send_reply || payload_as<netvsc::NvspSendSendBufferComplete>(*send_reply).status != netvsc::NVSP_STAT_SUCCESS)
        return false;
    // rndis_filter_init_device()
    netvsc::RndisInitializeRequest init { 1, 1, 0, 0x4000 };
    auto init_c = request(rndis(netvsc::RNDIS_MSG_INIT, wire_bytes(init)));
    if (!init_c || init_c->size() < 8 + sizeof(netvsc::RndisInitializeComplete))
        return false;
    std::uint32_t filter = netvsc::NDIS_PACKET_TYPE_DIRECTED | netvsc::NDIS_PACKET_TYPE_BROADCAST
        | netvsc::NDIS_PACKET_TYPE_ALL_MULTICAST;
    auto set_c = set(netvsc::OID_GEN_CURRENT_PACKET_FILTER, wire_bytes(filter));
    return set_c.has_value();
}

} // namespace vmm::test

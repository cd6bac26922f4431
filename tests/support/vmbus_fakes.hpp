// SPDX-License-Identifier: MIT
// Test fakes for the VMBus host: the guest RAM layout (a FakeGuestMemory with holes and guard bytes), a SynIC port with one
// message slot per VP (posts fail while it is occupied, and optionally at random), and an echo
// device. Real implementations of the interfaces, used by unit tests and fuzz targets.
#pragma once

#include <cstddef>
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "devices/vmbus/channel_device.hpp"
#include "devices/vmbus/protocol.hpp"
#include "devices/vmbus/synic_port.hpp"
#include "mem/guest_memory.hpp"
#include "tests/support/fake_guest_memory.hpp"

namespace vmm::test {

// The VMBus tests' guest RAM layout: [0, 512 KiB) and [1 MiB, 1.5 MiB), a hole in between and
// above. Every byte starts as GUARD so tests can check the host wrote nothing outside the pages
// it was allowed to touch (FakeGuestMemory::changed_pages / touched_pages).
struct VmbusRam {
    static constexpr std::byte GUARD { 0xa5 };
    static constexpr std::uint64_t LOW_BYTES = 512 << 10;
    static constexpr std::uint64_t HIGH_GPA = 1 << 20;
    static constexpr std::uint64_t HIGH_BYTES = 512 << 10;
    static constexpr std::uint64_t HOLE_GPN = LOW_BYTES / 4096 + 16; // Inside the hole.

    static FakeGuestMemory make() { return FakeGuestMemory { { { 0, LOW_BYTES }, { HIGH_GPA, HIGH_BYTES } }, GUARD }; }
};

// One SynIC message slot per VP (guest-interface §4.4): a post fails while the slot holds an unread
// message, and also whenever refuse_every_nth says so (0 = never).
class FakeSynicPort final : public vmbus::SynicPort {
public:
    struct Posted {
        std::uint32_t vp;
        std::uint8_t sint;
        std::uint32_t message_type;
        std::vector<std::byte> payload;
        std::uint32_t msgtype() const
        {
            std::uint32_t type = 0;
            if (payload.size() >= 4)
                std::memcpy(&type, payload.data(), 4);
            return type;
        }
    };
    struct Event {
        std::uint32_t vp;
        std::uint8_t sint;
        std::uint32_t flag;
    };

    bool post_message(std::uint32_t vp, std::uint8_t sint, std::uint32_t message_type,
        std::span<std::byte const> payload) override
    {
        ++post_attempts;
        if (refuse_every_nth != 0 && post_attempts % refuse_every_nth == 0)
            return false;
        auto& slot = slots[vp];
        if (slot.has_value() || payload.size() > vmbus::MAX_MESSAGE_PAYLOAD_BYTES)
            return false;
        slot = Posted { vp, sint, message_type, { payload.begin(), payload.end() } };
        return true;
    }
    void signal_event(std::uint32_t vp, std::uint8_t sint, std::uint32_t flag) override
    {
        events.push_back(Event { vp, sint, flag });
    }
    // The guest reads the slot of `vp` (and must then tell the host, like EOM).
    std::optional<Posted> take(std::uint32_t vp)
    {
        auto it = slots.find(vp);
        if (it == slots.end() || !it->second)
            return std::nullopt;
        auto message = std::move(it->second);
        it->second.reset();
        return message;
    }
    std::size_t events_with_flag(std::uint32_t flag) const
    {
        std::size_t count = 0;
        for (auto const& event : events)
            count += event.flag == flag ? 1 : 0;
        return count;
    }

    std::uint64_t refuse_every_nth = 0;
    std::uint64_t post_attempts = 0;
    std::map<std::uint32_t, std::optional<Posted>> slots;
    std::vector<Event> events;
};

// Sends every packet back; on Busy keeps it and retries on on_ring_space().
class EchoDevice final : public vmbus::ChannelDevice {
public:
    explicit EchoDevice(std::uint8_t instance = 1)
    {
        m_offer.interface_type.bytes = { 0xdc, 0x74, 0x50, 0x52, 0x85, 0x89, 0xe2, 0x46, 0x80, 0x57, 0xa3, 0x07, 0xdc,
            0x18, 0xa5, 0x02 };
        m_offer.interface_instance.bytes.fill(instance);
    }
    vmbus::OfferParams offer() const override { return m_offer; }
    vmbus::OfferParams& offer_params() { return m_offer; }
    void on_open(vmbus::ChannelPort& port) override
    {
        m_port = &port;
        ++opens;
    }
    void on_packet(vmbus::InboundPacket const& packet) override
    {
        auto payload = packet.payload;
        kinds.push_back(packet.type);
        headers.emplace_back(packet.header.begin(), packet.header.end());
        completion_requested.push_back(packet.completion_requested());
        received.emplace_back(payload.begin(), payload.end());
        if (!echo)
            return;
        backlog.emplace_back(payload.begin(), payload.end());
        flush();
    }
    void on_ring_space() override
    {
        ++ring_space_calls;
        flush();
    }
    void on_close() override
    {
        m_port = nullptr;
        backlog.clear();
        ++closes;
    }
    void flush()
    {
        while (m_port && !backlog.empty()) {
            auto sent = m_port->send_packet(backlog.front(), 0x1234);
            if (!sent) {
                last_error = sent.error().code();
                return;
            }
            backlog.pop_front();
            ++echoed;
        }
    }
    vmbus::ChannelPort* port() const { return m_port; }

    bool echo = true;
    std::vector<std::vector<std::byte>> received;
    std::vector<vmbus::VmPacketType> kinds;
    std::vector<std::vector<std::byte>> headers;
    std::vector<bool> completion_requested;
    std::deque<std::vector<std::byte>> backlog;
    std::optional<Errc> last_error;
    std::uint32_t opens = 0, closes = 0, ring_space_calls = 0;
    std::uint64_t echoed = 0;

private:
    vmbus::OfferParams m_offer {};
    vmbus::ChannelPort* m_port = nullptr;
};

} // namespace vmm::test

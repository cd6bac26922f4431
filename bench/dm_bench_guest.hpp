// SPDX-License-Identifier: MIT
// The guest side of the DM protocol for benchmarks: a transport (direct calls, or the real
// VMBus rings in vmbus_transport.hpp) and a guest that answers the engine at once, Linux 6.1 style (hv_balloon.c: version 2.0, caps 0x1F,
// balloon responses of <= 510 ranges, one unballoon response per request, full hot-add).
// It balloons the ranges it is given, in order, so a benchmark decides the exact workload.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "bench/report.hpp"
#include "devices/hv_balloon/dynamic_memory.hpp"
#include "mem/page_range.hpp"

namespace vmm::bench {

// One host->guest DM message and when the engine sent it.
struct HostMessage {
    std::vector<std::byte> bytes;
    Clock::time_point at;
};

// How DM messages travel between the engine and the bench guest.
class DmTransport {
public:
    virtual ~DmTransport() = default;
    // Brings the channel up; the engine gets on_open() with its port.
    virtual Result<void> open(hv_balloon::DynamicMemory& engine) = 0;
    // Guest->host; the host processes it before this returns (sans-IO engine, same thread).
    virtual void send(std::span<std::byte const> message) = 0;
    // The next host->guest message, oldest first.
    virtual std::optional<HostMessage> receive() = 0;
    virtual char const* name() const = 0;
};

// Host->guest messages queued in order, with the time the engine sent each.
class BenchPort final : public vmbus::ChannelPort {
public:
    Result<void> send_packet(std::span<std::byte const> payload, std::uint64_t) override
    {
        queue.push_back({ { payload.begin(), payload.end() }, Clock::now() });
        return {};
    }
    // A 256 KiB ring that the guest always drains before the host writes again.
    std::uint64_t send_space_bytes() const override { return 256 * 1024; }
    Result<void> send(vmbus::OutboundPacket const& packet) override
    {
        // DM only sends plain inband packets; anything else is a test failure to surface.
        if (packet.type != vmbus::VmPacketType::VM_PKT_DATA_INBAND || !packet.header.empty())
            return fail(Errc::Unsupported, "fake port: inband packets only");
        return send_packet(packet.payload, packet.transaction_id);
    }
    Result<vmbus::GpadlView> acquire_gpadl(std::uint32_t id) override
    {
        return fail(Errc::Unsupported, "fake port: no GPADLs", id);
    }
    void release_gpadl(std::uint32_t) override { }

    std::deque<HostMessage> queue;
};

// No VMBus: the guest calls engine.on_packet() and reads a BenchPort.
class DirectTransport final : public DmTransport {
public:
    Result<void> open(hv_balloon::DynamicMemory& engine) override
    {
        m_engine = &engine;
        engine.on_open(m_port);
        return {};
    }
    void send(std::span<std::byte const> message) override { m_engine->on_packet(message); }
    std::optional<HostMessage> receive() override
    {
        if (m_port.queue.empty())
            return std::nullopt;
        HostMessage message = std::move(m_port.queue.front());
        m_port.queue.pop_front();
        return message;
    }
    char const* name() const override { return "direct"; }

private:
    hv_balloon::DynamicMemory* m_engine { nullptr };
    BenchPort m_port;
};

// The VMBus transport when devices/vmbus is built (BENCH_HAVE_VMBUS), else the direct one.
std::unique_ptr<DmTransport> make_transport();

class BenchDmGuest {
public:
    BenchDmGuest(hv_balloon::DynamicMemory& engine, DmTransport& transport)
        : m_engine(engine)
        , m_transport(transport)
    {
    }

    // Opens the channel and completes version 2.0 + capabilities (balloon, hot-add, 128 MiB).
    Result<void> connect();
    // Ranges to give on balloon requests, in this order (split if a request ends mid-range).
    void set_balloon_source(std::vector<mem::PageRange> ranges)
    {
        m_source = std::move(ranges);
        m_next = 0;
        m_split = 0;
    }
    // Answers every host message, and the ones they cause, until the host is quiet.
    void run_until_quiet();

    std::uint64_t balloon_requests = 0;
    std::uint64_t balloon_responses = 0;
    std::uint64_t unballoon_requests = 0;
    std::uint64_t unballoon_ranges = 0;
    std::uint64_t unballoon_pages = 0;
    std::uint64_t hot_add_requests = 0;
    std::uint64_t hot_add_pages = 0;
    Clock::time_point last_unballoon_at {};
    Clock::time_point first_hot_add_at {};
    std::uint64_t unexpected_messages = 0;

private:
    void handle(HostMessage const& message);
    void answer_balloon(std::uint32_t num_pages);

    hv_balloon::DynamicMemory& m_engine;
    DmTransport& m_transport;
    std::uint32_t m_trans_id = 0;
    std::vector<mem::PageRange> m_source;
    std::size_t m_next = 0;
    std::uint64_t m_split = 0; // Pages of m_source[m_next] already given.
};

} // namespace vmm::bench

// SPDX-License-Identifier: MIT
// FakeLinuxGuest: the guest half of the DM protocol, modelled on Linux 6.1 drivers/hv/hv_balloon.c
// byte for byte (message layouts, version fallback, 2 MiB-then-4 KiB ballooning with <= 510
// ranges per message, floor clamp, one unballoon response per more_pages=0 message, range-only
// and range+region hot-add). It also checks what Linux cannot: every host message must be safe
// (violations are recorded, e.g. unballooning pages the guest never gave, unbacked hot-add).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "devices/hv_balloon/dynamic_memory.hpp"
#include "mem/page_range_set.hpp"
#include "tests/support/dm_fake_port.hpp"

namespace vmm::test {

enum class HotAddBehaviour : std::uint8_t { Full, Partial, Transient, Permanent, OverReport, Ignore };

struct FakeGuestOptions {
    std::vector<mem::PageRange> free_ram;     // Pages the guest could give up.
    mem::PageCount floor { 0 };               // Never balloons below this many free pages.
    bool try_2m = true;                       // Linux starts with 2 MiB allocations.
    std::uint64_t caps = 0x1F;                // balloon, hot_add, alignment 2^7 MiB.
    std::vector<std::uint32_t> versions { 0x00020000, 0x00010000, 0x00000003 };
    HotAddBehaviour hot_add = HotAddBehaviour::Full;
    bool ignore_balloon = false;              // S4 advertised: balloon/unballoon ignored.
    std::function<bool(mem::PageRange)> is_backed; // Host backing check for hot-add ranges.
};

// Builders for guest->host messages (Linux layouts).
std::vector<std::byte> dm_version_request(std::uint32_t trans_id, std::uint32_t version, bool last);
std::vector<std::byte> dm_caps_report(std::uint32_t trans_id, std::uint64_t caps);
std::vector<std::byte> dm_status_report(std::uint32_t trans_id, std::uint64_t avail, std::uint64_t committed);
std::vector<std::byte> dm_balloon_response(std::uint32_t trans_id, bool more,
    std::span<hv_balloon::DmPageRange const> ranges);
std::vector<std::byte> dm_unballoon_response(std::uint32_t trans_id);
std::vector<std::byte> dm_hot_add_response(std::uint32_t trans_id, std::uint32_t page_count, std::uint32_t result);

class FakeLinuxGuest {
public:
    FakeLinuxGuest(hv_balloon::DynamicMemory& engine, FakeChannelPort& port, FakeGuestOptions options);

    void open_channel();  // engine.on_open + the first version request, then pump().
    void pump();          // Handle host messages and deliver guest messages until quiet.
    void process_host();  // Handle every queued host message; replies go to the outbox.
    bool deliver_one();   // Sends one queued guest message to the engine.
    void send(std::span<std::byte const> message) { m_engine.on_packet(message); }
    void send_status(std::uint64_t avail, std::uint64_t committed);
    void reboot();        // Forgets all driver state (a new kernel).
    std::uint32_t next_trans_id() { return ++m_trans_id; }

    FakeGuestOptions options;
    mem::PageRangeSet free;      // Guest-free pages it may balloon.
    mem::PageRangeSet ballooned; // Pages the guest gave to the host and has not got back.
    mem::PageRangeSet hot_added;
    std::deque<std::vector<std::byte>> outbox; // Guest->host, not yet delivered.
    std::vector<std::string> violations;        // Unsafe host behaviour seen.
    std::optional<std::uint32_t> version;       // Accepted version.
    bool caps_accepted = false;
    std::optional<std::uint64_t> info_max_pages;
    std::uint32_t balloon_requests = 0, unballoon_requests = 0, hot_add_requests = 0;
    std::vector<std::uint16_t> hot_add_request_sizes;
    std::vector<std::uint32_t> balloon_request_pages;
    std::vector<std::uint64_t> unballoon_request_pages; // Pages named by each unballoon request.

private:
    void handle(std::span<std::byte const> message);
    void on_version_response(std::span<std::byte const> message);
    void on_balloon_request(std::uint32_t num_pages);
    void on_unballoon_request(std::span<std::byte const> message);
    void on_hot_add_request(std::span<std::byte const> message);
    std::uint32_t allocate(std::uint32_t num_pages, std::uint32_t unit, std::vector<hv_balloon::DmPageRange>& ranges);
    void violation(std::string text) { violations.push_back(std::move(text)); }

    hv_balloon::DynamicMemory& m_engine;
    FakeChannelPort& m_port;
    std::uint32_t m_trans_id = 0;
    std::size_t m_next_version = 0;
};

} // namespace vmm::test

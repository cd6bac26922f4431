// SPDX-License-Identifier: MIT
// DmRig: a DynamicMemory engine wired to a FakeLinuxGuest, FakeDiscard, FakeMemslots and a
// FakeChannelPort over a small PC-like layout. Boot RAM [0, 640 KiB) + [1 MiB, 1 GiB), MMIO hole
// above, hot-add window [4 GiB, 8 GiB) in 128 MiB slots.
#pragma once

#include <chrono>
#include <vector>

#include <gtest/gtest.h>

#include "base/mapping.hpp"
#include "devices/hv_balloon/dynamic_memory.hpp"
#include "tests/support/dm_fake_guest.hpp"
#include "tests/support/dm_fake_port.hpp"
#include "tests/support/mem_fakes.hpp"

namespace vmm::test {

inline constexpr std::uint64_t MIB_PAGES = (1ull << 20) / mem::PAGE_SIZE;
inline constexpr std::uint64_t GIB_PAGES = 1024 * MIB_PAGES;
inline constexpr std::uint64_t BLOCK_PAGES = 128 * MIB_PAGES;
inline constexpr mem::PageRange WINDOW { mem::Gpn { 4 * GIB_PAGES }, mem::PageCount { 4 * GIB_PAGES } };
inline constexpr mem::PageRange BOOT_LOW { mem::Gpn { 0 }, mem::PageCount { 160 } };
inline constexpr mem::PageRange BOOT_MAIN { mem::Gpn { 256 }, mem::PageCount { GIB_PAGES - 256 } };
// The guest's free memory: [128 MiB, 1 GiB).
inline constexpr mem::PageRange GUEST_FREE { mem::Gpn { 128 * MIB_PAGES }, mem::PageCount { 896 * MIB_PAGES } };

inline mem::PageRange pages(std::uint64_t start, std::uint64_t count)
{
    return { mem::Gpn { start }, mem::PageCount { count } };
}

struct DmRig {
    explicit DmRig(hv_balloon::DmConfig config = hv_balloon::DmConfig::linux_profile(), FakeGuestOptions options = {})
        : map(make_map())
        , window_host(Mapping::reserve(WINDOW.size_bytes()).value())
        , slots(mem::OnDemandMemslots::create(sink, mem::MemslotPlan::make(WINDOW, 32, 100).value(), window_host.bytes()).value())
        , engine(map, discard, &slots, config)
        , guest(engine, port, with_defaults(std::move(options)))
    {
        engine.set_event_sink([this](hv_balloon::DmEvent const& event) { events.push_back(event); });
        engine.on_tick(now);
    }

    static mem::GuestPhysicalMap make_map()
    {
        std::array boot { BOOT_LOW, BOOT_MAIN };
        return mem::GuestPhysicalMap::create(boot, WINDOW).value();
    }
    FakeGuestOptions with_defaults(FakeGuestOptions options)
    {
        if (options.free_ram.empty())
            options.free_ram = { GUEST_FREE };
        if (!options.is_backed)
            options.is_backed = [this](mem::PageRange range) { return sink.mapped_pages.contains_all(range); };
        return options;
    }

    void connect() { guest.open_channel(); }
    void advance(std::chrono::milliseconds step)
    {
        now += step;
        engine.on_tick(now);
    }
    // Set a target in pages and run the guest until quiet.
    std::uint64_t target(mem::PageCount pages)
    {
        auto id = engine.set_target(pages);
        EXPECT_TRUE(id.has_value());
        guest.pump();
        return id.value_or(0);
    }
    mem::PageCount boot() const { return map.boot_pages(); }
    hv_balloon::DmStatus status() const { return engine.status(); }
    template<typename Event>
    std::size_t count_events() const
    {
        std::size_t n = 0;
        for (auto const& event : events)
            n += std::holds_alternative<Event>(event) ? 1 : 0;
        return n;
    }
    // Engine and guest agree on what is ballooned, nothing unsafe happened, and only pages
    // the guest gave up (or window slots released on reset) were discarded.
    void expect_consistent() const
    {
        EXPECT_TRUE(guest.violations.empty()) << (guest.violations.empty() ? "" : guest.violations.front());
        std::vector<mem::PageRange> engine_runs { map.ballooned().begin(), map.ballooned().end() };
        std::vector<mem::PageRange> guest_runs { guest.ballooned.begin(), guest.ballooned.end() };
        EXPECT_EQ(engine_runs, guest_runs);
        for (auto run : map.ballooned())
            EXPECT_TRUE(discard.discarded.contains_all(run)) << "ballooned but not discarded";
        EXPECT_EQ(map.current_pages(), map.boot_pages() + map.hot_added_pages() - map.ballooned_pages());
        for (auto run : map.hot_added())
            EXPECT_TRUE(sink.mapped_pages.contains_all(run)) << "hot-added outside a mapped slot";
    }

    mem::GuestPhysicalMap map;
    Mapping window_host;
    FakeMemslots sink;
    mem::OnDemandMemslots slots;
    FakeDiscard discard;
    hv_balloon::DynamicMemory engine;
    FakeChannelPort port;
    FakeLinuxGuest guest;
    std::vector<hv_balloon::DmEvent> events;
    hv_balloon::Instant now { std::chrono::seconds { 1000 } };
};

} // namespace vmm::test

// SPDX-License-Identifier: MIT
// Unballoon: 200 GiB of ballooned ranges (2 MiB runs, and a mix with 10 % of the bytes in
// single 4 KiB pages) given back by the DM engine: time from set_target() until the last
// unballoon request is in the ring, with a guest that answers each request at once
// (BENCHMARKS.md §3). Guest memory is address space only: unballoon touches no page.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "base/log.hpp"
#include "base/types.hpp"
#include "bench/dm_bench_guest.hpp"
#include "bench/memfd_ram.hpp"
#include "bench/report.hpp"
#include "devices/hv_balloon/dynamic_memory.hpp"
#include "mem/guest_physical_map.hpp"

namespace {

using namespace vmm;
using namespace vmm::bench;
using mem::Gpn;
using mem::PageCount;
using mem::PageRange;

constexpr u64 BALLOONED_BYTES = 200 * GIB;
constexpr u64 SPAN_BYTES = 2 * BALLOONED_BYTES; // Every ballooned run has a gap after it.
constexpr u64 KEPT_BYTES = 1 * GIB;             // Boot RAM the guest never gives up.
constexpr Gpn RAM_START { (4 * GIB) >> mem::PAGE_SHIFT };
constexpr u64 PAGES_2MIB = 512;

// Ballooned runs, ascending and never adjacent (adjacent runs would merge into one range).
// `four_kib_bytes` of the total come as single 4 KiB pages, the rest as 2 MiB runs.
std::vector<PageRange> make_ballooned(u64 four_kib_bytes)
{
    std::vector<PageRange> ranges;
    Gpn cursor = RAM_START + PageCount::from_bytes_floor(KEPT_BYTES);
    for (u64 i = 0; i < (BALLOONED_BYTES - four_kib_bytes) / (2 * MIB); ++i) {
        ranges.push_back({ cursor, PageCount { PAGES_2MIB } });
        cursor = cursor + PageCount { 2 * PAGES_2MIB };
    }
    for (u64 i = 0; i < four_kib_bytes / mem::PAGE_SIZE; ++i) {
        ranges.push_back({ cursor, PageCount { 1 } });
        cursor = cursor + PageCount { 2 };
    }
    return ranges;
}

struct Run {
    double ms_to_last_request;
    double ms_to_done;
    u64 requests;
    u64 ranges;
};

Result<Run> run_once(std::vector<PageRange> const& ballooned)
{
    PageRange const boot_ram { RAM_START, PageCount::from_bytes_floor(KEPT_BYTES + SPAN_BYTES) };
    mem::GuestPhysicalMap map = VMM_TRY(mem::GuestPhysicalMap::create(std::span { &boot_ram, 1 }, std::nullopt));
    NullDiscard discard;
    hv_balloon::DynamicMemory engine { map, discard, nullptr, hv_balloon::DmConfig::linux_profile() };
    auto transport = make_transport();
    BenchDmGuest guest { engine, *transport };
    VMM_TRY(guest.connect());
    // The state after ballooning, recorded straight into the map (the balloon path is §2's).
    for (PageRange const& range : ballooned)
        if (!map.balloon(range.start.raw(), range.count.raw()))
            return fail(Errc::InvalidArgument, "setup: range refused", range.start.raw());
    auto const start = Clock::now();
    engine.on_tick(start);
    VMM_TRY(engine.set_target(map.boot_pages()));
    guest.run_until_quiet();
    auto const done = Clock::now();
    if (guest.unballoon_pages * mem::PAGE_SIZE != BALLOONED_BYTES || map.ballooned_pages().raw() != 0)
        return fail(Errc::InvalidArgument, "not everything was unballooned", guest.unballoon_pages);
    return Run { std::chrono::duration<double, std::milli>(guest.last_unballoon_at - start).count(),
        std::chrono::duration<double, std::milli>(done - start).count(), guest.unballoon_requests,
        guest.unballoon_ranges };
}

} // namespace

int main()
{
    log::set_level(log::Level::Warn);
    int const runs = runs_from_env(5, 5);
    Report report;
    struct Mix {
        char const* key;
        u64 four_kib_bytes;
    };
    for (Mix mix : { Mix { "2mib_ranges", 0 }, Mix { "4kib_mix", BALLOONED_BYTES / 10 } }) {
        std::vector<PageRange> const ballooned = make_ballooned(mix.four_kib_bytes);
        fmt::print(stderr, "unballoon: 200 GiB as {} ranges ({}), {} runs\n", ballooned.size(), mix.key, runs);
        std::vector<double> to_last, to_done;
        Run last {};
        for (int run = 0; run < runs; ++run) {
            auto r = run_once(ballooned);
            if (!r) {
                fmt::print(stderr, "unballoon: {}\n", r.error().message());
                return 1;
            }
            to_last.push_back(r->ms_to_last_request);
            to_done.push_back(r->ms_to_done);
            last = *r;
        }
        std::string const key = mix.key;
        report.samples("unballoon_200gb.ms_" + key, to_last, "ms");
        report.samples("unballoon_200gb.ms_done_" + key, to_done, "ms");
        report.value("unballoon_200gb.requests_" + key, last.requests, "messages");
        report.value("unballoon_200gb.ranges_" + key, last.ranges, "ranges");
    }
    report.value("unballoon_200gb.transport", make_transport()->name(), "");
    report.note("unballoon_200gb.ms_2mib_ranges",
        "200 GiB (214.7 GB) ballooned as non-adjacent 2 MiB runs; set_target() to last request sent, guest answers at once");
    report.note("unballoon_200gb.ms_4kib_mix", "as ms_2mib_ranges, 10 % of the bytes as single 4 KiB pages");
    report.print();
    return 0;
}

// SPDX-License-Identifier: MIT
// Balloon processing: balloon responses for 8 GiB of dirtied memfd guest RAM pushed through the
// DM engine (validation in GuestPhysicalMap, discard by fallocate(PUNCH_HOLE) on the memfd),
// against raw fallocate(PUNCH_HOLE) and madvise(MADV_REMOVE) of the same pages in the same
// batches, in the same run (BENCHMARKS.md §2).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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

// The 8 GiB for 2 MiB ranges; 1 GiB for 4 KiB ranges (one syscall per page on both
// sides: 8 GiB would be 2 M calls per run, minutes on this 2-core machine).
constexpr u64 BALLOON_BYTES_2MIB = 8 * GIB;
constexpr u64 BALLOON_BYTES_4KIB = 1 * GIB;
constexpr u64 KEPT_BYTES = 128 * MIB; // The guest keeps this much (the target).
constexpr Gpn RAM_START { (4 * GIB) >> mem::PAGE_SHIFT };
constexpr double GB = 1e9;
// Linux fills a response with 510 ranges (hv_balloon.c alloc_balloon_pages).
constexpr u64 RANGES_PER_RESPONSE = 510;

double gb_per_min(u64 bytes, double seconds) { return static_cast<double>(bytes) / GB / seconds * 60.0; }

u64 bytes_of(std::vector<PageRange> const& ranges)
{
    u64 total = 0;
    for (PageRange const& range : ranges)
        total += range.size_bytes();
    return total;
}

// 2 MiB: what Linux sends first, ascending 2 MiB-aligned runs (hv_balloon.c:1308 alloc_unit 512).
// 4 KiB: single pages, no two of one response adjacent (evens then odds of each 1020-page
// block), so neither side can merge neighbours: one discard per page for both.
std::vector<PageRange> make_source(u64 unit_pages, u64 bytes)
{
    std::vector<PageRange> ranges;
    Gpn const first = RAM_START + PageCount::from_bytes_floor(KEPT_BYTES);
    u64 const pages = bytes / mem::PAGE_SIZE;
    if (unit_pages > 1) {
        for (u64 page = 0; page < pages; page += unit_pages)
            ranges.push_back({ first + PageCount { page }, PageCount { unit_pages } });
        return ranges;
    }
    u64 const block = 2 * RANGES_PER_RESPONSE;
    for (u64 base = 0; base < pages; base += block)
        for (u64 parity = 0; parity < 2; ++parity)
            for (u64 page = base + parity; page < std::min(base + block, pages); page += 2)
                ranges.push_back({ first + PageCount { page }, PageCount { 1 } });
    return ranges;
}

struct OursRun {
    double seconds;
    double dirty_seconds;
    u64 discard_calls;
};

// One run: a fresh map and engine (nothing ballooned), connected guest, dirtied RAM; timed from
// set_target() until the engine has processed every response.
Result<OursRun> run_ours(MemfdRam& ram, std::vector<PageRange> const& source)
{
    PageRange const boot_ram { RAM_START, PageCount::from_bytes_floor(ram.size_bytes()) };
    mem::GuestPhysicalMap map = VMM_TRY(mem::GuestPhysicalMap::create(std::span { &boot_ram, 1 }, std::nullopt));
    MemfdDiscard discard { ram };
    hv_balloon::DynamicMemory engine { map, discard, nullptr, hv_balloon::DmConfig::linux_profile() };
    auto transport = make_transport();
    BenchDmGuest guest { engine, *transport };
    VMM_TRY(guest.connect());
    guest.set_balloon_source(source);
    u64 const bytes = bytes_of(source);
    auto const dirty_start = Clock::now();
    VMM_TRY(ram.dirty(ram.offset_of(source.front().start), bytes));
    double const dirty_seconds = seconds_since(dirty_start);
    auto const start = Clock::now();
    engine.on_tick(start);
    VMM_TRY(engine.set_target(map.current_pages() - PageCount::from_bytes_floor(bytes)));
    guest.run_until_quiet();
    double const seconds = seconds_since(start);
    if (map.ballooned_pages().bytes() != bytes)
        return fail(Errc::InvalidArgument, "engine ballooned the wrong amount", map.ballooned_pages().bytes());
    if (ram.allocated_bytes() != 0)
        return fail(Errc::InvalidArgument, "pages still allocated after ballooning", ram.allocated_bytes());
    return OursRun { seconds, dirty_seconds, discard.calls };
}

enum class RawMethod { Fallocate, Madvise };

Result<double> run_raw(MemfdRam& ram, std::vector<PageRange> const& source, RawMethod method)
{
    VMM_TRY(ram.dirty(ram.offset_of(source.front().start), bytes_of(source)));
    auto const start = Clock::now();
    for (PageRange const& range : source) {
        u64 const offset = ram.offset_of(range.start);
        if (method == RawMethod::Fallocate)
            VMM_TRY(ram.punch(offset, range.size_bytes()));
        else
            VMM_TRY(ram.madvise_remove(offset, range.size_bytes()));
    }
    double const seconds = seconds_since(start);
    if (ram.allocated_bytes() != 0)
        return fail(Errc::InvalidArgument, "pages still allocated after raw discard", ram.allocated_bytes());
    return seconds;
}

int fatal(Error const& error)
{
    fmt::print(stderr, "balloon: {}\n", error.message());
    return 1;
}

} // namespace

int main()
{
    int const runs = runs_from_env(5, 5);
    Report report;
    log::set_level(log::Level::Warn);
    auto ram = MemfdRam::create(RAM_START, KEPT_BYTES + BALLOON_BYTES_2MIB);
    if (!ram)
        return fatal(ram.error());

    struct Workload {
        char const* suffix;
        u64 unit_pages;
        u64 bytes;
        bool madvise; // Also time raw madvise(MADV_REMOVE) (each run re-dirties the pages).
    };
    // 8 GiB in 2 MiB ranges is the headline. Dirtying costs ~2 s per GiB on this machine
    // (nested virtualisation), so the madvise comparison and the 4 KiB case use 1 GiB.
    for (Workload w : { Workload { "2mib", 512, BALLOON_BYTES_2MIB, false },
             Workload { "2mib_1gib", 512, 1 * GIB, true }, Workload { "4kib", 1, BALLOON_BYTES_4KIB, true } }) {
        std::vector<PageRange> const source = make_source(w.unit_pages, w.bytes);
        fmt::print(stderr, "balloon: {} GiB as {} ranges ({} runs each: ours, fallocate{})\n", w.bytes / GIB,
            source.size(), runs, w.madvise ? ", madvise" : "");
        std::vector<double> ours, punch, advise, dirty;
        u64 discard_calls = 0;
        for (int run = 0; run < runs; ++run) {
            // Interleaved so drift on the shared machine hits every method alike.
            auto o = run_ours(*ram, source);
            if (!o)
                return fatal(o.error());
            ours.push_back(gb_per_min(w.bytes, o->seconds));
            dirty.push_back(gb_per_min(w.bytes, o->dirty_seconds));
            discard_calls = o->discard_calls;
            auto f = run_raw(*ram, source, RawMethod::Fallocate);
            if (!f)
                return fatal(f.error());
            punch.push_back(gb_per_min(w.bytes, *f));
            if (!w.madvise)
                continue;
            auto m = run_raw(*ram, source, RawMethod::Madvise);
            if (!m)
                return fatal(m.error());
            advise.push_back(gb_per_min(w.bytes, *m));
        }
        std::string const s = w.suffix;
        report.samples("balloon.ours_gb_per_min_" + s, ours, "GB/min");
        report.samples("balloon.raw_fallocate_gb_per_min_" + s, punch, "GB/min");
        if (w.madvise)
            report.samples("balloon.raw_madvise_gb_per_min_" + s, advise, "GB/min");
        report.samples("balloon.dirty_gb_per_min_" + s, dirty, "GB/min");
        report.value("balloon.ours_discard_calls_" + s, discard_calls, "calls");
        report.value("balloon.raw_discard_calls_" + s, source.size(), "calls");
        report.value("balloon.bytes_" + s, w.bytes, "B");
        report.ratio("balloon.ratio_" + s, "balloon.ours_gb_per_min_" + s, "balloon.raw_fallocate_gb_per_min_" + s);
    }
    // Headline: Linux answers with 2 MiB ranges first (hv_balloon.c:1308).
    report.same_as("balloon.ours_gb_per_min", "balloon.ours_gb_per_min_2mib");
    report.same_as("balloon.raw_discard_gb_per_min", "balloon.raw_fallocate_gb_per_min_2mib");
    report.ratio("balloon.ratio", "balloon.ours_gb_per_min_2mib", "balloon.raw_fallocate_gb_per_min_2mib");
    char const* transport = make_transport()->name();
    report.value("balloon.transport", transport, "");
    report.note("balloon.ours_gb_per_min",
        fmt::format("8 GiB in 2 MiB ranges, set_target() until every response is validated and discarded; "
                    "transport: {}; GB = 1e9 B", transport));
    report.print();
    return 0;
}

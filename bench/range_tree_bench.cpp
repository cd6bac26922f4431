// SPDX-License-Identifier: MIT
// Range tracking: ballooned-page ranges of a 1 TiB guest fed, response by response, into
// microvmm's mem::PageRangeSet, a std::map interval tracker and a 1-bit-per-page bitmap.
// Measures inserts/s, lookups/s and the heap bytes each keeps (BENCHMARKS.md §1).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "bench/bitmap_range_tracker.hpp"
#include "bench/map_range_tracker.hpp"
#include "bench/report.hpp"
#include "base/types.hpp"
#include "mem/page_range_set.hpp"

namespace {

using namespace vmm;
using namespace vmm::bench;

constexpr u64 PAGES_PER_TIB = (u64 { 1 } << 40) / 4096;
constexpr u64 PAGES_PER_GIB = (u64 { 1 } << 30) / 4096;
constexpr u64 PAGES_PER_2MIB = 512;
// A balloon response is one 4 KiB message: 16-byte header + 8-byte ranges
// (devices/hv_balloon/protocol.hpp, DmBalloonResponse; Linux hv_balloon.c alloc_balloon_pages).
constexpr std::size_t RANGES_PER_RESPONSE = (4096 - 16) / 8;
// Guest memory starts at 4 GiB in the ranges (above the 32-bit hole), as in a large guest.
constexpr u64 BASE_PAGE = 4 * PAGES_PER_GIB;
constexpr std::size_t LOOKUPS = 1u << 20;

struct Range {
    u64 start;
    u64 count;
};

struct Workload {
    std::string name;
    u64 window_pages;           // Pages the ranges cover (ballooned or not).
    std::vector<Range> ranges;  // In insertion order.
    std::vector<u64> lookups;   // Random pages in the window.
    u64 ballooned_pages { 0 };
};

// Responses in a fixed pseudo-random order (the guest frees memory from all over), ranges
// ascending inside one response (Linux builds a response from consecutive allocations).
void shuffle_responses(std::vector<Range>& ranges, std::mt19937_64& random)
{
    std::size_t const responses = (ranges.size() + RANGES_PER_RESPONSE - 1) / RANGES_PER_RESPONSE;
    std::vector<std::size_t> order(responses);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), random);
    std::vector<Range> shuffled;
    shuffled.reserve(ranges.size());
    for (std::size_t response : order) {
        std::size_t const first = response * RANGES_PER_RESPONSE;
        std::size_t const last = std::min(ranges.size(), first + RANGES_PER_RESPONSE);
        shuffled.insert(shuffled.end(), ranges.begin() + static_cast<std::ptrdiff_t>(first),
            ranges.begin() + static_cast<std::ptrdiff_t>(last));
    }
    ranges = std::move(shuffled);
}

Workload make_workload(std::string name, u64 window_pages, u64 stride, u64 count, std::mt19937_64& random)
{
    Workload w { std::move(name), window_pages, {}, {} };
    w.ranges.reserve(window_pages / stride);
    for (u64 page = 0; page + count <= window_pages; page += stride) {
        w.ranges.push_back({ BASE_PAGE + page, count });
        w.ballooned_pages += count;
    }
    shuffle_responses(w.ranges, random);
    std::uniform_int_distribution<u64> pick(BASE_PAGE, BASE_PAGE + window_pages - 1);
    w.lookups.resize(LOOKUPS);
    for (u64& page : w.lookups)
        page = pick(random);
    return w;
}

struct Measured {
    std::vector<double> insert_s;
    std::vector<double> lookup_s;
    std::size_t heap_bytes { 0 };
    u64 hits { 0 };
    u64 total_pages { 0 };
};

// One tracker type behind three lambdas so every tracker runs the identical loop.
template<typename Make, typename Insert, typename Lookup, typename Total>
Measured measure(Workload const& w, int runs, Make make, Insert insert, Lookup lookup, Total total)
{
    Measured m;
    for (int run = 0; run < runs; ++run) {
        std::size_t const heap_before = heap_bytes_in_use();
        auto tracker = make();
        auto start = Clock::now();
        for (Range const& r : w.ranges)
            insert(*tracker, r);
        m.insert_s.push_back(seconds_since(start));
        std::size_t const heap_after = heap_bytes_in_use();
        start = Clock::now();
        u64 hits = 0;
        for (u64 page : w.lookups)
            hits += lookup(*tracker, page) ? 1 : 0;
        m.lookup_s.push_back(seconds_since(start));
        m.heap_bytes = heap_after - heap_before;
        m.hits = hits;
        m.total_pages = total(*tracker);
    }
    return m;
}

struct Results {
    Measured ours, map, bitmap;
};

Results run_workload(Workload const& w, int runs)
{
    fmt::print(stderr, "range_tree: {} ({} ranges, {} lookups, {} runs)\n", w.name, w.ranges.size(),
        w.lookups.size(), runs);
    Results r;
    r.ours = measure(
        w, runs, [] { return std::make_unique<mem::PageRangeSet>(); },
        [](mem::PageRangeSet& set, Range range) {
            set.insert(mem::PageRange { mem::Gpn { range.start }, mem::PageCount { range.count } });
        },
        [](mem::PageRangeSet& set, u64 page) {
            return set.intersects(mem::PageRange { mem::Gpn { page }, mem::PageCount { 1 } });
        },
        [](mem::PageRangeSet& set) { return set.total().raw(); });
    r.map = measure(
        w, runs, [] { return std::make_unique<MapRangeTracker>(); },
        [](MapRangeTracker& map, Range range) { map.insert(range.start, range.count); },
        [](MapRangeTracker& map, u64 page) { return map.contains(page); },
        [](MapRangeTracker& map) { return map.total_pages(); });
    // The bitmap covers the whole 1 TiB guest whatever the window: it cannot grow with use.
    r.bitmap = measure(
        w, runs, [] { return std::make_unique<BitmapRangeTracker>(BASE_PAGE, PAGES_PER_TIB); },
        [](BitmapRangeTracker& bitmap, Range range) { bitmap.insert(range.start, range.count); },
        [](BitmapRangeTracker& bitmap, u64 page) { return bitmap.contains(page); },
        [](BitmapRangeTracker& bitmap) { return bitmap.total_pages(); });
    // The three must agree, or the figures compare different work.
    if (r.ours.total_pages != w.ballooned_pages || r.map.total_pages != w.ballooned_pages
        || r.bitmap.total_pages != w.ballooned_pages || r.ours.hits != r.map.hits || r.ours.hits != r.bitmap.hits) {
        fmt::print(stderr, "range_tree: trackers disagree on {}: pages ours={} map={} bitmap={} expected={}, hits {}/{}/{}\n",
            w.name, r.ours.total_pages, r.map.total_pages, r.bitmap.total_pages, w.ballooned_pages, r.ours.hits,
            r.map.hits, r.bitmap.hits);
        std::exit(1);
    }
    return r;
}

std::vector<double> per_second(std::vector<double> const& seconds, std::size_t ops)
{
    return map_samples(seconds, [ops](double s) { return static_cast<double>(ops) / s; });
}

// Inserts and lookups together: ops / (insert seconds + lookup seconds), run by run.
std::vector<double> mixed_per_second(Measured const& m, Workload const& w)
{
    std::vector<double> out;
    for (std::size_t i = 0; i < m.insert_s.size(); ++i)
        out.push_back(static_cast<double>(w.ranges.size() + w.lookups.size()) / (m.insert_s[i] + m.lookup_s[i]));
    return out;
}

void report_workload(Report& report, Workload const& w, Results const& r, std::string const& suffix)
{
    struct Row {
        char const* name;
        Measured const* m;
    };
    for (Row row : { Row { "ours", &r.ours }, Row { "std_map", &r.map }, Row { "bitmap", &r.bitmap } }) {
        report.samples(fmt::format("range_tree.{}_inserts_per_s_{}", row.name, suffix),
            per_second(row.m->insert_s, w.ranges.size()), "inserts/s");
        report.samples(fmt::format("range_tree.{}_lookups_per_s_{}", row.name, suffix),
            per_second(row.m->lookup_s, w.lookups.size()), "lookups/s");
        report.samples(fmt::format("range_tree.{}_ops_per_s_{}", row.name, suffix), mixed_per_second(*row.m, w), "ops/s");
        report.value(fmt::format("range_tree.{}_heap_bytes_{}", row.name, suffix), row.m->heap_bytes, "B");
    }
}

} // namespace

int main()
{
    int const runs = runs_from_env(5, 5);
    // The fragmented case (every other page) over the full 1 TiB is 2^27 runs: ~8 GiB of nodes
    // per tree. By default it runs over a window (BENCH_FRAGMENTED_GIB, 8 GiB) and reports
    // bytes per fragment; BENCH_FRAGMENTED_GIB=1024 runs the full terabyte.
    char const* window_text = std::getenv("BENCH_FRAGMENTED_GIB");
    u64 const fragmented_gib = (window_text && *window_text) ? std::strtoull(window_text, nullptr, 10) : 8;
    std::mt19937_64 random { 20261123 };
    Report report;

    Workload contiguous = make_workload("1 TiB as 2 MiB ranges", PAGES_PER_TIB, PAGES_PER_2MIB, PAGES_PER_2MIB, random);
    Results c = run_workload(contiguous, runs);
    report_workload(report, contiguous, c, "contiguous");
    contiguous = {};

    Workload fragmented = make_workload(fmt::format("{} GiB fragmented, every other 4 KiB page", fragmented_gib),
        fragmented_gib * PAGES_PER_GIB, 2, 1, random);
    Results f = run_workload(fragmented, runs);
    report_workload(report, fragmented, f, "fragmented");

    // The headline figures: fragmented is the case where a range tracker can lose.
    report.samples("range_tree.ours_ops_per_s", mixed_per_second(f.ours, fragmented), "ops/s");
    report.samples("range_tree.std_map_ops_per_s", mixed_per_second(f.map, fragmented), "ops/s");
    report.samples("range_tree.bitmap_ops_per_s", mixed_per_second(f.bitmap, fragmented), "ops/s");
    report.ratio("range_tree.ours_vs_std_map_ops", "range_tree.ours_ops_per_s", "range_tree.std_map_ops_per_s");
    report.value("range_tree.ours_bytes_contiguous_1tib", c.ours.heap_bytes, "B");
    report.value("range_tree.std_map_bytes_contiguous_1tib", c.map.heap_bytes, "B");
    report.value("range_tree.bitmap_bytes_1tib", c.bitmap.heap_bytes, "B");
    u64 const fragments = fragmented.ranges.size();
    double const ours_per_fragment = static_cast<double>(f.ours.heap_bytes) / static_cast<double>(fragments);
    double const map_per_fragment = static_cast<double>(f.map.heap_bytes) / static_cast<double>(fragments);
    report.value("range_tree.ours_bytes_per_fragment", ours_per_fragment, "B");
    report.value("range_tree.std_map_bytes_per_fragment", map_per_fragment, "B");
    report.value("range_tree.ours_node_bytes", mem::PageRangeSet::NODE_BYTES, "B");
    report.value("range_tree.fragmented_window_gib", fragmented_gib, "GiB");
    // 1 TiB every other page = 2^27 runs; measured directly only when the window is 1 TiB.
    u64 const tib_fragments = PAGES_PER_TIB / 2;
    report.value("range_tree.ours_bytes_fragmented_1tib", fragmented_gib >= 1024
            ? static_cast<double>(f.ours.heap_bytes)
            : ours_per_fragment * static_cast<double>(tib_fragments), "B");
    if (fragmented_gib < 1024)
        report.note("range_tree.ours_bytes_fragmented_1tib",
            fmt::format("bytes per fragment measured over {} GiB ({} fragments) x 2^27 fragments", fragmented_gib, fragments));
    report.note("range_tree.ours_ops_per_s",
        fmt::format("fragmented workload ({} GiB, every other page): ({} inserts + {} random single-page lookups) / time",
            fragmented_gib, fragments, LOOKUPS));
    report.print();
    return 0;
}

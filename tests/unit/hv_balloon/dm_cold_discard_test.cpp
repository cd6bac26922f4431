// SPDX-License-Identifier: MIT
// Free page reporting: hv_gpa_page_range decoding and the engine's validation of hostile cold
// discard hints (outside RAM, ballooned, not yet hot-added, overlapping, malformed).
#include "devices/hv_balloon/dm_cold_discard.hpp"

#include <gtest/gtest.h>

#include "tests/support/dm_rig.hpp"

using namespace vmm;
using namespace vmm::hv_balloon;
using namespace vmm::test;
using mem::PageCount;

namespace {

// Linux's form (hv_balloon.c:1618-1629): largepage = 1, page_size = 2 MiB, base in 2 MiB units.
std::uint64_t large(std::uint64_t base_2m, std::uint64_t blocks)
{
    return (blocks - 1) | (1ull << 11) | (base_2m << 21);
}
std::uint64_t small(std::uint64_t pfn, std::uint64_t count) { return (count - 1) | (pfn << 12); }
constexpr std::uint64_t MIB_2 = 512; // Pages per 2 MiB.

ColdDiscardOutcome hint(DmRig& rig, std::initializer_list<std::uint64_t> ranges)
{
    std::vector<std::uint64_t> v { ranges };
    return rig.engine.on_cold_discard(v);
}

} // namespace

TEST(DmColdDiscard, DecodesLinuxTwoMegabyteRangesAndTheFourKilobyteForm)
{
    auto r = decode_gpa_page_range(large(100, 4));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->start.raw(), 100 * MIB_2);
    EXPECT_EQ(r->count.raw(), 4 * MIB_2);
    r = decode_gpa_page_range(small(0x12345, 7));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->start.raw(), 0x12345u);
    EXPECT_EQ(r->count.raw(), 7u);
    EXPECT_EQ(decode_gpa_page_range(large(1, 2048))->count.raw(), 2048 * MIB_2); // 11 bits: 2048 blocks.
    EXPECT_FALSE(decode_gpa_page_range(large(1, 1) | (1ull << 12))) << "1 GiB pages are refused";
    EXPECT_FALSE(decode_gpa_page_range(large(1, 1) | (1ull << 15))) << "reserved bits";
    // The largest 2 MiB base: its end passes 2^52 frames.
    EXPECT_FALSE(decode_gpa_page_range(large((1ull << 43) - 1, 2048)));
}

TEST(DmColdDiscard, ValidRangesOfOwnedRamAreDiscardedAndCounted)
{
    DmRig rig;
    rig.connect();
    // [128 MiB, 136 MiB) and [200 MiB, 202 MiB): free boot RAM.
    auto out = hint(rig, { large(64, 4), large(100, 1) });
    EXPECT_EQ(out.accepted, 2u);
    EXPECT_FALSE(out.refused);
    EXPECT_TRUE(rig.discard.discarded.contains_all(pages(64 * MIB_2, 4 * MIB_2)));
    EXPECT_TRUE(rig.discard.discarded.contains_all(pages(100 * MIB_2, MIB_2)));
    auto s = rig.status();
    EXPECT_EQ(s.counters.cold_discard_pages_total, 5 * MIB_2);
    EXPECT_EQ(s.counters.cold_discard_calls, 1u);
    EXPECT_EQ(s.current, rig.boot()) << "reporting changes no size";
    // Reported again later (the guest used and freed them again): discarded again.
    EXPECT_EQ(hint(rig, { large(64, 4) }).accepted, 1u);
}

TEST(DmColdDiscard, HostileRangesAreRefusedAndStopTheCall)
{
    DmRig rig;
    rig.connect();
    auto const discards_before = rig.discard.calls.size();
    // Outside RAM: the MMIO hole above 1 GiB, the hot-add window before any hot-add, the legacy
    // hole [640 KiB, 1 MiB), and frames past 2^52.
    for (auto raw : { large(768, 1) /* 1.5 GiB */, small(WINDOW.start.raw(), 1), small(160, 1),
             small((1ull << 52) - 1, 2) }) {
        auto out = hint(rig, { raw });
        EXPECT_EQ(out.accepted, 0u) << std::hex << raw;
        EXPECT_TRUE(out.refused) << std::hex << raw;
    }
    EXPECT_EQ(rig.discard.calls.size(), discards_before) << "nothing refused reaches the discard path";
    // Processing stops at the first invalid element; those before it are done.
    auto out = hint(rig, { large(64, 1), small(160, 1), large(70, 1) });
    EXPECT_EQ(out.accepted, 1u);
    EXPECT_TRUE(out.refused);
    EXPECT_FALSE(rig.discard.discarded.intersects(pages(70 * MIB_2, MIB_2)));
    // A range named twice in one call, or overlapping another one of it.
    out = hint(rig, { large(80, 2), large(81, 1) });
    EXPECT_EQ(out.accepted, 1u);
    EXPECT_TRUE(out.refused);
    EXPECT_GE(rig.status().counters.cold_discard_refused, 6u);
}

TEST(DmColdDiscard, BalloonedPagesAreNotTheGuestsToReport)
{
    DmRig rig;
    rig.connect();
    rig.target(rig.boot() - PageCount { 64 * MIB_PAGES });
    ASSERT_FALSE(rig.map.ballooned().empty());
    auto const run = *rig.map.ballooned().begin();
    auto out = rig.engine.on_cold_discard(std::array { small(run.start.raw(), 1) });
    EXPECT_TRUE(out.refused);
    // Partly ballooned: refused too.
    out = rig.engine.on_cold_discard(std::array { small(run.start.raw() - 1, 2) });
    EXPECT_TRUE(out.refused);
    rig.expect_consistent();
}

TEST(DmColdDiscard, HotAddedMemoryIsReportableOnceTheGuestAddedIt)
{
    DmRig rig;
    rig.connect();
    auto const window_2m = WINDOW.start.raw() / MIB_2;
    EXPECT_TRUE(hint(rig, { large(window_2m, 1) }).refused);
    rig.target(rig.boot() + PageCount { BLOCK_PAGES });
    ASSERT_EQ(rig.status().hot_added.raw(), BLOCK_PAGES);
    auto out = hint(rig, { large(window_2m, 1) });
    EXPECT_EQ(out.accepted, 1u);
    EXPECT_FALSE(out.refused);
    EXPECT_TRUE(rig.discard.discarded.contains_all(pages(WINDOW.start.raw(), MIB_2)));
    // Past what was hot-added: refused.
    EXPECT_TRUE(hint(rig, { large(window_2m + BLOCK_PAGES / MIB_2, 1) }).refused);
}

TEST(DmColdDiscard, ADiscardFailureIsCountedAndTheCallGoesOn)
{
    DmRig rig;
    rig.connect();
    rig.discard.fail_next = true;
    auto out = hint(rig, { large(64, 1), large(66, 1) });
    EXPECT_EQ(out.accepted, 2u);
    EXPECT_EQ(rig.status().counters.discard_failures, 1u);
    EXPECT_EQ(rig.status().counters.cold_discard_pages_total, MIB_2);
}

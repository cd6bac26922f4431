// SPDX-License-Identifier: MIT
#include "mem/page_range_set.hpp"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <vector>

using namespace vmm::mem;

namespace {

PageRange range(std::uint64_t start, std::uint64_t count) { return { Gpn { start }, PageCount { count } }; }

std::vector<PageRange> runs(PageRangeSet const& set) { return { set.begin(), set.end() }; }

// Disjoint, sorted, never touching, non-empty, total matches.
void expect_invariants(PageRangeSet const& set)
{
    std::uint64_t total = 0;
    std::optional<PageRange> previous;
    for (auto run : set) {
        ASSERT_FALSE(run.empty());
        if (previous) {
            ASSERT_LT(previous->end(), run.start) << "runs touch or overlap";
        }
        total += run.count.raw();
        previous = run;
    }
    ASSERT_EQ(set.total().raw(), total);
}

} // namespace

TEST(PageRangeSet, InsertMergesWithLeftRightAndBothNeighbours)
{
    PageRangeSet set;
    EXPECT_EQ(set.insert(range(10, 10)).raw(), 0u);
    EXPECT_EQ(set.insert(range(30, 10)).raw(), 0u);
    EXPECT_EQ(set.node_count(), 2u);
    set.insert(range(20, 5)); // adjacent to the left run only
    EXPECT_EQ(runs(set), (std::vector { range(10, 15), range(30, 10) }));
    set.insert(range(27, 3)); // adjacent to the right run only
    EXPECT_EQ(runs(set), (std::vector { range(10, 15), range(27, 13) }));
    set.insert(range(25, 2)); // fills the gap: both merge
    EXPECT_EQ(runs(set), (std::vector { range(10, 30) }));
    EXPECT_EQ(set.total().raw(), 30u);
    expect_invariants(set);
}

TEST(PageRangeSet, InsertCountsDuplicatesForInsideExactAndOverlappingRanges)
{
    PageRangeSet set;
    set.insert(range(100, 100));
    EXPECT_EQ(set.insert(range(120, 10)).raw(), 10u);  // inside
    EXPECT_EQ(set.insert(range(100, 100)).raw(), 100u); // exact
    EXPECT_EQ(set.insert(range(90, 20)).raw(), 10u);   // overlaps the start
    EXPECT_EQ(set.insert(range(190, 20)).raw(), 10u);  // overlaps the end
    EXPECT_EQ(runs(set), (std::vector { range(90, 120) }));
    set.insert(range(300, 10));
    set.insert(range(320, 10));
    EXPECT_EQ(set.insert(range(0, 1000)).raw(), 140u); // swallows three runs
    EXPECT_EQ(runs(set), (std::vector { range(0, 1000) }));
    EXPECT_EQ(set.total().raw(), 1000u);
    expect_invariants(set);
}

TEST(PageRangeSet, RemoveSplitsAtEveryBoundaryAndReturnsWhatWasRemoved)
{
    PageRangeSet set;
    set.insert(range(100, 100));
    EXPECT_EQ(set.remove(range(150, 10)).raw(), 10u); // inside: split in two
    EXPECT_EQ(runs(set), (std::vector { range(100, 50), range(160, 40) }));
    EXPECT_EQ(set.remove(range(90, 20)).raw(), 10u); // cuts the left end
    EXPECT_EQ(set.remove(range(195, 100)).raw(), 5u); // cuts the right end
    EXPECT_EQ(runs(set), (std::vector { range(110, 40), range(160, 35) }));
    EXPECT_EQ(set.remove(range(110, 40)).raw(), 40u); // exact run
    EXPECT_EQ(set.remove(range(0, 10)).raw(), 0u);     // nothing there
    EXPECT_EQ(runs(set), (std::vector { range(160, 35) }));
    set.insert(range(300, 10));
    EXPECT_EQ(set.remove(range(150, 1000)).raw(), 45u); // spans two runs
    EXPECT_TRUE(set.empty());
    EXPECT_EQ(set.total().raw(), 0u);
}

TEST(PageRangeSet, WorksAtPageZeroAndNearMaxGpn)
{
    PageRangeSet set;
    set.insert(range(0, 1));
    set.insert(range(MAX_GPN - 1, 1));
    set.insert(range(1, 1));
    set.insert(range(MAX_GPN - 3, 2));
    EXPECT_EQ(runs(set), (std::vector { range(0, 2), range(MAX_GPN - 3, 3) }));
    EXPECT_TRUE(set.contains_all(range(MAX_GPN - 3, 3)));
    EXPECT_FALSE(set.contains_all(range(MAX_GPN - 4, 2)));
    EXPECT_TRUE(set.intersects(range(MAX_GPN - 1, 1)));
    EXPECT_EQ(set.remove(range(MAX_GPN - 2, 1)).raw(), 1u);
    EXPECT_EQ(runs(set), (std::vector { range(0, 2), range(MAX_GPN - 3, 1), range(MAX_GPN - 1, 1) }));
    EXPECT_EQ(set.remove(range(0, 1)).raw(), 1u);
    EXPECT_EQ(set.pop_front(PageCount { 10 }), range(1, 1));
    expect_invariants(set);
}

TEST(PageRangeSet, QueriesAnswerContainsIntersectsAndOverlap)
{
    PageRangeSet set;
    set.insert(range(10, 10));
    set.insert(range(30, 10));
    EXPECT_TRUE(set.contains_all(range(10, 10)));
    EXPECT_FALSE(set.contains_all(range(15, 20))); // spans a gap
    EXPECT_TRUE(set.contains_all(range(0, 0)));
    EXPECT_FALSE(set.intersects(range(20, 10)));  // exactly the gap
    EXPECT_TRUE(set.intersects(range(19, 12)));
    EXPECT_FALSE(set.intersects(range(0, 10)));
    EXPECT_EQ(set.overlap(range(0, 100)).raw(), 20u);
    EXPECT_EQ(set.overlap(range(15, 20)).raw(), 10u);
}

TEST(PageRangeSet, InsertIfDisjointRefusesAnyOverlapAndMergesNeighbours)
{
    PageRangeSet set;
    EXPECT_TRUE(set.insert_if_disjoint(range(10, 10)));
    EXPECT_TRUE(set.insert_if_disjoint(range(30, 10)));
    EXPECT_FALSE(set.insert_if_disjoint(range(19, 2)));
    EXPECT_FALSE(set.insert_if_disjoint(range(25, 6)));
    EXPECT_FALSE(set.insert_if_disjoint(range(0, 100)));
    EXPECT_EQ(set.total().raw(), 20u);
    EXPECT_TRUE(set.insert_if_disjoint(range(20, 5))); // joins the left run
    EXPECT_TRUE(set.insert_if_disjoint(range(27, 3))); // joins the right run
    EXPECT_TRUE(set.insert_if_disjoint(range(25, 2))); // joins both
    EXPECT_EQ(runs(set), (std::vector { range(10, 30) }));
    EXPECT_TRUE(set.insert_if_disjoint(range(0, 5)));
    EXPECT_TRUE(set.insert_if_disjoint(range(MAX_GPN - 1, 1)));
    EXPECT_EQ(set.total().raw(), 36u);
    expect_invariants(set);
}

TEST(PageRangeSet, PopFrontTakesTheLowestPagesAndSplitsLargeRuns)
{
    PageRangeSet set;
    EXPECT_FALSE(set.pop_front(PageCount { 1 }));
    set.insert(range(1000, 100));
    set.insert(range(5000, 10));
    EXPECT_EQ(set.pop_front(PageCount { 30 }), range(1000, 30));
    EXPECT_EQ(set.pop_front(PageCount { 0 }), std::nullopt);
    EXPECT_EQ(set.pop_front(PageCount { 1000 }), range(1030, 70));
    EXPECT_EQ(set.pop_front(PageCount { 1000 }), range(5000, 10));
    EXPECT_TRUE(set.empty());
}

TEST(PageRangeSet, MetadataIsPerRunNotPerPage)
{
    PageRangeSet set;
    // 1 TiB of 2 MiB ranges arriving in order collapses into one run.
    for (std::uint64_t i = 0; i < (1ull << 40) / (2ull << 20); ++i)
        set.insert(range(i * 512, 512));
    EXPECT_EQ(set.node_count(), 1u);
    EXPECT_EQ(set.total().raw(), (1ull << 40) / 4096);
    EXPECT_EQ(set.metadata_bytes(), PageRangeSet::NODE_BYTES);
}

TEST(PageRangeSet, MoveTransfersOwnershipOfNodes)
{
    PageRangeSet a;
    a.insert(range(1, 5));
    PageRangeSet b = std::move(a);
    EXPECT_EQ(b.total().raw(), 5u);
    PageRangeSet c;
    c.insert(range(100, 1));
    c = std::move(b);
    EXPECT_EQ(runs(c), (std::vector { range(1, 5) }));
}

// Differential test against a set of page numbers, checking invariants after every step.
TEST(PageRangeSet, RandomOperationsMatchAPageSetModel)
{
    std::mt19937_64 random { 12345 };
    PageRangeSet set;
    std::set<std::uint64_t> model;
    for (int step = 0; step < 20000; ++step) {
        std::uint64_t start = random() % 2048;
        std::uint64_t count = 1 + random() % 64;
        auto r = range(start, count);
        std::uint64_t present = 0;
        for (auto page = start; page < start + count; ++page)
            present += model.count(page);
        switch (random() % 6) {
        case 5: {
            bool inserted = set.insert_if_disjoint(r);
            ASSERT_EQ(inserted, present == 0);
            if (inserted) {
                for (auto page = start; page < start + count; ++page)
                    model.insert(page);
            }
            break;
        }
        case 0:
        case 1:
            ASSERT_EQ(set.insert(r).raw(), present);
            for (auto page = start; page < start + count; ++page)
                model.insert(page);
            break;
        case 2:
            ASSERT_EQ(set.remove(r).raw(), present);
            for (auto page = start; page < start + count; ++page)
                model.erase(page);
            break;
        case 3: {
            auto popped = set.pop_front(PageCount { count });
            if (model.empty()) {
                ASSERT_FALSE(popped);
                break;
            }
            ASSERT_TRUE(popped);
            ASSERT_EQ(popped->start.raw(), *model.begin());
            for (auto page = popped->start.raw(); page < popped->end().raw(); ++page)
                ASSERT_EQ(model.erase(page), 1u);
            break;
        }
        default:
            ASSERT_EQ(set.intersects(r), present > 0);
            ASSERT_EQ(set.contains_all(r), present == count);
            ASSERT_EQ(set.overlap(r).raw(), present);
        }
        ASSERT_EQ(set.total().raw(), model.size());
        expect_invariants(set);
    }
}

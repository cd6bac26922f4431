// SPDX-License-Identifier: MIT
#include "devices/hv_balloon/dynamic_memory.hpp"

#include <gtest/gtest.h>

#include "tests/support/dm_rig.hpp"

using namespace vmm;
using namespace vmm::hv_balloon;
using namespace vmm::test;
using mem::PageCount;

namespace {
FakeGuestOptions guest_with(HotAddBehaviour behaviour)
{
    FakeGuestOptions options;
    options.hot_add = behaviour;
    return options;
}
} // namespace

TEST(DmHotAdd, GrowsThroughRangeOnlyRequestsBackedByMemslotsBeforeTheyAreSent)
{
    DmRig rig;
    rig.connect();
    EXPECT_EQ(rig.sink.adds, 0u); // Nothing mapped before the first hot-add.
    rig.target(rig.boot() + PageCount { 2 * BLOCK_PAGES });
    auto status = rig.status();
    EXPECT_EQ(status.current, rig.boot() + PageCount { 2 * BLOCK_PAGES });
    EXPECT_EQ(status.hot_added.raw(), 2 * BLOCK_PAGES);
    EXPECT_EQ(rig.guest.hot_add_request_sizes, (std::vector<std::uint16_t> { 16 }));
    EXPECT_EQ(rig.guest.hot_added.total().raw(), 2 * BLOCK_PAGES);
    EXPECT_TRUE(rig.guest.hot_added.contains_all(pages(WINDOW.start.raw(), 2 * BLOCK_PAGES)));
    EXPECT_EQ(rig.sink.adds, 2u); // Two 128 MiB slots, no more.
    EXPECT_EQ(status.memslots_mapped, 2u);
    EXPECT_EQ(status.operation->state, OperationState::Done);
    EXPECT_EQ(status.counters.hot_added_pages_total, 2 * BLOCK_PAGES);
    rig.expect_consistent();
}

TEST(DmHotAdd, RequestsAreCappedStrictlyIncreasingAndNeverOverlap)
{
    DmConfig config;
    config.max_hot_add_pages_per_request = PageCount { 3 * BLOCK_PAGES + 5 };
    DmRig rig { config };
    rig.connect();
    rig.target(rig.boot() + PageCount { 7 * BLOCK_PAGES });
    EXPECT_EQ(rig.guest.hot_add_requests, 3u); // 3 + 3 + 1 blocks.
    rig.target(rig.boot() + PageCount { 9 * BLOCK_PAGES });
    EXPECT_EQ(rig.guest.hot_add_requests, 4u);
    EXPECT_EQ(rig.map.hot_added().node_count(), 1u);
    EXPECT_EQ(rig.map.hot_added_pages().raw(), 9 * BLOCK_PAGES);
    rig.expect_consistent(); // The fake guest flags any overlap or unaligned range.
}

TEST(DmHotAdd, TargetBetweenBlocksIsReachedByBallooningTheRoundingExcess)
{
    DmRig rig;
    rig.connect();
    auto target = rig.boot() + PageCount { 200 * MIB_PAGES };
    rig.target(target);
    auto status = rig.status();
    EXPECT_EQ(status.current, target);
    EXPECT_EQ(status.hot_added.raw(), 2 * BLOCK_PAGES);
    EXPECT_EQ(status.ballooned.raw(), 56 * MIB_PAGES);
    EXPECT_EQ(status.operation->state, OperationState::Done);
    rig.expect_consistent();
}

TEST(DmHotAdd, UnballoonComesBeforeHotAdd)
{
    DmRig rig;
    rig.connect();
    rig.target(rig.boot() - PageCount { 32 * MIB_PAGES });
    rig.target(rig.boot() + PageCount { BLOCK_PAGES });
    EXPECT_EQ(rig.guest.unballoon_requests, 1u); // 32 MiB: one round (the default cap).
    EXPECT_EQ(rig.guest.hot_add_requests, 1u);
    EXPECT_EQ(rig.map.current_pages(), rig.boot() + PageCount { BLOCK_PAGES });
    rig.expect_consistent();
}

TEST(DmHotAdd, MemslotFailureMeansTheRequestIsNeverSent)
{
    DmRig rig;
    rig.connect();
    rig.sink.fail_next_add = true;
    rig.target(rig.boot() + PageCount { BLOCK_PAGES });
    auto status = rig.status();
    EXPECT_EQ(rig.guest.hot_add_requests, 0u);
    EXPECT_EQ(status.counters.memslot_failures, 1u);
    EXPECT_EQ(status.operation->state, OperationState::Failed);
    EXPECT_EQ(status.current, rig.boot());
    rig.target(rig.boot() + PageCount { BLOCK_PAGES }); // Works once the sink does.
    EXPECT_EQ(rig.guest.hot_add_requests, 1u);
    rig.expect_consistent();
}

TEST(DmHotAdd, PartialAnswerStopsFurtherHotAdds)
{
    DmRig rig { DmConfig {}, guest_with(HotAddBehaviour::Partial) };
    rig.connect();
    rig.target(rig.boot() + PageCount { 4 * BLOCK_PAGES });
    auto status = rig.status();
    EXPECT_EQ(status.hot_added.raw(), BLOCK_PAGES);
    EXPECT_EQ(rig.guest.hot_add_requests, 1u);
    EXPECT_FALSE(status.hot_add_available);
    EXPECT_EQ(status.operation->state, OperationState::Failed);
    rig.target(rig.boot() + PageCount { 4 * BLOCK_PAGES });
    EXPECT_EQ(rig.guest.hot_add_requests, 1u);
    rig.expect_consistent();
}

TEST(DmHotAdd, TransientFailureEndsTheOperationAndANewTargetRetriesTheSameRange)
{
    DmRig rig { DmConfig {}, guest_with(HotAddBehaviour::Transient) };
    rig.connect();
    rig.target(rig.boot() + PageCount { BLOCK_PAGES });
    EXPECT_EQ(rig.status().operation->state, OperationState::Failed);
    EXPECT_TRUE(rig.status().hot_add_available);
    rig.guest.options.hot_add = HotAddBehaviour::Full;
    rig.target(rig.boot() + PageCount { BLOCK_PAGES });
    EXPECT_EQ(rig.guest.hot_add_requests, 2u);
    EXPECT_TRUE(rig.map.hot_added().contains_all(pages(WINDOW.start.raw(), BLOCK_PAGES)));
    rig.expect_consistent();
}

TEST(DmHotAdd, PermanentFailureDisablesHotAddUntilTheGuestReconnects)
{
    DmRig rig { DmConfig {}, guest_with(HotAddBehaviour::Permanent) };
    rig.connect();
    rig.target(rig.boot() + PageCount { BLOCK_PAGES });
    auto status = rig.status();
    EXPECT_FALSE(status.hot_add_available);
    EXPECT_EQ(status.operation->state, OperationState::Failed);
    EXPECT_EQ(status.operation->reason, "cannot grow: the guest disabled hot-add");
}

TEST(DmHotAdd, ResponseClaimingMorePagesThanRequestedIsClamped)
{
    DmRig rig { DmConfig {}, guest_with(HotAddBehaviour::OverReport) };
    rig.connect();
    rig.target(rig.boot() + PageCount { BLOCK_PAGES });
    auto status = rig.status();
    EXPECT_EQ(status.hot_added.raw(), BLOCK_PAGES);
    EXPECT_EQ(status.counters.hot_add_overreports, 1u);
    rig.expect_consistent();
}

TEST(DmHotAdd, TimedOutRequestIsNeverReofferedAndALateAnswerIsRecorded)
{
    DmRig rig { DmConfig {}, guest_with(HotAddBehaviour::Ignore) };
    rig.connect();
    rig.target(rig.boot() + PageCount { BLOCK_PAGES });
    EXPECT_EQ(rig.engine.state(), State::HotAddWaitReply);
    rig.advance(std::chrono::seconds { 16 }); // 10 s + 6 s per block.
    EXPECT_EQ(rig.status().operation->state, OperationState::TimedOut);
    rig.guest.options.hot_add = HotAddBehaviour::Full;
    rig.guest.send(dm_hot_add_response(77, BLOCK_PAGES, 1)); // The late answer.
    EXPECT_EQ(rig.map.hot_added_pages().raw(), BLOCK_PAGES);
    rig.target(rig.boot() + PageCount { 2 * BLOCK_PAGES });
    EXPECT_EQ(rig.map.hot_added_pages().raw(), 2 * BLOCK_PAGES);
    EXPECT_TRUE(rig.map.hot_added().contains_all(pages(WINDOW.start.raw(), 2 * BLOCK_PAGES)));
}

TEST(DmHotAdd, GuestWithoutHotAddCapabilityCannotGrowPastBoot)
{
    FakeGuestOptions options;
    options.caps = 0x1; // balloon only
    DmRig rig { DmConfig {}, options };
    rig.connect();
    rig.target(rig.boot() + PageCount { BLOCK_PAGES });
    EXPECT_EQ(rig.status().operation->state, OperationState::Failed);
    EXPECT_EQ(rig.guest.hot_add_requests, 0u);
}

TEST(DmHotAdd, LargerGuestAlignmentIsHonoured)
{
    FakeGuestOptions options;
    options.caps = 0x3 | (10u << 2); // 1 GiB alignment
    DmRig rig { DmConfig {}, options };
    rig.connect();
    rig.target(rig.boot() + PageCount { BLOCK_PAGES });
    EXPECT_EQ(rig.map.hot_added_pages().raw(), GIB_PAGES);
    EXPECT_EQ(rig.map.current_pages(), rig.boot() + PageCount { BLOCK_PAGES });
    rig.expect_consistent();
}

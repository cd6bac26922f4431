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

// Linux answers hot-add requests in order and its answer names no range (hv_balloon.c:1060-1071),
// so a request sent after a timeout would take the late answer for its own. Found by e2e
// dm-balance: a full answer to a timed-out 128 MiB request, read as a short answer to the next
// 384 MiB request, ended hot-add for the boot. Now the engine waits for the late answer before
// any other hot-add, records it where it belongs, and the window stays open.
TEST(DmHotAdd, ALateAnswerIsAwaitedBeforeTheNextRequestAndDoesNotEndHotAdd)
{
    DmRig rig { DmConfig {}, guest_with(HotAddBehaviour::Ignore) };
    rig.connect();
    rig.target(rig.boot() + PageCount { BLOCK_PAGES });
    rig.advance(std::chrono::seconds { 16 }); // 10 s + 6 s per block.
    ASSERT_EQ(rig.status().operation->state, OperationState::TimedOut);
    // A new target (auto mode retries) while the guest is still adding the first block.
    rig.guest.options.hot_add = HotAddBehaviour::Full;
    auto id = rig.engine.set_target(rig.boot() + PageCount { 3 * BLOCK_PAGES });
    ASSERT_TRUE(id.has_value());
    EXPECT_EQ(rig.port.sent.size(), 0u) << "no hot-add request while one is unanswered";
    EXPECT_EQ(rig.status().operation->state, OperationState::Running);
    EXPECT_TRUE(rig.status().hot_add_available) << "the policy may still count on the window";
    // The guest's answer to the first request comes first (it works through them in order).
    rig.guest.send(dm_hot_add_response(77, BLOCK_PAGES, 1));
    EXPECT_TRUE(rig.map.hot_added().contains_all(pages(WINDOW.start.raw(), BLOCK_PAGES)));
    rig.guest.pump(); // The waiting operation went on: one request for the 2 blocks left.
    auto status = rig.status();
    EXPECT_EQ(rig.guest.hot_add_requests, 2u);
    EXPECT_EQ(status.operation->id, *id);
    EXPECT_EQ(status.operation->state, OperationState::Done);
    EXPECT_EQ(status.current, rig.boot() + PageCount { 3 * BLOCK_PAGES });
    EXPECT_TRUE(rig.map.hot_added().contains_all(pages(WINDOW.start.raw(), 3 * BLOCK_PAGES)));
    EXPECT_TRUE(status.hot_add_available) << "a full late answer does not end hot-add";
    rig.expect_consistent();
}

// A late answer is judged as an on-time one would be: short ends hot-add for the boot
// (hv_balloon.c:355-358), "transient, nothing added" lets the same range be offered again.
TEST(DmHotAdd, ALateAnswerIsJudgedAsAnOnTimeOneWouldBe)
{
    DmRig rig { DmConfig {}, guest_with(HotAddBehaviour::Ignore) };
    rig.connect();
    rig.target(rig.boot() + PageCount { 2 * BLOCK_PAGES });
    rig.advance(std::chrono::seconds { 22 }); // 10 s + 6 s per block.
    ASSERT_EQ(rig.status().operation->state, OperationState::TimedOut);
    rig.guest.send(dm_hot_add_response(77, 0, 0)); // Transient: nothing added.
    EXPECT_EQ(rig.map.hot_added_pages().raw(), 0u);
    rig.guest.options.hot_add = HotAddBehaviour::Full;
    rig.target(rig.boot() + PageCount { BLOCK_PAGES });
    EXPECT_TRUE(rig.map.hot_added().contains_all(pages(WINDOW.start.raw(), BLOCK_PAGES))) << "offered again";

    DmRig short_rig { DmConfig {}, guest_with(HotAddBehaviour::Ignore) };
    short_rig.connect();
    short_rig.target(short_rig.boot() + PageCount { 2 * BLOCK_PAGES });
    short_rig.advance(std::chrono::seconds { 22 });
    short_rig.guest.send(dm_hot_add_response(77, BLOCK_PAGES, 1)); // 1 of 2 blocks.
    EXPECT_EQ(short_rig.map.hot_added_pages().raw(), BLOCK_PAGES);
    EXPECT_FALSE(short_rig.status().hot_add_available);
    // Ballooning never waited for it: shrinking works meanwhile in another rig.
    DmRig busy { DmConfig {}, guest_with(HotAddBehaviour::Ignore) };
    busy.connect();
    busy.target(busy.boot() + PageCount { BLOCK_PAGES });
    busy.advance(std::chrono::seconds { 16 });
    busy.target(busy.boot() - PageCount { 64 * MIB_PAGES });
    EXPECT_EQ(busy.status().operation->state, OperationState::Done);
    EXPECT_EQ(busy.status().current, busy.boot() - PageCount { 64 * MIB_PAGES });
    busy.expect_consistent();
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

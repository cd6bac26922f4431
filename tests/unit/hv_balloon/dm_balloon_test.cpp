// SPDX-License-Identifier: MIT
#include "devices/hv_balloon/dynamic_memory.hpp"

#include <gtest/gtest.h>

#include "tests/support/dm_rig.hpp"

using namespace vmm;
using namespace vmm::hv_balloon;
using namespace vmm::test;
using mem::PageCount;

namespace {

// 600 free 2 MiB blocks at [256 MiB, 1456 MiB)... inside 1 GiB boot RAM: 300 blocks at
// [128 MiB, 728 MiB), plus 1000 scattered free 4 KiB pages (every other page) above.
FakeGuestOptions fragmented_guest()
{
    FakeGuestOptions options;
    options.free_ram.push_back(pages(128 * MIB_PAGES, 300 * 512));
    for (std::uint64_t i = 0; i < 1000; ++i)
        options.free_ram.push_back(pages(800 * MIB_PAGES + 2 * i, 1));
    return options;
}

} // namespace

TEST(DmBalloon, GuestAnswersWithTwoMiBRangesThenFourKiBRangesInSeveralMessages)
{
    DmConfig config;
    DmRig rig { config, fragmented_guest() };
    rig.connect();
    PageCount wanted { 300 * 512 + 1000 };
    auto id = rig.target(rig.boot() - wanted);
    auto status = rig.status();
    EXPECT_EQ(status.current, rig.boot() - wanted);
    EXPECT_EQ(status.ballooned, wanted);
    EXPECT_EQ(rig.guest.balloon_requests, 1u);
    ASSERT_TRUE(status.operation);
    EXPECT_EQ(status.operation->id, id);
    EXPECT_EQ(status.operation->state, OperationState::Done);
    EXPECT_EQ(status.operation->done, wanted);
    EXPECT_EQ(status.counters.balloon_pages_total, wanted.raw());
    // 2 MiB blocks arrive in order and coalesce; the 4 KiB pages never touch.
    EXPECT_EQ(rig.discard.discarded.total(), wanted);
    EXPECT_LT(rig.discard.calls.size(), 300u + 1000u);
    EXPECT_EQ(status.ballooned_runs, 1u + 1000u);
    // Messages: 510 ranges max each; progress events per message.
    EXPECT_GE(rig.count_events<DmOperationProgress>(), 4u);
    EXPECT_EQ(rig.count_events<DmOperationDone>(), 1u);
    rig.expect_consistent();
}

TEST(DmBalloon, UnballoonReturnsOnlyBalloonedPagesInMessagesOfAtMost4KiB)
{
    DmRig rig { DmConfig {}, fragmented_guest() };
    rig.connect();
    rig.target(rig.boot() - PageCount { 300 * 512 + 1000 });
    rig.target(rig.boot());
    auto status = rig.status();
    EXPECT_EQ(status.current, rig.boot());
    EXPECT_EQ(status.ballooned.raw(), 0u);
    EXPECT_TRUE(rig.guest.ballooned.empty());
    // 1001 runs -> at least two messages of <= 510 ranges, each answered.
    EXPECT_GE(rig.guest.unballoon_requests, 2u);
    EXPECT_EQ(status.counters.unballoon_requests, rig.guest.unballoon_requests);
    EXPECT_EQ(status.counters.unballoon_pages_total, 300u * 512 + 1000);
    EXPECT_EQ(status.operation->state, OperationState::Done);
    rig.expect_consistent();
}

TEST(DmBalloon, UnballoonIsSentInRoundsOfAtMostTheCap)
{
    // Linux frees an unballoon request's pages in softirq; the default cap keeps each round short.
    DmRig rig;
    rig.connect();
    std::uint64_t cap = DEFAULT_MAX_UNBALLOON_PAGES_PER_REQUEST;
    rig.target(rig.boot() - PageCount { 2 * cap + 100 });
    rig.target(rig.boot());
    EXPECT_EQ(rig.guest.unballoon_request_pages, (std::vector<std::uint64_t> { cap, cap, 100 }));
    EXPECT_EQ(rig.status().counters.unballoon_requests, 3u);
    EXPECT_EQ(rig.map.current_pages(), rig.boot());
    rig.expect_consistent();
}

TEST(DmBalloon, UnballoonCapIsConfigurable)
{
    DmConfig config;
    config.max_unballoon_pages_per_request = PageCount { 1000 };
    DmRig rig { config };
    rig.connect();
    rig.target(rig.boot() - PageCount { 2500 });
    rig.target(rig.boot());
    EXPECT_EQ(rig.guest.unballoon_request_pages, (std::vector<std::uint64_t> { 1000, 1000, 500 }));
    rig.expect_consistent();
}

TEST(DmBalloon, PartialUnballoonReturnsExactlyTheDifference)
{
    DmRig rig;
    rig.connect();
    rig.target(rig.boot() - PageCount { 100 * 512 });
    rig.target(rig.boot() - PageCount { 40 * 512 + 7 });
    EXPECT_EQ(rig.map.current_pages(), rig.boot() - PageCount { 40 * 512 + 7 });
    EXPECT_EQ(rig.guest.ballooned.total().raw(), 40u * 512 + 7);
    rig.expect_consistent();
}

TEST(DmBalloon, LargeTargetsAreSplitIntoRequestsOfAtMostTheCap)
{
    DmConfig config;
    config.max_balloon_pages_per_request = PageCount { 50000 };
    DmRig rig { config };
    rig.connect();
    rig.target(rig.boot() - PageCount { 120000 });
    EXPECT_EQ(rig.guest.balloon_request_pages, (std::vector<std::uint32_t> { 50000, 50000, 20000 }));
    EXPECT_EQ(rig.map.current_pages(), rig.boot() - PageCount { 120000 });
    rig.expect_consistent();
}

TEST(DmBalloon, GuestAtItsFloorEndsTheOperationWithoutRetrying)
{
    FakeGuestOptions options;
    options.floor = PageCount { 800 * MIB_PAGES };
    DmRig rig { DmConfig {}, options };
    rig.connect();
    rig.target(rig.boot() - PageCount { 200 * MIB_PAGES });
    auto status = rig.status();
    EXPECT_EQ(rig.guest.balloon_requests, 1u);
    EXPECT_EQ(status.ballooned.raw(), 96 * MIB_PAGES);
    EXPECT_EQ(status.operation->state, OperationState::Failed);
    EXPECT_EQ(status.operation->done.raw(), 96 * MIB_PAGES);
    EXPECT_EQ(status.state, State::Idle);
    rig.advance(std::chrono::seconds { 100 });
    EXPECT_EQ(rig.guest.balloon_requests, 1u);
    // Setting a target again re-arms.
    rig.target(rig.boot() - PageCount { 200 * MIB_PAGES });
    EXPECT_EQ(rig.guest.balloon_requests, 2u);
    rig.expect_consistent();
}

TEST(DmBalloon, NewTargetMidBalloonWaitsForTheOutstandingMessagesThenReverses)
{
    DmRig rig { DmConfig {}, fragmented_guest() };
    rig.connect();
    auto first = rig.engine.set_target(rig.boot() - PageCount { 300 * 512 + 1000 }).value();
    rig.guest.process_host();        // The guest prepares all its response messages...
    ASSERT_TRUE(rig.guest.deliver_one()); // ...and only the first arrives.
    auto second = rig.engine.set_target(rig.boot()).value();
    EXPECT_NE(first, second);
    EXPECT_TRUE(rig.port.sent.empty()) << "a second operation was sent while one was outstanding";
    EXPECT_EQ(rig.engine.state(), State::BalloonWaitReply);
    rig.guest.pump();
    auto status = rig.status();
    EXPECT_EQ(status.current, rig.boot());
    EXPECT_EQ(status.operation->id, second);
    EXPECT_EQ(status.operation->state, OperationState::Done);
    EXPECT_EQ(status.counters.operations_superseded, 1u);
    rig.expect_consistent();
}

TEST(DmBalloon, FullRingDelaysTheRequestAndANewTargetReplacesTheUnsentOne)
{
    DmRig rig;
    rig.connect();
    rig.port.busy = true;
    rig.engine.set_target(rig.boot() - PageCount { 1024 }).value();
    EXPECT_EQ(rig.engine.state(), State::BalloonWaitRingSpace);
    rig.engine.set_target(rig.boot() - PageCount { 2048 }).value();
    EXPECT_EQ(rig.engine.state(), State::BalloonWaitRingSpace);
    rig.port.busy = false;
    rig.engine.on_ring_space();
    rig.guest.pump();
    EXPECT_EQ(rig.guest.balloon_request_pages, (std::vector<std::uint32_t> { 2048 }));
    EXPECT_EQ(rig.map.current_pages(), rig.boot() - PageCount { 2048 });
    rig.expect_consistent();
}

TEST(DmBalloon, FullRingDuringUnballoonPutsTheRangesBackUntilThereIsSpace)
{
    DmRig rig { DmConfig {}, fragmented_guest() };
    rig.connect();
    rig.target(rig.boot() - PageCount { 300 * 512 + 1000 });
    rig.port.busy = true;
    rig.engine.set_target(rig.boot()).value();
    EXPECT_EQ(rig.engine.state(), State::UnballoonWaitRingSpace);
    EXPECT_EQ(rig.map.ballooned_pages().raw(), 300u * 512 + 1000); // Nothing lost.
    rig.port.busy = false;
    rig.engine.on_ring_space();
    rig.guest.pump();
    EXPECT_EQ(rig.map.current_pages(), rig.boot());
    rig.expect_consistent();
}

TEST(DmBalloon, GuestThatIgnoresBalloonRequestsTimesOutAndLateAnswersAreRefused)
{
    FakeGuestOptions options;
    options.ignore_balloon = true;
    DmRig rig { DmConfig {}, options };
    rig.connect();
    rig.target(rig.boot() - PageCount { 512 });
    EXPECT_EQ(rig.engine.state(), State::BalloonWaitReply);
    rig.advance(std::chrono::seconds { 29 });
    EXPECT_EQ(rig.engine.state(), State::BalloonWaitReply);
    rig.advance(std::chrono::seconds { 1 });
    auto status = rig.status();
    EXPECT_EQ(status.state, State::Idle);
    EXPECT_EQ(status.operation->state, OperationState::TimedOut);
    EXPECT_EQ(status.counters.timeouts, 1u);
    EXPECT_EQ(status.counters.operations_timed_out, 1u);
    std::array late { DmPageRange::make(GUEST_FREE.start.raw(), 512) };
    rig.guest.send(dm_balloon_response(50, false, late));
    EXPECT_TRUE(rig.discard.calls.empty());
    EXPECT_EQ(rig.status().counters.rejected_ranges[static_cast<std::size_t>(mem::RejectReason::Unsolicited)], 1u);
}

TEST(DmBalloon, ShortAnswerToASupersededBalloonDoesNotFailTheNewGrowTarget)
{
    FakeGuestOptions options;
    options.floor = PageCount { 800 * MIB_PAGES }; // The guest can give only 96 MiB.
    DmRig rig { DmConfig {}, options };
    rig.connect();
    rig.engine.set_target(rig.boot() - PageCount { 200 * MIB_PAGES }).value();
    rig.guest.process_host();
    auto grow = rig.engine.set_target(rig.boot()).value();
    rig.guest.pump();
    auto status = rig.status();
    EXPECT_EQ(status.operation->id, grow);
    EXPECT_EQ(status.operation->state, OperationState::Done);
    EXPECT_EQ(status.current, rig.boot());
    rig.expect_consistent();
}

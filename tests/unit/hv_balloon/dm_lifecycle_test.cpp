// SPDX-License-Identifier: MIT
// Reboots, reconnects and channel closes in the middle of operations.
#include "devices/hv_balloon/dynamic_memory.hpp"

#include <gtest/gtest.h>

#include "tests/support/dm_rig.hpp"

using namespace vmm;
using namespace vmm::hv_balloon;
using namespace vmm::test;
using mem::PageCount;

TEST(DmLifecycle, MachineResetReleasesHotAddAndForgetsBalloonThenReappliesTheTarget)
{
    DmRig rig;
    rig.connect();
    auto target = rig.boot() + PageCount { 200 * MIB_PAGES }; // hot-add 256 MiB, balloon 56 MiB
    rig.target(target);
    ASSERT_EQ(rig.map.current_pages(), target);
    auto discarded_before = rig.discard.discarded.total();
    rig.engine.on_machine_reset();
    auto status = rig.status();
    EXPECT_EQ(status.state, State::Closed);
    EXPECT_FALSE(status.connected);
    EXPECT_EQ(status.current, rig.boot());
    EXPECT_EQ(status.hot_added.raw(), 0u);
    EXPECT_EQ(status.ballooned.raw(), 0u);
    EXPECT_TRUE(rig.sink.slots.empty());
    EXPECT_EQ(rig.sink.removes, 2u);
    // The whole mapped window part was discarded.
    EXPECT_TRUE(rig.discard.discarded.contains_all(pages(WINDOW.start.raw(), 2 * BLOCK_PAGES)));
    EXPECT_GT(rig.discard.discarded.total(), discarded_before);
    ASSERT_EQ(rig.count_events<DmGuestReset>(), 1u);
    EXPECT_EQ(std::get<DmGuestReset>(rig.events.back()).kind, ResetKind::MachineReset);
    rig.engine.on_close(); // VMBus reset afterwards: idempotent.
    EXPECT_EQ(rig.count_events<DmGuestReset>(), 1u);
    // The new boot reconnects and the target is applied again from scratch.
    rig.guest.reboot();
    rig.connect();
    EXPECT_EQ(rig.map.current_pages(), target);
    EXPECT_EQ(rig.status().operation->state, OperationState::Done);
    rig.expect_consistent();
}

TEST(DmLifecycle, RebootInTheMiddleOfABalloonAbandonsItSafely)
{
    FakeGuestOptions options;
    options.try_2m = false; // 4 KiB ranges: 510 pages per message, many messages.
    DmRig rig { DmConfig {}, options };
    rig.connect();
    rig.engine.set_target(rig.boot() - PageCount { 300 * MIB_PAGES }).value();
    rig.guest.process_host();
    ASSERT_TRUE(rig.guest.deliver_one()); // Part of the answer arrived.
    EXPECT_GT(rig.map.ballooned_pages().raw(), 0u);
    rig.engine.on_machine_reset();
    EXPECT_EQ(rig.status().operation->state, OperationState::Failed);
    rig.guest.reboot();
    EXPECT_EQ(rig.map.ballooned_pages().raw(), 0u);
    // Stale messages of the old boot arriving now (no channel) are dropped.
    rig.guest.outbox.clear();
    rig.connect();
    EXPECT_EQ(rig.map.current_pages(), rig.boot() - PageCount { 300 * MIB_PAGES });
    rig.expect_consistent();
}

TEST(DmLifecycle, NewVersionRequestMidOperationIsAReconnect)
{
    DmRig rig;
    rig.connect();
    rig.guest.options.ignore_balloon = true;
    rig.target(rig.boot() - PageCount { 4096 });
    EXPECT_EQ(rig.engine.state(), State::BalloonWaitReply);
    rig.guest.send(dm_version_request(rig.guest.next_trans_id(), DYNMEM_PROTOCOL_VERSION_3, false));
    auto status = rig.status();
    EXPECT_EQ(status.state, State::WaitCaps);
    EXPECT_EQ(status.operation->state, OperationState::Failed);
    EXPECT_EQ(rig.count_events<DmGuestReset>(), 1u);
    EXPECT_EQ(std::get<DmGuestReset>(rig.events.back()).kind, ResetKind::Reconnected);
}

TEST(DmLifecycle, ChannelCloseKeepsHotAddedMemoryButForgetsTheBalloon)
{
    DmRig rig;
    rig.connect();
    rig.target(rig.boot() + PageCount { 2 * BLOCK_PAGES });
    rig.target(rig.boot() + PageCount { BLOCK_PAGES }); // balloon one block back
    ASSERT_EQ(rig.map.ballooned_pages().raw(), BLOCK_PAGES);
    rig.engine.on_close();
    auto status = rig.status();
    EXPECT_EQ(status.state, State::Closed);
    EXPECT_EQ(status.hot_added.raw(), 2 * BLOCK_PAGES); // The guest kernel still uses it.
    EXPECT_EQ(status.ballooned.raw(), 0u);
    EXPECT_EQ(rig.sink.slots.size(), 2u);
    // A new driver instance (module reload) continues above what was added.
    rig.guest.ballooned.clear(); // The old driver's balloon is gone with it.
    rig.guest.caps_accepted = false;
    rig.guest.version.reset();
    rig.engine.set_target(rig.boot() + PageCount { 3 * BLOCK_PAGES }).value();
    rig.connect();
    EXPECT_EQ(rig.map.hot_added_pages().raw(), 3 * BLOCK_PAGES);
    EXPECT_TRUE(rig.guest.violations.empty());
}

TEST(DmLifecycle, UnballoonTimeoutCountsThePagesAsReturned)
{
    DmRig rig;
    rig.connect();
    rig.target(rig.boot() - PageCount { 4096 });
    rig.guest.options.ignore_balloon = true;
    rig.target(rig.boot());
    EXPECT_EQ(rig.engine.state(), State::UnballoonWaitReply);
    rig.advance(std::chrono::seconds { 10 });
    auto status = rig.status();
    EXPECT_EQ(status.state, State::Idle);
    EXPECT_EQ(status.operation->state, OperationState::TimedOut);
    EXPECT_EQ(status.ballooned.raw(), 0u); // Never unballooned twice.
    EXPECT_EQ(status.counters.unballoon_pages_total, 4096u);
}

TEST(DmLifecycle, RingThatStaysFullTimesOut)
{
    DmRig rig;
    rig.connect();
    rig.port.busy = true;
    rig.target(rig.boot() - PageCount { 4096 });
    rig.advance(std::chrono::seconds { 10 });
    auto status = rig.status();
    EXPECT_EQ(status.state, State::Idle);
    EXPECT_EQ(status.operation->state, OperationState::TimedOut);
    EXPECT_EQ(status.counters.timeouts, 1u);
}

TEST(DmLifecycle, TargetSetBeforeTheGuestConnectsIsAppliedOnConnect)
{
    DmRig rig;
    auto id = rig.engine.set_target(rig.boot() - PageCount { 8192 }).value();
    EXPECT_EQ(rig.status().operation->state, OperationState::Running);
    rig.connect();
    EXPECT_EQ(rig.map.current_pages(), rig.boot() - PageCount { 8192 });
    EXPECT_EQ(rig.status().operation->id, id);
    EXPECT_EQ(rig.status().operation->state, OperationState::Done);
}

TEST(DmLifecycle, DiscardFailureKeepsThePagesBalloonedAndIsCounted)
{
    DmRig rig;
    rig.connect();
    rig.discard.fail_next = true;
    rig.target(rig.boot() - PageCount { 512 });
    auto status = rig.status();
    EXPECT_EQ(status.ballooned.raw(), 512u);
    EXPECT_EQ(status.counters.discard_failures, 1u);
    EXPECT_EQ(status.operation->state, OperationState::Done);
}

TEST(DmLifecycle, BrokenChannelFailsTheOperationInsteadOfWaiting)
{
    DmRig rig;
    rig.connect();
    rig.port.fail_sends = true;
    rig.target(rig.boot() - PageCount { 512 });
    auto status = rig.status();
    EXPECT_EQ(status.state, State::Idle);
    EXPECT_EQ(status.operation->state, OperationState::Failed);
    EXPECT_EQ(status.counters.send_failures, 1u);
}

TEST(DmLifecycle, OfferUsesTheDynamicMemoryClassGuidAndTheConfiguredInstance)
{
    DmConfig config;
    config.instance.bytes[0] = 0x42;
    DmRig rig { config };
    auto offer = rig.engine.offer();
    EXPECT_EQ(offer.interface_type.bytes, DM_CLASS_GUID_BYTES);
    EXPECT_EQ(offer.interface_instance.bytes[0], 0x42);
}

// Idle means idle: the engine has a deadline only while it waits for something, so the VMM can
// arm one timer for it instead of ticking every 100 ms (BENCHMARKS.md, idle wake-ups).
TEST(DmLifecycle, NextDeadlineOnlyWhileWaitingAndTickingBeforeItDoesNothing)
{
    DmRig rig;
    EXPECT_EQ(rig.engine.next_deadline(), std::nullopt); // Closed.
    rig.connect();
    EXPECT_EQ(rig.engine.state(), State::Idle);
    EXPECT_EQ(rig.engine.next_deadline(), std::nullopt); // Connected, nothing to do.

    rig.guest.options.ignore_balloon = true;
    rig.target(rig.boot() - PageCount { 4096 });
    ASSERT_EQ(rig.engine.state(), State::BalloonWaitReply);
    auto const timeout = hv_balloon::DmConfig::linux_profile().balloon_reply_timeout;
    ASSERT_TRUE(rig.engine.next_deadline());
    EXPECT_EQ(*rig.engine.next_deadline(), rig.now + timeout);

    // A tick just before the deadline changes nothing; one at the deadline times out.
    rig.now = *rig.engine.next_deadline() - std::chrono::nanoseconds { 1 };
    rig.engine.on_tick(rig.now);
    EXPECT_EQ(rig.engine.state(), State::BalloonWaitReply);
    EXPECT_EQ(rig.status().counters.timeouts, 0u);
    rig.engine.on_tick(*rig.engine.next_deadline());
    EXPECT_EQ(rig.engine.state(), State::Idle);
    EXPECT_EQ(rig.status().counters.timeouts, 1u);
    EXPECT_EQ(rig.engine.next_deadline(), std::nullopt);
}

TEST(DmLifecycle, PostConnectDelayIsADeadline)
{
    auto config = hv_balloon::DmConfig::linux_profile();
    config.post_connect_delay = std::chrono::seconds { 3 };
    DmRig rig { config };
    rig.engine.set_target(rig.boot() - PageCount { 4096 }).value(); // Before the guest connects.
    rig.connect();
    ASSERT_EQ(rig.engine.state(), State::PostConnectDelay);
    ASSERT_TRUE(rig.engine.next_deadline());
    EXPECT_EQ(*rig.engine.next_deadline(), rig.now + std::chrono::seconds { 3 });
    rig.engine.on_tick(*rig.engine.next_deadline());
    rig.guest.pump();
    EXPECT_EQ(rig.status().ballooned.raw(), 4096u); // The delayed target was applied.
    EXPECT_EQ(rig.engine.next_deadline(), std::nullopt);
}

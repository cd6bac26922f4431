// SPDX-License-Identifier: MIT
// DeadlineGate (vmm/deadline_gate.hpp): when a moved deadline needs the owner's timer re-armed,
// and, with the heartbeat and time sync services answered by a fake Linux hv_utils guest, that
// an idle guest's answers cost the owner (IcIntegration's event loop) no wake-up beyond the
// timer's own (issue 18: idle means idle).
#include <gtest/gtest.h>

#include <algorithm>

#include "devices/ic/heartbeat_ic.hpp"
#include "devices/ic/timesync_ic.hpp"
#include "tests/support/ic_fake_guest.hpp"
#include "vmm/deadline_gate.hpp"

using namespace vmm;
using namespace vmm::ic;

namespace {

constexpr u64 MS = 1'000'000;

} // namespace

TEST(DeadlineGate, UnknownUntilArmedThenOnlyAnEarlierDeadlineNeedsARearm)
{
    DeadlineGate gate;
    EXPECT_TRUE(gate.must_rearm(std::nullopt)); // Nothing recorded yet: always recompute.
    EXPECT_TRUE(gate.must_rearm(5 * MS));
    gate.armed(100 * MS);
    EXPECT_TRUE(gate.must_rearm(99 * MS));
    EXPECT_FALSE(gate.must_rearm(100 * MS)); // Fires then anyway.
    EXPECT_FALSE(gate.must_rearm(150 * MS));
    EXPECT_FALSE(gate.must_rearm(std::nullopt)); // A deadline dropped: the timer wakes once, finds nothing.
    gate.disarmed();
    EXPECT_TRUE(gate.must_rearm(~u64 { 0 } - 1)); // Nothing armed: any deadline is earlier.
    EXPECT_FALSE(gate.must_rearm(std::nullopt));
    gate.begin(); // The owner is recomputing: a move now may be missed by what it read.
    EXPECT_TRUE(gate.must_rearm(std::nullopt));
    EXPECT_TRUE(gate.must_rearm(1'000 * MS));
    gate.armed(2'000 * MS);
    EXPECT_FALSE(gate.must_rearm(2'000 * MS)); // The armed deadline itself: the heartbeat's next send.
    gate.armed(0); // A fire time of 0 is still "armed", not UNKNOWN.
    EXPECT_FALSE(gate.must_rearm(std::nullopt));
}

// IcIntegration's shape without the loop: one timer for the earliest deadline of every channel,
// armed through the gate; the channels' hooks post a re-arm only when the gate says so.
TEST(DeadlineGate, IdleGuestAnsweringHeartbeatsAndTimeSamplesWakesTheOwnerOnlyForItsTimer)
{
    u64 now = 1'000 * MS;
    vmm::test::IcFakePort heartbeat_port, timesync_port;
    HeartbeatIc heartbeat { vmbus::Guid { { 1 } }, HeartbeatConfig { 2'000 * MS, 10'000 * MS } };
    TimeSyncIc timesync { vmbus::Guid { { 2 } }, TimeSyncConfig { 5'000 * MS }, [] { return u64 { 1 } << 60; },
        [&] { return now / 100; } };
    vmm::test::IcFakeGuest heartbeat_guest { heartbeat, heartbeat_port, { { 3, 0 }, { 1, 0 } } };
    vmm::test::IcFakeGuest timesync_guest { timesync, timesync_port, { { 4, 0 }, { 3, 0 }, { 1, 0 } } };
    std::vector<IcChannel*> channels { &heartbeat, &timesync };

    DeadlineGate gate;
    std::optional<u64> fire_at;
    int posts = 0;
    auto rearm = [&] {
        gate.begin();
        std::optional<u64> earliest;
        for (auto* channel : channels)
            if (auto next = channel->next_deadline(); next && (!earliest || *next < *earliest))
                earliest = next;
        fire_at = earliest ? std::optional(std::max(*earliest, now + MS)) : std::nullopt;
        if (fire_at)
            gate.armed(*fire_at);
        else
            gate.disarmed();
    };
    for (auto* channel : channels) {
        channel->set_clock([&] { return now; });
        channel->set_deadline_hook([&](std::optional<u64> next) {
            if (gate.must_rearm(next))
                ++posts;
        });
    }
    // Negotiation and the first beat and sample: new deadlines, so posts (not counted below).
    heartbeat.on_open(heartbeat_port);
    timesync.on_open(timesync_port);
    heartbeat_guest.answer_all();
    timesync_guest.answer_all();
    rearm();
    heartbeat_guest.answer_all();
    timesync_guest.answer_all();
    rearm();
    posts = 0;

    // One idle minute: the timer fires, every channel runs, the owner re-arms; the guest answers.
    u64 const end = now + 60'000 * MS;
    int timer_wakeups = 0;
    u64 const beats_before = heartbeat.beats();
    while (fire_at && *fire_at <= end) {
        now = *fire_at;
        ++timer_wakeups;
        for (auto* channel : channels)
            channel->on_timer();
        rearm();
        now += 3 * MS; // The guest answers a little later.
        heartbeat_guest.answer_all();
        timesync_guest.answer_all();
    }
    u64 const beats = heartbeat.beats() - beats_before;
    EXPECT_EQ(beats, 30u); // Every 2 s, all answered.
    EXPECT_EQ(posts, 0) << "an answer that only moves a deadline later must not wake the owner";
    // One wake-up per send instant: 30 beats and 12 samples, some at the same instant;
    // without the gate every answer would add one more (72 and up).
    EXPECT_GE(timer_wakeups, 30);
    EXPECT_LE(timer_wakeups, 42);
    EXPECT_EQ(heartbeat.status(now), HeartbeatStatus::Ok);
}

// SPDX-License-Identifier: MIT
// Auto mode inside the engine: status reports from the fake Linux guest move the target (hot-add,
// balloon, unballoon) with no set_target(), and deferred decisions ride the engine's deadline.
#include "devices/hv_balloon/dynamic_memory.hpp"

#include <gtest/gtest.h>

#include "tests/support/dm_rig.hpp"

using namespace vmm;
using namespace vmm::hv_balloon;
using namespace vmm::test;
using mem::PageCount;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

PageCount mib(std::uint64_t n) { return PageCount { n * MIB_PAGES }; }

PolicyConfig auto_policy()
{
    PolicyConfig c;
    c.mode = PolicyMode::Auto;
    c.min = mib(256);
    c.max = mib(3072);
    c.buffer_percent = 20;
    c.shrink_delay = seconds { 10 };
    c.min_interval = seconds { 2 };
    return c;
}

// A report as Linux builds it (hv_balloon.c:1130): use + its balloon + floor(its size).
void report(DmRig& rig, PageCount use)
{
    auto const s = rig.status();
    auto committed = use + s.ballooned + linux_balloon_floor(s.current);
    rig.guest.send_status(0, committed.raw());
    rig.guest.pump();
}

// Reports once a second for `n` seconds; the engine's deadline fires in between.
void run(DmRig& rig, PageCount use, int n)
{
    for (int i = 0; i < n; ++i) {
        for (int j = 0; j < 10; ++j) {
            rig.advance(milliseconds { 100 });
            rig.guest.pump();
        }
        report(rig, use);
    }
}

} // namespace

TEST(DmAuto, GrowsByHotAddAndShrinksByBallooningWithoutATarget)
{
    DmRig rig;
    rig.connect();
    ASSERT_TRUE(rig.engine.set_policy(auto_policy()));
    // 1500 MiB of use on a 1 GiB guest: 1500 * 1.2 + floor(1024) = 1800 + 232 = 2032 MiB.
    report(rig, mib(1500));
    auto s = rig.status();
    ASSERT_TRUE(s.target);
    EXPECT_EQ(*s.target, mib(2032));
    EXPECT_EQ(s.current, mib(2032)); // Hot-add of 1024 + balloon of the 128 MiB rounding excess.
    EXPECT_GT(s.hot_added, PageCount { 0 });
    EXPECT_EQ(s.policy_counters.grow_decisions, 1u);
    EXPECT_EQ(rig.count_events<DmPolicyDecided>(), 1u);
    // The floor grew with the size; at most a small correction, then quiet.
    run(rig, mib(1500), 10);
    s = rig.status();
    EXPECT_LE(s.policy_counters.decisions, 2u);
    auto const grown = s.current;

    // The load goes away: after shrink_delay the policy balloons, half the surplus at a time.
    run(rig, mib(100), 9);
    EXPECT_EQ(rig.status().current, grown) << "shrank before shrink_delay";
    run(rig, mib(100), 80);
    s = rig.status();
    EXPECT_LT(s.current, mib(800));
    EXPECT_GE(s.current, mib(256));
    EXPECT_GE(s.policy_counters.shrink_decisions, 2u);
    EXPECT_GT(s.ballooned + (grown - s.current - s.ballooned), PageCount { 0 });
    rig.expect_consistent();
}

TEST(DmAuto, DeferredGrowthFiresFromTheEngineDeadline)
{
    DmRig rig;
    rig.connect();
    ASSERT_TRUE(rig.engine.set_policy(auto_policy()));
    report(rig, mib(1000)); // Grows at once.
    auto const first = rig.status().policy_counters.decisions;
    ASSERT_EQ(first, 1u);
    rig.advance(milliseconds { 200 });
    report(rig, mib(2000)); // Rate limited...
    EXPECT_EQ(rig.status().policy_counters.decisions, 1u);
    auto deadline = rig.engine.next_deadline();
    ASSERT_TRUE(deadline) << "the policy's wait must reach the engine's one timer";
    rig.now = *deadline;
    rig.engine.on_tick(rig.now); // ...and decided at the deadline, with no new report.
    rig.guest.pump();
    EXPECT_EQ(rig.status().policy_counters.decisions, 2u);
    EXPECT_GE(rig.status().current, mib(2400));
}

TEST(DmAuto, ManualModeAndIdleEngineHaveNoDeadline)
{
    DmRig rig;
    rig.connect();
    report(rig, mib(2000));
    EXPECT_FALSE(rig.engine.next_deadline());
    EXPECT_FALSE(rig.status().target);
    EXPECT_EQ(rig.status().policy_decision.reason, "manual mode");
    // A steady auto guest: no deadline either (only reports wake the policy). Switching to auto
    // evaluates the last report at once: 1024 = use * 1.2 + floor(1024) = use * 1.2 + 232 -> 660.
    report(rig, mib(660));
    auto c = auto_policy();
    c.min = mib(128);
    ASSERT_TRUE(rig.engine.set_policy(c));
    EXPECT_EQ(rig.status().policy_decision.reason, "steady: within the dead band");
    EXPECT_EQ(rig.status().policy_counters.decisions, 0u);
    EXPECT_FALSE(rig.engine.next_deadline());
}

TEST(DmAuto, SwitchingToManualStopsFurtherDecisions)
{
    DmRig rig;
    rig.connect();
    ASSERT_TRUE(rig.engine.set_policy(auto_policy()));
    report(rig, mib(100));
    run(rig, mib(100), 5); // Surplus clock running.
    auto c = auto_policy();
    c.mode = PolicyMode::Manual;
    ASSERT_TRUE(rig.engine.set_policy(c));
    run(rig, mib(100), 60);
    EXPECT_EQ(rig.status().policy_counters.decisions, 0u);
    EXPECT_EQ(rig.status().current, rig.boot());
}

TEST(DmAuto, InvalidPolicyIsRefusedAndTheOldOneKept)
{
    DmRig rig;
    auto c = auto_policy();
    c.min = mib(64 * 1024); // Above boot + window (5 GiB).
    c.max = mib(64 * 1024);
    auto set = rig.engine.set_policy(c);
    ASSERT_FALSE(set);
    EXPECT_NE(set.error().message().find("min_mib"), std::string::npos);
    EXPECT_EQ(rig.engine.policy().config().mode, PolicyMode::Manual);
}

TEST(DmAuto, GuestRebootForgetsTheSurplusClock)
{
    DmRig rig;
    rig.connect();
    ASSERT_TRUE(rig.engine.set_policy(auto_policy()));
    run(rig, mib(100), 8); // 8 s of surplus.
    rig.guest.reboot();
    rig.connect();
    run(rig, mib(100), 5); // 5 s after the reconnect: not 13 s of surplus.
    EXPECT_EQ(rig.status().policy_counters.shrink_decisions, 0u);
    run(rig, mib(100), 10);
    EXPECT_GE(rig.status().policy_counters.shrink_decisions, 1u);
    rig.expect_consistent();
}

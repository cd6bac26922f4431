// SPDX-License-Identifier: MIT
// DmPolicy alone, fed report sequences shaped like Linux 6.1's post_status() through
// tests/support/dm_policy_model.hpp's ModelGuest.
#include "devices/hv_balloon/dm_policy.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "devices/hv_balloon/dm_status.hpp"
#include "tests/support/dm_policy_model.hpp"

using namespace vmm;
using namespace vmm::hv_balloon;
using namespace vmm::test;
using mem::PageCount;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(DmPolicy, LinuxFloorMatchesComputeBalloonFloor)
{
    // hv_balloon.c:1101-1110 table: 128 MiB -> 72, 512 -> 168, 2048 -> 360, 8192 -> 744.
    EXPECT_EQ(linux_balloon_floor(mib(128)), mib(72));
    EXPECT_EQ(linux_balloon_floor(mib(512)), mib(168));
    EXPECT_EQ(linux_balloon_floor(mib(2048)), mib(360));
    EXPECT_EQ(linux_balloon_floor(mib(8192)), mib(744));
    EXPECT_EQ(linux_balloon_floor(mib(16)), mib(16));
}

TEST(DmPolicy, ManualModeNeverDecides)
{
    auto c = auto_config();
    c.mode = PolicyMode::Manual;
    ModelGuest g { c };
    g.run(mib(3000), 30);
    EXPECT_TRUE(g.targets.empty());
    EXPECT_EQ(g.policy.last_decision().reason, "manual mode");
}

TEST(DmPolicy, RisingLoadGrowsPromptlyToUsePlusBuffer)
{
    ModelGuest g { auto_config() };
    g.run(mib(100), 5); // Light load: 100 * 1.2 + floor(512) = 288 < 512: surplus, not growth.
    EXPECT_TRUE(g.targets.empty());
    // Load steps to 800 MiB: wanted 800 * 1.2 + floor(512 MiB) = 960 + 168 = 1128 MiB.
    g.now += seconds { 1 };
    g.report_use(mib(800));
    ASSERT_EQ(g.targets.size(), 1u) << "grows on the first report under pressure";
    EXPECT_EQ(g.targets[0], mib(1128));
    EXPECT_EQ(g.policy.last_decision().reason, "grow: demand plus buffer above the current size");
    // The floor follows the new size (slope 1/8 above 512 MiB): one small correction, then quiet.
    g.run(mib(800), 30);
    ASSERT_LE(g.targets.size(), 2u);
    auto const settled = g.current;
    EXPECT_GE(settled, mib(800 * 12 / 10) + linux_balloon_floor(mib(1128)));
    EXPECT_LT(settled, mib(1300));
    // Rising further in steps of 200 MiB/s: one grow per min_interval, never more.
    for (int i = 0; i < 10; ++i) {
        g.now += seconds { 1 };
        g.report_use(mib(1000 + 200 * static_cast<std::uint64_t>(i)));
    }
    for (std::size_t i = 1; i < g.decided_at.size(); ++i)
        EXPECT_GE(g.decided_at[i] - g.decided_at[i - 1], seconds { 2 });
    EXPECT_GT(g.current, mib(2800));
    EXPECT_GT(g.policy.counters().under_pressure, seconds { 0 });
}

TEST(DmPolicy, GrowthIsDeferredToTheRateLimitDeadlineNotDropped)
{
    ModelGuest g { auto_config() };
    g.now += seconds { 1 };
    g.report_use(mib(800));
    ASSERT_EQ(g.targets.size(), 1u);
    g.now += milliseconds { 500 };
    g.report_use(mib(1500)); // More pressure 0.5 s later: rate limited...
    EXPECT_EQ(g.targets.size(), 1u);
    ASSERT_TRUE(g.policy.next_deadline());
    EXPECT_EQ(*g.policy.next_deadline(), g.decided_at[0] + seconds { 2 });
    g.now = *g.policy.next_deadline(); // ...and taken at the deadline, with no new report.
    g.evaluate();
    ASSERT_EQ(g.targets.size(), 2u);
    EXPECT_GE(g.targets[1], mib(1800));
}

TEST(DmPolicy, FallingLoadShrinksGentlyAfterTheDelayAndNeverBelowMin)
{
    ModelGuest g { auto_config() };
    g.current = mib(3072);
    g.run(mib(2206), 5); // Steady at 3072: 2206 * 1.2 + floor(3072) = 2648 + 424.
    ASSERT_TRUE(g.targets.empty());
    g.targets.clear();
    g.decided_at.clear();
    // Load falls to 50 MiB. Nothing for shrink_delay (10 s), then half the surplus per step.
    auto const fell_at = g.now;
    g.run(mib(50), 120);
    ASSERT_GE(g.targets.size(), 3u);
    EXPECT_GE(g.decided_at[0] - fell_at, seconds { 10 });
    for (std::size_t i = 0; i < g.targets.size(); ++i) {
        auto const before = i == 0 ? mib(3072) : g.targets[i - 1];
        EXPECT_LT(g.targets[i], before);
        EXPECT_GE(g.targets[i], mib(256)) << "never below min";
        if (i > 0) {
            EXPECT_GE(g.decided_at[i] - g.decided_at[i - 1], seconds { 10 }) << "each step waits shrink_delay";
        }
    }
    // First step: half of the surplus (3072 - wanted) at most.
    auto const wanted0 = mib(60) + linux_balloon_floor(mib(3072)); // 50 * 1.2 + 424 = 484
    EXPECT_GE(g.targets[0], mib(3072) - PageCount { (mib(3072) - wanted0).raw() / 2 } - mib(1));
    // Settles: 50 * 1.2 + floor(size) = size -> about 256 (min).
    EXPECT_LE(g.current, mib(400));
    auto const n = g.targets.size();
    g.run(mib(50), 60);
    EXPECT_LE(g.targets.size(), n + 1) << "settled";
}

TEST(DmPolicy, SteadyLoadWithNoiseIsLeftAlone)
{
    ModelGuest g { auto_config() };
    g.current = mib(1024);
    // 1024 = use * 1.2 + floor(1024) = use * 1.2 + 232 -> use = 660.
    for (int i = 0; i < 600; ++i) {
        g.now += seconds { 1 };
        g.report_use(mib(660 + (i % 7) * 3 - 9)); // +-10 MiB of noise around the settled point.
    }
    EXPECT_TRUE(g.targets.empty()) << g.targets.size() << " decisions at steady load";
    EXPECT_EQ(g.policy.last_decision().reason, "steady: within the dead band");
}

TEST(DmPolicy, BufferAppliesToUseNotToTheLinuxFloorSoSmallGuestsSettle)
{
    // 100 % buffer on a small guest: committed * 2 (Hyper-V's rule) would feed floor slope 1/2
    // back with gain 1 and grow without bound; with the floor added unscaled it settles.
    auto c = auto_config();
    c.buffer_percent = 100;
    c.min = mib(64);
    ModelGuest g { c };
    g.current = mib(96);
    g.run(mib(20), 300);
    EXPECT_LT(g.current, mib(256)) << "runaway growth";
    auto const n = g.targets.size();
    g.run(mib(20), 60);
    EXPECT_EQ(g.targets.size(), n) << "still moving after 5 minutes";
}

TEST(DmPolicy, WindowsGuestsHaveNoFloorTerm)
{
    auto c = auto_config();
    c.linux_floor = false;
    ModelGuest g { c };
    g.now += seconds { 1 };
    GuestStatusReport r {};
    r.num_committed = mib(1000);
    r.received_at = g.now;
    g.report = r;
    g.evaluate();
    ASSERT_EQ(g.targets.size(), 1u);
    EXPECT_EQ(g.targets[0], mib(1200));
}

TEST(DmPolicy, LyingGuestGetsAtMostMaxAndAtMostOneOperationPerInterval)
{
    ModelGuest g { auto_config() };
    g.reachable = mib(4096);
    // Every millisecond for 10 s, alternating an absurd committed (above any size, near 2^64)
    // with one below its own balloon (impossible): bounded decisions, never above max, and the
    // surplus never lasts long enough to shrink.
    for (int i = 0; i < 10'000; ++i) {
        g.now += milliseconds { 1 };
        GuestStatusReport r {};
        r.num_committed = PageCount { i % 2 == 0 ? UINT64_MAX - static_cast<std::uint64_t>(i) : 0 };
        r.received_at = g.now;
        g.report = r;
        g.evaluate();
    }
    ASSERT_EQ(g.targets.size(), 1u);
    EXPECT_EQ(g.targets[0], mib(4096));
    EXPECT_EQ(g.current, mib(4096));
    EXPECT_EQ(g.policy.counters().shrink_decisions, 0u);
}

TEST(DmPolicy, CommittedAboveTheGuestsSizeIsCappedByReachable)
{
    ModelGuest g { auto_config() };
    g.reachable = mib(700); // No hot-add room: only what is ballooned can come back.
    g.now += seconds { 1 };
    g.report_use(mib(100'000));
    ASSERT_EQ(g.targets.size(), 1u);
    EXPECT_EQ(g.targets[0], mib(700));
    g.run(mib(100'000), 20);
    EXPECT_EQ(g.targets.size(), 1u) << "nothing more to give: no further operations";
}

TEST(DmPolicy, StaleOrOutOfOrderReportsAreNotActedUpon)
{
    ModelGuest g { auto_config() };
    g.now += seconds { 1 };
    GuestStatusReport r {};
    r.num_committed = mib(3000);
    r.received_at = g.now - seconds { 6 }; // Older than report_max_age (5 s).
    g.report = r;
    g.evaluate();
    EXPECT_TRUE(g.targets.empty());
    EXPECT_EQ(g.policy.last_decision().reason, "the guest's last status report is stale");
    EXPECT_EQ(g.policy.counters().ignored_reports, 1u);
    // One low report in a high sequence (reordered, or a moment of idleness) never shrinks.
    g.current = mib(2048);
    for (int i = 0; i < 60; ++i) {
        g.now += seconds { 1 };
        g.report_use(i % 5 == 0 ? mib(10) : mib(1500));
    }
    EXPECT_EQ(g.policy.counters().shrink_decisions, 0u);
}

TEST(DmPolicy, ShrinkIsInterruptedByPressureAtOnce)
{
    ModelGuest g { auto_config() };
    g.current = mib(2048);
    PolicyView v;
    GuestStatusReport r {};
    r.num_committed = mib(1500) + linux_balloon_floor(mib(2048));
    r.received_at = g.now;
    v.now = g.now;
    v.connected = true;
    v.current = mib(2048);
    v.reachable = mib(4096);
    v.report = &r;
    v.operation_running = true;
    v.shrinking = true;
    v.target = mib(1024);
    auto t = g.policy.evaluate(v);
    ASSERT_TRUE(t);
    EXPECT_EQ(*t, mib(1800) + linux_balloon_floor(mib(2048)));
    EXPECT_EQ(g.policy.last_decision().reason, "grow: pressure while shrinking");
}

TEST(DmPolicy, FailedOperationsBackOff)
{
    auto c = auto_config();
    ModelGuest g { c };
    PolicyView v;
    GuestStatusReport r {};
    v.connected = true;
    v.current = mib(512);
    v.reachable = mib(4096);
    v.report = &r;
    std::vector<Instant> at;
    for (int i = 0; i < 200; ++i) {
        g.now += seconds { 1 };
        v.now = g.now;
        r.num_committed = mib(3000);
        r.received_at = g.now;
        if (g.policy.evaluate(v)) {
            at.push_back(g.now);
            g.policy.on_operation_finished(false); // The guest never grows.
        }
    }
    ASSERT_GE(at.size(), 4u);
    EXPECT_GE(at[3] - at[2], seconds { 8 }); // 2 s << 2 failures.
    EXPECT_LE(at.size(), 12u);
}

TEST(DmPolicy, ValidationNamesTheField)
{
    auto c = auto_config();
    EXPECT_TRUE(validate_policy(c, mib(4096)));
    c.max = mib(8192); // Clamped to what the engine reaches.
    EXPECT_TRUE(validate_policy(c, mib(4096)));
    c.min = mib(5000);
    EXPECT_NE(validate_policy(c, mib(4096)).error().message().find("min_mib"), std::string::npos);
    c = auto_config();
    c.min = mib(3000);
    c.max = mib(2000);
    EXPECT_NE(validate_policy(c, mib(4096)).error().message().find("min_mib 3000 is above max_mib 2000"), std::string::npos);
    c = auto_config();
    c.buffer_percent = 2001;
    EXPECT_NE(validate_policy(c, mib(4096)).error().message().find("buffer_percent"), std::string::npos);
    c = auto_config();
    c.weight = 101;
    EXPECT_NE(validate_policy(c, mib(4096)).error().message().find("weight"), std::string::npos);
    c = auto_config();
    c.hysteresis_percent = 51;
    EXPECT_NE(validate_policy(c, mib(4096)).error().message().find("hysteresis_percent"), std::string::npos);
    c = auto_config();
    c.min_step = PageCount { 0 };
    EXPECT_NE(validate_policy(c, mib(4096)).error().message().find("min_step_mib"), std::string::npos);
}

// SPDX-License-Identifier: MIT
// The host ceiling in DmPolicy (a lease from `microvmm balance`), and a simulation of two VMs'
// policies under the arbiter with a fake clock: recorded Linux-shaped reports (committed = use +
// ballooned + linux floor, drivers/hv/hv_balloon.c:1130), the arbiter's split every second, and
// the arbiter dying.
#include <gtest/gtest.h>

#include <vector>

#include "devices/hv_balloon/dm_arbiter.hpp"
#include "devices/hv_balloon/dm_policy.hpp"
#include "devices/hv_balloon/dm_status.hpp"
#include "tests/support/dm_policy_model.hpp"

using namespace vmm;
using namespace vmm::hv_balloon;
using namespace vmm::test;
using mem::PageCount;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(DmCeiling, BoundsGrowthAndShrinksAtOnceWhenAbove)
{
    ModelGuest g { auto_config() };
    Instant now { seconds { 100 } };
    g.policy.set_ceiling(HostCeiling { mib(800), now + seconds { 3 } });
    g.report_use_at(now, mib(1500)); // Wants 1500 * 1.2 + floor: far above 800.
    ASSERT_EQ(g.targets.size(), 1u);
    EXPECT_EQ(g.targets[0], mib(800)) << "grows only to the ceiling";
    EXPECT_EQ(g.policy.last_decision().desired, mib(800));
    EXPECT_GT(*g.policy.last_decision().wanted, mib(1900)) << "wanted is what it would take without the ceiling";
    // A lower ceiling: the VM shrinks to it at the next evaluation past min_interval, with no
    // shrink_delay and no halving.
    now += seconds { 2 };
    EXPECT_TRUE(g.policy.set_ceiling(HostCeiling { mib(600), now + seconds { 3 } }));
    g.report_use_at(now, mib(1500));
    ASSERT_EQ(g.targets.size(), 2u);
    EXPECT_EQ(g.targets[1], mib(600));
    EXPECT_EQ(g.policy.last_decision().reason, "shrink: above the host ceiling");
    // A ceiling below min acts as min.
    now += seconds { 2 };
    g.policy.set_ceiling(HostCeiling { mib(100), now + seconds { 3 } });
    g.report_use_at(now, mib(1500));
    EXPECT_EQ(g.current, mib(256));
    EXPECT_EQ(g.policy.counters().ceiling_changes, 3u);
}

TEST(DmCeiling, RenewalKeepsTheLimitAndALapsedLeaseFallsBackToTheVmsOwnLimits)
{
    ModelGuest g { auto_config() };
    Instant now { seconds { 100 } };
    g.policy.set_ceiling(HostCeiling { mib(700), now + seconds { 3 } });
    g.report_use_at(now, mib(1500));
    EXPECT_EQ(g.current, mib(700));
    // Renewed every second for 10 s: the same limit, no change counted, no new decision.
    for (int i = 0; i < 10; ++i) {
        now += seconds { 1 };
        EXPECT_FALSE(g.policy.set_ceiling(HostCeiling { mib(700), now + seconds { 3 } }));
        g.report_use_at(now, mib(1500));
    }
    EXPECT_EQ(g.targets.size(), 1u);
    EXPECT_EQ(g.policy.counters().ceiling_changes, 1u);
    // The arbiter dies: the policy's deadline is the lease's end, even with no report...
    ASSERT_TRUE(g.policy.next_deadline());
    EXPECT_EQ(*g.policy.next_deadline(), now + seconds { 3 });
    now += seconds { 3 };
    EXPECT_TRUE(g.policy.expire_ceiling(now));
    EXPECT_FALSE(g.policy.expire_ceiling(now)) << "once per lease";
    EXPECT_EQ(g.policy.counters().ceiling_expiries, 1u);
    // ...and the next evaluation grows to the VM's own wish.
    g.report_use_at(now, mib(1500));
    EXPECT_GT(g.current, mib(1900));
    EXPECT_FALSE(g.policy.ceiling());
}

TEST(DmCeiling, EvaluateIgnoresALapsedLeaseEvenIfNobodyExpiredIt)
{
    ModelGuest g { auto_config() };
    Instant now { seconds { 100 } };
    g.policy.set_ceiling(HostCeiling { mib(600), now + milliseconds { 500 } });
    g.report_use_at(now + seconds { 1 }, mib(1500));
    EXPECT_GT(g.current, mib(1900));
    EXPECT_EQ(g.policy.counters().ceiling_expiries, 1u);
}

TEST(DmCeiling, ManualModeKeepsTheCeilingButIgnoresIt)
{
    auto c = auto_config();
    c.mode = PolicyMode::Manual;
    ModelGuest g { c };
    Instant now { seconds { 100 } };
    g.policy.set_ceiling(HostCeiling { mib(300), now + seconds { 3 } });
    g.report_use_at(now, mib(100));
    EXPECT_TRUE(g.targets.empty());
    EXPECT_EQ(g.current, mib(512));
    EXPECT_TRUE(g.policy.ceiling());
    EXPECT_EQ(g.policy.last_decision().reason, "manual mode");
}

// Two VMs (weights 75 and 25, minimum 256 each) both want ~2 GiB on a host that can give 1536 MiB.
// The arbiter runs every second and leases 3 s. They settle at the weighted split; then the
// arbiter dies and both go back to their own wishes after the lease.
TEST(DmCeiling, TwoVmsUnderTheArbiterShareByWeightAndSurviveItsDeath)
{
    ModelGuest a { auto_config(75) };
    ModelGuest b { auto_config(25) };
    std::uint64_t const supply = 1536;
    Instant now { seconds { 100 } };
    PageCount const use = mib(1400); // wanted = 1400 * 1.2 + floor(size) > 1680.
    for (int t = 0; t < 40; ++t) {
        now += seconds { 1 };
        a.report_use_at(now, use);
        b.report_use_at(now + milliseconds { 300 }, use);
        std::vector<ArbiterVm> vms { a.arbiter_input(), b.arbiter_input() };
        auto split = arbitrate(vms, supply);
        ASSERT_LE(split.granted_mib, supply);
        a.policy.set_ceiling(HostCeiling { mib(split.vms[0].ceiling_mib), now + seconds { 3 } });
        b.policy.set_ceiling(HostCeiling { mib(split.vms[1].ceiling_mib), now + seconds { 3 } });
        a.evaluate_at(now + milliseconds { 500 });
        b.evaluate_at(now + milliseconds { 500 });
        // Never more than the host can give, once both have obeyed (shrinks wait min_interval).
        if (t > 4) {
            EXPECT_LE(a.current.mib() + b.current.mib(), supply) << "t=" << t;
        }
    }
    // 1536 - 512 of minimums = 1024 by 3:1: 768 + 256 above the minimums.
    EXPECT_EQ(a.current, mib(256 + 768));
    EXPECT_EQ(b.current, mib(256 + 256));
    // The arbiter dies: within lease + min_interval both grow back to their own wishes.
    for (int t = 0; t < 6; ++t) {
        now += seconds { 1 };
        a.report_use_at(now, use);
        b.report_use_at(now, use);
    }
    EXPECT_EQ(a.policy.counters().ceiling_expiries, 1u);
    EXPECT_EQ(b.policy.counters().ceiling_expiries, 1u);
    EXPECT_GT(a.current, mib(1600));
    EXPECT_GT(b.current, mib(1600));
}

// Found by e2e dm-balance: a guest busy onlining hot-added memory stops reporting; its policy
// must still obey a lower ceiling (cutting a grow in flight), and keep its last wish for the
// arbiter instead of none.
TEST(DmCeiling, StaleReportsStillObeyTheCeilingAndKeepTheLastWish)
{
    ModelGuest g { auto_config() };
    Instant now { seconds { 100 } };
    g.report_use_at(now, mib(1400));
    auto const wish = *g.policy.last_decision().wanted;
    EXPECT_GT(wish, mib(1800)); // 1400 * 1.2 + floor(512 MiB) = 1848.
    // A grow to 768 is running (the engine's view) when the arbiter lowers the ceiling to 448 and
    // the guest's reports have gone stale.
    g.policy.set_ceiling(HostCeiling { mib(448), now + seconds { 30 } });
    now += seconds { 10 };
    PolicyView v;
    v.now = now;
    v.connected = true;
    v.current = mib(512);
    v.reachable = mib(4096);
    v.operation_running = true;
    v.target = mib(768);
    v.report = &g.report; // Received 10 s ago: stale.
    auto cut = g.policy.evaluate(v);
    ASSERT_TRUE(cut);
    EXPECT_EQ(*cut, mib(448));
    EXPECT_EQ(g.policy.last_decision().reason, "shrink: above the host ceiling");
    EXPECT_EQ(g.policy.last_decision().wanted, wish) << "the arbiter still sees what it wanted";
    EXPECT_EQ(g.policy.counters().ignored_reports, 1u);
    // The same operation running: no new decision.
    v.now += seconds { 3 };
    v.target = mib(448);
    v.shrinking = true;
    EXPECT_FALSE(g.policy.evaluate(v));
    // A grow in flight past the ceiling while below it is cut back to it (a grow, not a shrink).
    v.now += seconds { 3 };
    v.current = mib(400);
    v.target = mib(768);
    v.shrinking = false;
    auto capped = g.policy.evaluate(v);
    ASSERT_TRUE(capped);
    EXPECT_EQ(*capped, mib(448));
    EXPECT_EQ(g.policy.last_decision().reason, "grow: cut to the host ceiling");
}

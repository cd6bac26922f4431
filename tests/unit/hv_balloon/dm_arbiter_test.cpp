// SPDX-License-Identifier: MIT
// arbitrate(): the host-wide split of memory by weight (devices/hv_balloon/dm_arbiter.hpp).
#include "devices/hv_balloon/dm_arbiter.hpp"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

using namespace vmm::hv_balloon;

namespace {

std::vector<std::uint64_t> ceilings(ArbiterResult const& r)
{
    std::vector<std::uint64_t> out;
    for (auto const& vm : r.vms)
        out.push_back(vm.ceiling_mib);
    return out;
}
std::vector<std::uint64_t> shares(ArbiterResult const& r)
{
    std::vector<std::uint64_t> out;
    for (auto const& vm : r.vms)
        out.push_back(vm.share_mib);
    return out;
}
std::uint64_t sum(std::vector<std::uint64_t> const& v) { return std::accumulate(v.begin(), v.end(), std::uint64_t { 0 }); }

} // namespace

TEST(DmArbiter, PlentyGivesEveryWantAndSharesTheRestAsHeadroomUpToMax)
{
    std::vector<ArbiterVm> vms { { 1000, 256, 4096, 50 }, { 600, 256, 2048, 50 } };
    auto r = arbitrate(vms, 8000);
    EXPECT_FALSE(r.contended);
    EXPECT_FALSE(r.overcommitted);
    EXPECT_EQ(shares(r), (std::vector<std::uint64_t> { 1000, 600 }));
    // 6400 left: equal weights, 3200 each would pass VM 1's max (2048 = 600 + 1448): it stops
    // there and VM 0 takes the rest up to its own max.
    EXPECT_EQ(ceilings(r), (std::vector<std::uint64_t> { 4096, 2048 }));
    EXPECT_LE(r.granted_mib, 8000u);
}

TEST(DmArbiter, ShortfallSharesByWeightAboveTheMinimums)
{
    // Three VMs want 3000 each; 4000 MiB to give; minimums 500 each; weights 100, 50, 50.
    std::vector<ArbiterVm> vms { { 3000, 500, 4096, 100 }, { 3000, 500, 4096, 50 }, { 3000, 500, 4096, 50 } };
    auto r = arbitrate(vms, 4000);
    EXPECT_TRUE(r.contended);
    EXPECT_FALSE(r.overcommitted);
    // 2500 above the minimums: 1250 / 625 / 625.
    EXPECT_EQ(ceilings(r), (std::vector<std::uint64_t> { 1750, 1126, 1124 }));
    EXPECT_EQ(shares(r), ceilings(r)) << "no headroom under contention";
    EXPECT_EQ(sum(ceilings(r)), 4000u);
    for (auto c : ceilings(r))
        EXPECT_EQ(c % 2, 0u) << "2 MiB granules";
}

TEST(DmArbiter, WantsBelowTheFairShareAreMetAndTheRestRedistributed)
{
    // Fair shares by weight of 3000 above minimums 0: 1000 each; VM 0 wants 200 only, VM 1 wants
    // 1100: both met; VM 2 (wants 5000) takes everything they leave.
    std::vector<ArbiterVm> vms { { 200, 0, 8192, 50 }, { 1100, 0, 8192, 50 }, { 5000, 0, 8192, 50 } };
    auto r = arbitrate(vms, 3000);
    EXPECT_TRUE(r.contended);
    EXPECT_EQ(shares(r), (std::vector<std::uint64_t> { 200, 1100, 1700 }));
    EXPECT_EQ(ceilings(r), shares(r));
}

TEST(DmArbiter, FiveVmsOfDifferentWeightsAndMinimums)
{
    std::vector<ArbiterVm> vms {
        { 2048, 1024, 4096, 10 }, // min dominates: gets 1024 + a small share
        { 4096, 256, 4096, 100 },
        { 512, 512, 1024, 0 },    // weight 0: its minimum, which is all it wants
        { 3000, 128, 8192, 40 },
        { 300, 128, 512, 100 },   // wants little: met in full
    };
    auto r = arbitrate(vms, 6000);
    EXPECT_TRUE(r.contended);
    auto c = ceilings(r);
    EXPECT_EQ(sum(c), 6000u);
    EXPECT_EQ(c[2], 512u);
    EXPECT_EQ(c[4], 300u);
    for (std::size_t i = 0; i < vms.size(); ++i) {
        EXPECT_GE(c[i], vms[i].min_mib) << i;
        EXPECT_LE(c[i], vms[i].want_mib) << i;
    }
    // Above the minimums, 6000 - 2048 = 3952; VM 4 takes 172 of it; 3780 left for weights
    // 10 / 100 / 40 (ratio of gains above min must follow the weights, to a granule or two).
    double const g0 = double(c[0] - 1024), g1 = double(c[1] - 256), g3 = double(c[3] - 128);
    EXPECT_NEAR(g1 / g0, 10.0, 0.1);
    EXPECT_NEAR(g1 / g3, 2.5, 0.02);
}

TEST(DmArbiter, MinimumsExceedingTheSupplyAreStillHonoured)
{
    std::vector<ArbiterVm> vms { { 3000, 2000, 4096, 100 }, { 3000, 1500, 4096, 100 } };
    auto r = arbitrate(vms, 3000);
    EXPECT_TRUE(r.overcommitted);
    EXPECT_EQ(ceilings(r), (std::vector<std::uint64_t> { 2000, 1500 }));
    EXPECT_EQ(r.minimums_mib, 3500u);
}

TEST(DmArbiter, ZeroWeightGetsItsMinimumUnderContentionAndLeftoversWhenTheOthersAreMet)
{
    std::vector<ArbiterVm> vms { { 2000, 256, 4096, 0 }, { 1000, 256, 4096, 60 } };
    auto tight = arbitrate(vms, 1200);
    EXPECT_EQ(ceilings(tight), (std::vector<std::uint64_t> { 256, 944 }));
    auto loose = arbitrate(vms, 2000);
    EXPECT_EQ(shares(loose), (std::vector<std::uint64_t> { 1000, 1000 }));
}

TEST(DmArbiter, RoundsToTheGranuleWithoutPassingMinOrMax)
{
    // Odd figures: min 257 rounds up to 258 (never below min), max 1001 down to 1000 (never above).
    std::vector<ArbiterVm> vms { { 999, 257, 1001, 50 }, { 5000, 3, 9999, 50 } };
    auto r = arbitrate(vms, 20001);
    EXPECT_EQ(r.vms[0].ceiling_mib, 1000u);
    EXPECT_EQ(r.vms[0].share_mib, 1000u);
    EXPECT_EQ(r.vms[1].ceiling_mib, 9998u);
    auto low = arbitrate(std::vector<ArbiterVm> { { 257, 257, 257, 50 } }, 100);
    EXPECT_EQ(low.vms[0].ceiling_mib, 258u) << "a minimum between granules rounds up, even past max";
    auto tight = arbitrate(vms, 1001, 128); // DM-sized granules: 128 MiB.
    EXPECT_EQ(tight.vms[0].ceiling_mib % 128, 0u);
    EXPECT_GE(tight.vms[0].ceiling_mib, 257u);
    EXPECT_LE(tight.granted_mib, 1001u + 128u) << "minimums round up, at most a granule each";
}

TEST(DmArbiter, HostileInputsCannotTakeAnotherVmsMinimum)
{
    std::vector<ArbiterVm> vms {
        { UINT64_MAX, 0, UINT64_MAX, UINT32_MAX }, // lies about everything
        { 1024, 512, 1024, 50 },
        { 0, 0, 0, 50 },                            // wants nothing, may have nothing
        { 100, 900, 300, 50 },                      // min above max: min wins
    };
    auto r = arbitrate(vms, 4096);
    EXPECT_GE(r.vms[1].ceiling_mib, 512u);
    EXPECT_EQ(r.vms[2].ceiling_mib, 0u);
    EXPECT_EQ(r.vms[3].ceiling_mib, 900u);
    EXPECT_LE(r.granted_mib, 4096u);
    // The liar's weight counts as 100 against 50: above the minimums (4096 - 1412 = 2684),
    // VM 1 wants only 512 more and gets it; the liar takes the rest.
    EXPECT_EQ(r.vms[1].ceiling_mib, 1024u);
    EXPECT_EQ(r.vms[0].ceiling_mib, 4096u - 1024u - 900u);
    // Empty input and zero supply are fine.
    EXPECT_TRUE(arbitrate({}, 1000).vms.empty());
    auto none = arbitrate(vms, 0);
    EXPECT_TRUE(none.overcommitted);
    EXPECT_EQ(none.vms[1].ceiling_mib, 512u);
}

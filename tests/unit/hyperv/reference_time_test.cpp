// SPDX-License-Identifier: MIT
// Reference time: the TSC-page arithmetic against the guest's own formula, TIME_REF_COUNT, the
// REFERENCE_TSC MSR and page (sequence, reserved bits, RAM checks), and the VP runtime, reset
// and crash MSRs.
#include "vmm/hyperv/reference_time.hpp" // Header under test first.

#include <gtest/gtest.h>

#include "tests/unit/hyperv/hyperv_fakes.hpp"

namespace vmm::hyperv::test {
namespace {

// Linux's generic mul_u64_u64_shr() (include/linux/math64.h:206-232) with 32-bit limbs, as a
// guest without 128-bit multiply computes ((tsc * scale) >> 64): an independent implementation
// of the guest side of the formula.
std::uint64_t guest_mul_u64_u64_shr64(std::uint64_t a, std::uint64_t b)
{
    std::uint64_t const a_lo = a & 0xFFFF'FFFF, a_hi = a >> 32, b_lo = b & 0xFFFF'FFFF, b_hi = b >> 32;
    std::uint64_t const lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo, lo_hi = a_lo * b_hi, hi_hi = a_hi * b_hi;
    std::uint64_t const mid = (lo_lo >> 32) + (hi_lo & 0xFFFF'FFFF) + (lo_hi & 0xFFFF'FFFF);
    return hi_hi + (hi_lo >> 32) + (lo_hi >> 32) + (mid >> 32);
}

// The guest's read of the page (include/clocksource/hyperv_timer.h:40-85) over our fake RAM.
std::optional<std::uint64_t> guest_read_page(FakeGuestMemory const& ram, std::uint64_t page, std::uint64_t tsc)
{
    auto const content = ram.read<HvReferenceTscPage>(page);
    if (content.tsc_sequence == 0)
        return std::nullopt; // U64_MAX: the guest reads HV_X64_MSR_TIME_REF_COUNT instead.
    return guest_mul_u64_u64_shr64(tsc, content.tsc_scale) + static_cast<std::uint64_t>(content.tsc_offset);
}

TEST(ReferenceTscScale, ConvertsOneSecondOfTicksToTenMillionUnitsForRealFrequencies)
{
    for (std::uint64_t hz : { 10'000'001ull, 1'000'000'000ull, 2'596'094'000ull, 2'599'998'000ull, 3'700'000'000ull,
             5'000'000'000ull }) {
        std::uint64_t const scale = reference_tsc_scale(hz);
        ASSERT_NE(scale, 0u) << hz;
        for (std::uint64_t seconds : { 1ull, 60ull, 3600ull, 86'400ull * 365 }) {
            std::uint64_t const ref = reference_time_from_tsc(hz * seconds, scale, 0);
            std::uint64_t const exact = HV_CLOCK_HZ * seconds;
            // scale is rounded down: at most one 100 ns unit short per 2^64/scale ticks.
            EXPECT_LE(ref, exact) << hz << " Hz, " << seconds << " s";
            EXPECT_LE(exact - ref, seconds + 1) << hz << " Hz, " << seconds << " s";
            EXPECT_EQ(ref, guest_mul_u64_u64_shr64(hz * seconds, scale)) << hz;
        }
    }
}

TEST(ReferenceTscScale, TooSlowATscHasNoScale)
{
    EXPECT_EQ(reference_tsc_scale(0), 0u);
    EXPECT_EQ(reference_tsc_scale(HV_CLOCK_HZ), 0u); // 2^64 would not fit.
    EXPECT_FALSE(ReferenceClock(HV_CLOCK_HZ, [] { return std::uint64_t { 5 }; }).valid());
}

TEST(ReferenceClockTest, StartsAtZeroAndFollowsTheTscWithANegativeOffset)
{
    std::uint64_t tsc = 123'456'789'012'345;
    ReferenceClock clock { TSC_HZ, [&] { return tsc; } };
    ASSERT_TRUE(clock.valid());
    EXPECT_EQ(clock.now(), 0u);
    EXPECT_LT(clock.offset(), 0);
    tsc += TSC_HZ; // One second later.
    EXPECT_NEAR(static_cast<double>(clock.now()), 1e7, 2.0);
    // Huge TSC values (years of uptime) still agree with the guest's limb arithmetic.
    tsc = 0xFFFF'FFFF'0000'0000;
    EXPECT_EQ(clock.now(), guest_mul_u64_u64_shr64(tsc, clock.scale()) + static_cast<std::uint64_t>(clock.offset()));
}

class ReferenceTimeMsrTest : public PartitionTest {
protected:
    static constexpr std::uint64_t TSC_PAGE_GPA = 0x6000;
};

TEST_F(ReferenceTimeMsrTest, TimeRefCountIsTheSameOnEveryVpAndAdvancesIn100nsUnits)
{
    auto const start = partition.read_msr(0, HV_X64_MSR_TIME_REF_COUNT);
    ASSERT_TRUE(start.has_value());
    EXPECT_EQ(*start, 0u); // Partition creation = reference time 0.
    tsc.advance_100ns(12'345, TSC_HZ);
    auto const later = partition.read_msr(1, HV_X64_MSR_TIME_REF_COUNT);
    ASSERT_TRUE(later.has_value());
    EXPECT_GE(*later, 12'344u);
    EXPECT_LE(*later, 12'346u);
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_TIME_REF_COUNT), later);
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_TIME_REF_COUNT, 0)); // Read-only.
}

TEST_F(ReferenceTimeMsrTest, EnablingThePagePublishesScaleAndOffsetThatMatchTheMsrToTheTick)
{
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_REFERENCE_TSC, TSC_PAGE_GPA | 1));
    EXPECT_EQ(partition.read_msr(1, HV_X64_MSR_REFERENCE_TSC), TSC_PAGE_GPA | 1); // Partition-wide.
    auto const page = ram.read<HvReferenceTscPage>(TSC_PAGE_GPA);
    EXPECT_NE(page.tsc_sequence, 0u);
    EXPECT_EQ(page.tsc_scale, reference_tsc_scale(TSC_HZ));
    for (int step = 0; step < 100; ++step) {
        tsc.value += 987'654'321;
        auto const through_page = guest_read_page(ram, TSC_PAGE_GPA, tsc.value.load());
        ASSERT_TRUE(through_page.has_value());
        EXPECT_EQ(*through_page, partition.read_msr(0, HV_X64_MSR_TIME_REF_COUNT)) << step;
    }
}

TEST_F(ReferenceTimeMsrTest, EveryEnableWritesAFreshNonZeroSequenceAndKeepsReservedBits)
{
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_REFERENCE_TSC, TSC_PAGE_GPA | 1));
    auto const first = ram.read<HvReferenceTscPage>(TSC_PAGE_GPA).tsc_sequence;
    // Linux preserves bits 1-11 when it re-enables (hyperv_timer.c:540-548): read back as written.
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_REFERENCE_TSC, TSC_PAGE_GPA | 0xFFE | 1));
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_REFERENCE_TSC), TSC_PAGE_GPA | 0xFFF);
    auto const second = ram.read<HvReferenceTscPage>(TSC_PAGE_GPA).tsc_sequence;
    EXPECT_NE(second, 0u);
    EXPECT_NE(second, first);
}

TEST_F(ReferenceTimeMsrTest, DisablingLeavesThePageAloneAndMovingItWritesTheNewOne)
{
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_REFERENCE_TSC, TSC_PAGE_GPA | 1));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_REFERENCE_TSC, TSC_PAGE_GPA)); // suspend_hv_clock_tsc()
    EXPECT_NE(ram.read<HvReferenceTscPage>(TSC_PAGE_GPA).tsc_sequence, 0u);
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_REFERENCE_TSC, RAM_HIGH | 1));
    EXPECT_EQ(ram.read<HvReferenceTscPage>(RAM_HIGH).tsc_scale, reference_tsc_scale(TSC_HZ));
}

TEST_F(ReferenceTimeMsrTest, PagesOutsideRamFaultAndWriteNothing)
{
    auto const faults = partition.stats().msr_faults;
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_REFERENCE_TSC, HOLE_GPA | 1));
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_REFERENCE_TSC, (RAM_HIGH + 0x1'0000) | 1)); // Past the end.
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_REFERENCE_TSC, 0xFFFF'FFFF'FFFF'F001)); // Absurd PFN.
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_REFERENCE_TSC), 0u);
    EXPECT_EQ(partition.stats().msr_faults, faults + 3);
}

TEST_F(ReferenceTimeMsrTest, WriteTscPageInvalidatesFirstSoAReaderFallsBackToTheMsr)
{
    // The writer's first store is sequence 0; a guest that reads the page between the stores
    // gets U64_MAX and reads the MSR (hyperv_timer.c:377-385).
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_REFERENCE_TSC, TSC_PAGE_GPA | 1));
    ASSERT_EQ(invalidate_tsc_page(ram.memory(), mem::Gpa { TSC_PAGE_GPA }), TscPageWrite::Written);
    EXPECT_FALSE(guest_read_page(ram, TSC_PAGE_GPA, tsc.value.load()).has_value());
    EXPECT_EQ(invalidate_tsc_page(ram.memory(), mem::Gpa { HOLE_GPA }), TscPageWrite::Fault);
    EXPECT_EQ(write_tsc_page(ram.memory(), mem::Gpa { HOLE_GPA }, 1, 2, 3), TscPageWrite::Fault);
}

TEST_F(ReferenceTimeMsrTest, ResetDisablesThePageMsr)
{
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_REFERENCE_TSC, TSC_PAGE_GPA | 1));
    partition.reset();
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_REFERENCE_TSC), 0u);
}

TEST_F(ReferenceTimeMsrTest, VpRuntimeIsThisThreadsCpuTimeAndReadOnly)
{
    auto const before = partition.read_msr(0, HV_X64_MSR_VP_RUNTIME);
    ASSERT_TRUE(before.has_value());
    volatile std::uint64_t spin = 0;
    for (int i = 0; i < 20'000'000; ++i)
        spin = spin + 1;
    auto const after = partition.read_msr(0, HV_X64_MSR_VP_RUNTIME);
    EXPECT_GT(*after, *before);
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_VP_RUNTIME, 0));
}

class RecordingPlatform final : public PlatformSink {
public:
    void reset_requested(std::uint32_t vp) override { resets.push_back(vp); }
    void guest_crashed(CrashReport const& report) override { crashes.push_back(report); }
    std::vector<std::uint32_t> resets;
    std::vector<CrashReport> crashes;
};

class PlatformMsrTest : public PartitionTest {
protected:
    PlatformMsrTest() { partition.set_platform_sink(&platform); }
    RecordingPlatform platform;
};

TEST_F(PlatformMsrTest, ResetBitZeroRequestsAResetAndOtherBitsFault)
{
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_RESET), 0u);
    EXPECT_TRUE(partition.write_msr(1, HV_X64_MSR_RESET, 0)); // No request.
    EXPECT_TRUE(platform.resets.empty());
    EXPECT_FALSE(partition.write_msr(1, HV_X64_MSR_RESET, 2));
    EXPECT_FALSE(partition.write_msr(1, HV_X64_MSR_RESET, 3));
    EXPECT_TRUE(platform.resets.empty());
    EXPECT_TRUE(partition.write_msr(1, HV_X64_MSR_RESET, 1));
    EXPECT_EQ(platform.resets, std::vector<std::uint32_t> { 1 });
}

TEST_F(PlatformMsrTest, CrashWithMessageReportsTheParametersAndTheKmsgText)
{
    std::string const text = "Kernel panic - not syncing: test\n\x01";
    ram.write_bytes(0x7000, std::as_bytes(std::span { text }));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_CRASH_P0, 0));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_CRASH_P3, 0x7000));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_CRASH_P4, text.size()));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_CRASH_CTL, HV_CRASH_CTL_CRASH_NOTIFY | HV_CRASH_CTL_CRASH_NOTIFY_MSG));
    ASSERT_EQ(platform.crashes.size(), 1u);
    EXPECT_EQ(platform.crashes[0].params[3], 0x7000u);
    EXPECT_EQ(platform.crashes[0].message, "Kernel panic - not syncing: test\n?"); // Control bytes masked.
    EXPECT_TRUE(partition.guest_crashed());
}

TEST_F(PlatformMsrTest, CrashMessagesOutsideRamOrHugeAreBoundedAndReportsPerBootAreLimited)
{
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_CRASH_P3, HOLE_GPA));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_CRASH_P4, 100));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_CRASH_CTL, HV_CRASH_CTL_CRASH_NOTIFY | HV_CRASH_CTL_CRASH_NOTIFY_MSG));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_CRASH_P3, 0));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_CRASH_P4, ~std::uint64_t { 0 }));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_CRASH_CTL, HV_CRASH_CTL_CRASH_NOTIFY | HV_CRASH_CTL_CRASH_NOTIFY_MSG));
    for (int i = 0; i < 10; ++i)
        ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_CRASH_CTL, HV_CRASH_CTL_CRASH_NOTIFY));
    ASSERT_EQ(platform.crashes.size(), 4u); // MAX_CRASH_REPORTS_PER_BOOT
    EXPECT_EQ(platform.crashes[0].message, "");       // Not RAM: text lost, report kept.
    EXPECT_EQ(platform.crashes[1].message.size(), 4096u); // One page at most.
    partition.reset();
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_CRASH_CTL, HV_CRASH_CTL_CRASH_NOTIFY));
    EXPECT_EQ(platform.crashes.size(), 5u); // A new boot reports again.
}

} // namespace
} // namespace vmm::hyperv::test

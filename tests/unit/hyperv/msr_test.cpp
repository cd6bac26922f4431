// SPDX-License-Identifier: MIT
// Synthetic MSR semantics: read-back, read-only registers, reserved bits, RAM checks, #GP for
// everything not implemented (guest-interface §2, §10.5).
#include "vmm/hyperv/partition.hpp" // Header under test first.

#include <gtest/gtest.h>

#include "tests/unit/hyperv/hyperv_fakes.hpp"

namespace vmm::hyperv::test {
namespace {

class MsrTest : public PartitionTest { };

TEST_F(MsrTest, GuestOsIdReadsBackWhatWasWritten)
{
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_GUEST_OS_ID), 0u);
    EXPECT_TRUE(partition.write_msr(1, HV_X64_MSR_GUEST_OS_ID, LINUX_GUEST_OS_ID));
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_GUEST_OS_ID), LINUX_GUEST_OS_ID); // Partition-wide.
}

TEST_F(MsrTest, HypercallEnableWritesOutAndRetIntoThePageAndReadsBackEnabled)
{
    enable_hypercalls();
    auto const page = ram.read_bytes(HYPERCALL_PAGE_GPA, mem::PAGE_SIZE);
    EXPECT_EQ(page[0], std::byte { 0xE6 }); // out imm8, al
    EXPECT_EQ(page[1], std::byte { 0xE4 }); // firmware::HYPERCALL_PORT
    EXPECT_EQ(page[2], std::byte { 0xC3 }); // ret
    for (std::size_t i = 3; i < page.size(); ++i)
        ASSERT_EQ(page[i], std::byte { 0xCC }) << i; // int3 padding
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_HYPERCALL), HYPERCALL_PAGE_GPA | 1);
    EXPECT_TRUE(partition.hypercall_page_enabled());
}

TEST(HypercallPageConfig, Endbr64PrecedesTheTrampolineForIbtGuests)
{
    FakeGuestMemory ram { { 0, 0x1'0000 } };
    RecordingInterrupts interrupts;
    Partition partition { ram.memory(), interrupts,
        PartitionConfig { .vcpu_count = 1, .tsc_hz = TSC_HZ, .apic_timer_hz = APIC_HZ, .hypercall_page_endbr64 = true } };
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_GUEST_OS_ID, LINUX_GUEST_OS_ID));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_HYPERCALL, 0x2000 | 1));
    EXPECT_EQ(ram.read_bytes(0x2000, 8), bytes_of({ 0xF3, 0x0F, 0x1E, 0xFA, 0xE6, 0xE4, 0xC3, 0xCC }));
}

TEST_F(MsrTest, HypercallEnableOnAPageOutsideRamFaultsAndStaysDisabled)
{
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_GUEST_OS_ID, LINUX_GUEST_OS_ID));
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_HYPERCALL, HOLE_GPA | 1));
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_HYPERCALL, 0xFFFF'FFFF'FFFF'F001));
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_HYPERCALL), 0u);
    EXPECT_FALSE(partition.hypercall_page_enabled());
}

TEST_F(MsrTest, HypercallEnableIsIgnoredUntilTheGuestOsIdIsSet)
{
    EXPECT_TRUE(partition.write_msr(0, HV_X64_MSR_HYPERCALL, HYPERCALL_PAGE_GPA | 1));
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_HYPERCALL), 0u);
    EXPECT_EQ(ram.read_bytes(HYPERCALL_PAGE_GPA, 1), bytes_of({ 0 }));
}

TEST_F(MsrTest, ClearingTheGuestOsIdDisablesTheHypercallPage)
{
    enable_hypercalls();
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_GUEST_OS_ID, 0));
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_HYPERCALL), HYPERCALL_PAGE_GPA);
    EXPECT_FALSE(partition.hypercall_page_enabled());
}

TEST_F(MsrTest, HypercallDisableIsStoredAndReadBack)
{
    enable_hypercalls();
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_HYPERCALL, HYPERCALL_PAGE_GPA));
    EXPECT_EQ(partition.read_msr(1, HV_X64_MSR_HYPERCALL), HYPERCALL_PAGE_GPA);
}

TEST_F(MsrTest, VpIndexIsTheVcpuIndexAndReadOnly)
{
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_VP_INDEX), 0u);
    EXPECT_EQ(partition.read_msr(1, HV_X64_MSR_VP_INDEX), 1u);
    EXPECT_FALSE(partition.write_msr(1, HV_X64_MSR_VP_INDEX, 0));
    EXPECT_EQ(partition.read_msr(1, HV_X64_MSR_VP_INDEX), 1u);
}

TEST_F(MsrTest, VpAssistPageIsPerVpAndRefusesReservedBitsAndNonRam)
{
    EXPECT_TRUE(partition.write_msr(1, HV_X64_MSR_VP_ASSIST_PAGE, 0x7000 | 1));
    EXPECT_EQ(partition.read_msr(1, HV_X64_MSR_VP_ASSIST_PAGE), 0x7001u);
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_VP_ASSIST_PAGE), 0u);
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_VP_ASSIST_PAGE, 0x7000 | 0x3));
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_VP_ASSIST_PAGE, HOLE_GPA | 1));
    EXPECT_TRUE(partition.write_msr(1, HV_X64_MSR_VP_ASSIST_PAGE, 0)); // CPU offline (hv_init.c:229-244).
    EXPECT_EQ(partition.read_msr(1, HV_X64_MSR_VP_ASSIST_PAGE), 0u);
}

TEST_F(MsrTest, VpAssistPageRefusesBadValuesWithoutChangingState)
{
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_VP_ASSIST_PAGE, 0x7001));
    for (std::uint64_t bad : { std::uint64_t { 0x7000 | 0x2 }, std::uint64_t { 0x7000 | 0x800 | 1 },
             std::uint64_t { 0x7000 | 0xFFE }, // Reserved bits 1-11, with or without enable.
             std::uint64_t { HOLE_GPA | 1 }, std::uint64_t { RAM_LOW_END | 1 },            // Not RAM.
             std::uint64_t { 0xFFFF'FFFF'FFFF'F001 }, std::uint64_t { (RAM_HIGH + 0x1'0000) | 1 } }) // Beyond RAM.
        EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_VP_ASSIST_PAGE, bad)) << std::hex << bad;
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_VP_ASSIST_PAGE), 0x7001u);
    // A disabled page's PFN is not RAM-checked: nothing is written there.
    EXPECT_TRUE(partition.write_msr(0, HV_X64_MSR_VP_ASSIST_PAGE, HOLE_GPA));
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_VP_ASSIST_PAGE), HOLE_GPA);
}

TEST_F(MsrTest, VpAssistPageStartsZeroedWhenEnabledOrMovedAndIsKeptOtherwise)
{
    std::vector<std::byte> const junk(mem::PAGE_SIZE, std::byte { 0xA5 });
    std::vector<std::byte> const zero(mem::PAGE_SIZE);
    ram.write_bytes(0x7000, junk);
    ram.write_bytes(0x8000, junk);
    ASSERT_TRUE(partition.write_msr(1, HV_X64_MSR_VP_ASSIST_PAGE, 0x7001));
    EXPECT_EQ(ram.read_bytes(0x7000, mem::PAGE_SIZE), zero);
    EXPECT_EQ(ram.read_bytes(0x8000, mem::PAGE_SIZE), junk); // Another VP's page is untouched.
    // While enabled the guest owns the fields it writes (nested enlightenments, apic_assist):
    // rewriting the same value does not clear them.
    ram.write_bytes(0x7000, junk);
    ASSERT_TRUE(partition.write_msr(1, HV_X64_MSR_VP_ASSIST_PAGE, 0x7001));
    EXPECT_EQ(ram.read_bytes(0x7000, mem::PAGE_SIZE), junk);
    // Moving the page clears the new one and leaves the old one as ordinary RAM.
    ASSERT_TRUE(partition.write_msr(1, HV_X64_MSR_VP_ASSIST_PAGE, 0x8001));
    EXPECT_EQ(ram.read_bytes(0x8000, mem::PAGE_SIZE), zero);
    EXPECT_EQ(ram.read_bytes(0x7000, mem::PAGE_SIZE), junk);
    // Disabled (CPU offline, hv_init.c:229-244): kept as is; enabled again: zeroed again.
    ram.write_bytes(0x8000, junk);
    ASSERT_TRUE(partition.write_msr(1, HV_X64_MSR_VP_ASSIST_PAGE, 0x8000));
    EXPECT_EQ(ram.read_bytes(0x8000, mem::PAGE_SIZE), junk);
    ASSERT_TRUE(partition.write_msr(1, HV_X64_MSR_VP_ASSIST_PAGE, 0x8001));
    EXPECT_EQ(ram.read_bytes(0x8000, mem::PAGE_SIZE), zero);
    // After a reboot the VP starts disabled, so the next boot's enable clears the page too.
    ram.write_bytes(0x8000, junk);
    partition.reset();
    EXPECT_EQ(partition.read_msr(1, HV_X64_MSR_VP_ASSIST_PAGE), 0u);
    ASSERT_TRUE(partition.write_msr(1, HV_X64_MSR_VP_ASSIST_PAGE, 0x8001));
    EXPECT_EQ(ram.read_bytes(0x8000, mem::PAGE_SIZE), zero);
}

TEST_F(MsrTest, FrequencyMsrsReturnTheConfiguredRatesAndAreReadOnly)
{
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_TSC_FREQUENCY), TSC_HZ);
    EXPECT_EQ(partition.read_msr(1, HV_X64_MSR_APIC_FREQUENCY), APIC_HZ);
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_TSC_FREQUENCY, 1));
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_APIC_FREQUENCY, 1));
}

TEST_F(MsrTest, TscInvariantControlAcceptsOnlyBitZero)
{
    EXPECT_TRUE(partition.write_msr(0, HV_X64_MSR_TSC_INVARIANT_CONTROL, 1)); // mshyperv.c:452
    EXPECT_EQ(partition.read_msr(1, HV_X64_MSR_TSC_INVARIANT_CONTROL), 1u);
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_TSC_INVARIANT_CONTROL, 2));
}

TEST(MsrWithoutReferenceTime, ReferenceTscAcceptsDisableButNotEnable)
{
    FakeGuestMemory ram { { 0, 0x1'0000 } };
    RecordingInterrupts interrupts;
    Partition partition { ram.memory(), interrupts, PartitionConfig { 1, TSC_HZ, APIC_HZ } }; // No TSC reader.
    EXPECT_TRUE(partition.write_msr(0, HV_X64_MSR_REFERENCE_TSC, 0)); // hyperv_cleanup()
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_REFERENCE_TSC, 0x5000 | 1));
}

TEST_F(MsrTest, CrashParametersAreStoredAndCtlAdvertisesCrashNotify)
{
    for (std::uint32_t i = 0; i < 5; ++i)
        ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_CRASH_P0 + i, 0x100 + i));
    for (std::uint32_t i = 0; i < 5; ++i)
        EXPECT_EQ(partition.read_msr(1, HV_X64_MSR_CRASH_P0 + i), 0x100u + i);
    // CRASH_NOTIFY (63) and CRASH_NOTIFY_MSG (62): Linux then hands over its kmsg page.
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_CRASH_CTL), std::uint64_t { 3 } << 62);
    EXPECT_FALSE(partition.guest_crashed());
}

TEST_F(MsrTest, CrashCtlNotifyMarksTheGuestCrashedAndReservedBitsFault)
{
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_CRASH_CTL, 1));
    EXPECT_FALSE(partition.guest_crashed());
    EXPECT_TRUE(partition.write_msr(0, HV_X64_MSR_CRASH_CTL, std::uint64_t { 1 } << 63));
    EXPECT_TRUE(partition.guest_crashed());
    EXPECT_TRUE(partition.write_msr(0, HV_X64_MSR_CRASH_CTL, std::uint64_t { 3 } << 62)); // Again: no abort.
}

TEST_F(MsrTest, UnimplementedSyntheticMsrsFaultOnReadAndWrite)
{
    // APIC access MSRs (not offered: the LAPIC lives in KVM), guest idle, past the crash MSRs.
    for (std::uint32_t msr : { HV_X64_MSR_EOI, HV_X64_MSR_ICR, HV_X64_MSR_TPR, 0x4000'00F0u, 0x4000'00B8u,
             0x4000'0106u, 0x4000'01FFu }) {
        EXPECT_FALSE(partition.read_msr(0, msr).has_value()) << std::hex << msr;
        EXPECT_FALSE(partition.write_msr(0, msr, 0)) << std::hex << msr;
    }
    EXPECT_EQ(partition.stats().msr_faults, 14u);
}

TEST_F(MsrTest, MsrsOutsideTheSyntheticRangeFault)
{
    EXPECT_FALSE(partition.read_msr(0, 0x10).has_value()); // IA32_TIME_STAMP_COUNTER is not ours.
    EXPECT_FALSE(partition.write_msr(0, 0x4B56'4D00, 1));  // KVM PV MSRs neither.
    EXPECT_EQ(partition.stats().msr_faults, 0u);            // Not counted as guest faults.
}

TEST_F(MsrTest, SintsResetMaskedAndSversionReadsOne)
{
    for (std::uint32_t sint = 0; sint < 16; ++sint)
        EXPECT_EQ(partition.read_msr(1, HV_X64_MSR_SINT0 + sint), 0x10000u) << sint;
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_SVERSION), 1u);
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_SVERSION, 2));
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_SCONTROL), 0u);
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_EOM), 0u);
}

TEST_F(MsrTest, SintRefusesReservedBitsAndUnmaskedExceptionVectors)
{
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_SINT0 + 2, 0xF3 | (std::uint64_t { 1 } << 19)));
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_SINT0 + 2, 0xF3 | 0x100));
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_SINT0 + 2, 0x0F));
    EXPECT_TRUE(partition.write_msr(0, HV_X64_MSR_SINT0 + 2, 0x1'0000)); // Masked vector 0 is fine.
    EXPECT_TRUE(partition.write_msr(0, HV_X64_MSR_SINT0 + 2, 0xF3));
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_SINT0 + 2), 0xF3u);
    EXPECT_EQ(partition.read_msr(1, HV_X64_MSR_SINT0 + 2), 0x10000u); // Per VP.
}

TEST_F(MsrTest, SynicControlAndPageMsrsRefuseReservedBitsAndNonRamPages)
{
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_SCONTROL, 3));
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_SIMP, 0x5000 | 0x11));
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_SIEFP, 0x6000 | 0x801));
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_SIMP, HOLE_GPA | 1));
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_SIEFP, RAM_LOW_END | 1));
    EXPECT_TRUE(partition.write_msr(0, HV_X64_MSR_SIMP, HOLE_GPA)); // Disabled: any address is inert.
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_SIMP), HOLE_GPA);
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_SIEFP), 0u);
}

TEST_F(MsrTest, EnablingTheMessagePageZeroesIt)
{
    std::vector<std::byte> const garbage(mem::PAGE_SIZE, std::byte { 0x5A });
    ram.write_bytes(RAM_HIGH, garbage);
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_SIMP, RAM_HIGH | 1));
    EXPECT_EQ(ram.read_bytes(RAM_HIGH, mem::PAGE_SIZE), std::vector<std::byte>(mem::PAGE_SIZE));
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_SIMP), RAM_HIGH | 1);
}

TEST_F(MsrTest, ResetRestoresPowerOnValues)
{
    enable_hypercalls();
    enable_synic(1, 0x5000, 0x6000);
    ASSERT_TRUE(partition.write_msr(1, HV_X64_MSR_VP_ASSIST_PAGE, 0x7001));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_CRASH_P0, 9));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_CRASH_CTL, std::uint64_t { 1 } << 63));
    partition.reset();
    for (std::uint32_t msr : { HV_X64_MSR_GUEST_OS_ID, HV_X64_MSR_HYPERCALL, HV_X64_MSR_VP_ASSIST_PAGE,
             HV_X64_MSR_SIMP, HV_X64_MSR_SIEFP, HV_X64_MSR_SCONTROL, HV_X64_MSR_CRASH_P0,
             HV_X64_MSR_TSC_INVARIANT_CONTROL })
        EXPECT_EQ(partition.read_msr(1, msr), 0u) << std::hex << msr;
    EXPECT_EQ(partition.read_msr(1, HV_X64_MSR_SINT0 + 2), 0x10000u);
    EXPECT_FALSE(partition.guest_crashed());
    EXPECT_FALSE(partition.hypercall_page_enabled());
}

} // namespace
} // namespace vmm::hyperv::test

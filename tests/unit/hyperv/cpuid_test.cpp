// SPDX-License-Identifier: MIT
// Hyper-V CPUID leaves: detection requirements and forbidden bits of the Linux 6.1 guest-interface §1.
#include "vmm/hyperv/partition.hpp" // Header under test first.

#include <algorithm>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "tests/unit/hyperv/hyperv_fakes.hpp"

namespace vmm::hyperv::test {
namespace {

CpuidLeaf leaf(std::vector<CpuidLeaf> const& leaves, std::uint32_t function)
{
    auto it = std::ranges::find(leaves, function, &CpuidLeaf::function);
    EXPECT_NE(it, leaves.end()) << std::hex << function;
    return it == leaves.end() ? CpuidLeaf {} : *it;
}

std::string register_text(std::uint32_t a, std::uint32_t b, std::uint32_t c)
{
    char text[12];
    std::memcpy(text, &a, 4);
    std::memcpy(text + 4, &b, 4);
    std::memcpy(text + 8, &c, 4);
    return std::string(text, 12);
}

class CpuidTest : public PartitionTest { };

TEST_F(CpuidTest, VendorLeafSaysMicrosoftHvWithMaxLeafA)
{
    auto const vendor = leaf(partition.cpuid_leaves(), 0x4000'0000);
    EXPECT_EQ(vendor.eax, 0x4000'000Au);
    EXPECT_EQ(register_text(vendor.ebx, vendor.ecx, vendor.edx), "Microsoft Hv");
}

TEST_F(CpuidTest, NoLeafCarriesTheKvmSignature)
{
    for (auto const& entry : partition.cpuid_leaves()) {
        EXPECT_EQ(register_text(entry.ebx, entry.ecx, entry.edx).find("KVMKVMKVM"), std::string::npos)
            << std::hex << entry.function;
    }
}

TEST_F(CpuidTest, EveryLeafUpToTheMaxIsDefinedExactlyOnce)
{
    auto const leaves = partition.cpuid_leaves();
    ASSERT_EQ(leaves.size(), 11u);
    for (std::uint32_t function = 0x4000'0000; function <= 0x4000'000A; ++function)
        EXPECT_EQ(std::ranges::count(leaves, function, &CpuidLeaf::function), 1) << std::hex << function;
    for (auto const& entry : leaves)
        EXPECT_EQ(entry.index, 0u);
    for (std::uint32_t function = 0x4000'0006; function <= 0x4000'000A; ++function) {
        auto const empty = leaf(leaves, function);
        EXPECT_EQ(empty.eax | empty.ebx | empty.ecx | empty.edx, 0u) << std::hex << function;
    }
}

TEST_F(CpuidTest, InterfaceLeafSaysHv1)
{
    auto const interface = leaf(partition.cpuid_leaves(), 0x4000'0001);
    EXPECT_EQ(register_text(interface.eax, 0, 0).substr(0, 4), "Hv#1");
}

TEST_F(CpuidTest, DefaultFeaturesAreTheWindowsSet)
{
    auto const features = leaf(partition.cpuid_leaves(), 0x4000'0003);
    // Bits 0 (VP_RUNTIME), 1 (TIME_REF_COUNT), 2 (SynIC), 3 (synthetic timers), 5 (HYPERCALL),
    // 6 (VP_INDEX), 7 (RESET), 9 (reference TSC page), 11 (frequency MSRs).
    EXPECT_EQ(features.eax, 0x0000'0AEFu);
    EXPECT_EQ(features.ebx, 0x0010'0030u); // PostMessages, SignalEvents, extended hypercalls (20).
    EXPECT_EQ(features.ecx, 0u);
    EXPECT_EQ(features.edx, 0x0008'0500u); // Frequency MSRs (8), crash MSRs (10), stimer direct mode (19).
}

TEST_F(CpuidTest, FeaturesNeverAdvertiseGuestIdleApicAccessTscInvariantOrRootPrivileges)
{
    auto const features = leaf(partition.cpuid_leaves(), 0x4000'0003);
    for (int bit : { 4, 10, 13, 15 }) // APIC access, guest idle, reenlightenment, TSC invariant.
        EXPECT_EQ(features.eax & (1u << bit), 0u) << "EAX bit " << bit;
    for (int bit : { 1, 12, 22 })
        EXPECT_EQ(features.ebx & (1u << bit), 0u) << "EBX bit " << bit;
    EXPECT_EQ(features.edx & (1u << 4), 0u) << "no XMM hypercall input";
    EXPECT_EQ(features.edx & (1u << 5), 0u) << "no guest idle state";
}

TEST(CpuidConfig, WithoutAGuestTscNeitherReferenceTimeNorTimersAreAdvertised)
{
    FakeGuestMemory ram { { 0, 0x1'0000 } };
    RecordingInterrupts interrupts;
    Partition partition { ram.memory(), interrupts, PartitionConfig { 1, TSC_HZ, APIC_HZ } };
    auto const features = leaf(partition.cpuid_leaves(), 0x4000'0003);
    for (int bit : { 1, 3, 9 }) // Never TIME_REF_COUNT without the TSC page (MSR sched_clock).
        EXPECT_EQ(features.eax & (1u << bit), 0u) << "EAX bit " << bit;
    EXPECT_EQ(features.edx & (1u << 19), 0u);
    EXPECT_FALSE(partition.read_msr(0, HV_X64_MSR_TIME_REF_COUNT).has_value());
    EXPECT_FALSE(partition.read_msr(0, 0x4000'00B0).has_value()); // STIMER0_CONFIG
    EXPECT_EQ(partition.reference_clock(), nullptr);
}

TEST(CpuidConfig, EachSwitchRemovesItsBitsAndItsMsrs)
{
    FakeGuestMemory ram { { 0, 0x1'0000 } };
    RecordingInterrupts interrupts;
    FakeTsc tsc;
    PartitionConfig config = default_config(1, TSC_HZ, APIC_HZ, tsc);
    config.enlightenments = Enlightenments { .reference_time = true, .synthetic_timers = true,
        .stimer_direct_mode = false, .vp_runtime = false, .reset = false, .crash = false, .frequencies = false,
        .tsc_invariant = true, .extended_hypercalls = false };
    Partition partition { ram.memory(), interrupts, config };
    auto const features = leaf(partition.cpuid_leaves(), 0x4000'0003);
    EXPECT_EQ(features.eax, 0x0000'826Eu); // TIME_REF, SynIC, timers, HYPERCALL, VP_INDEX, TSC page, TSC invariant.
    EXPECT_EQ(features.ebx, 0x0000'0030u);
    EXPECT_EQ(features.edx, 0u);
    EXPECT_FALSE(partition.read_msr(0, HV_X64_MSR_VP_RUNTIME).has_value());
    EXPECT_FALSE(partition.read_msr(0, HV_X64_MSR_RESET).has_value());
    EXPECT_FALSE(partition.read_msr(0, HV_X64_MSR_CRASH_CTL).has_value());
    EXPECT_FALSE(partition.write_msr(0, HV_X64_MSR_CRASH_P0, 1));
    EXPECT_FALSE(partition.read_msr(0, HV_X64_MSR_TSC_FREQUENCY).has_value());
    // Direct mode not offered: a direct-mode config is refused like KVM does (hyperv.c:685-688).
    EXPECT_FALSE(partition.write_msr(0, 0x4000'00B0, HV_STIMER_DIRECT_MODE | (0xED << 4) | HV_STIMER_ENABLE));
}

TEST_F(CpuidTest, HintsOnlyDeprecateAutoEoiByDefault)
{
    auto const hints = leaf(partition.cpuid_leaves(), 0x4000'0004);
    EXPECT_EQ(hints.eax, 0x0000'0200u); // Bit 9; no APIC-access MSRs (3), TLB flush (1, 2), IPIs (10).
    EXPECT_EQ(hints.ebx, 0xFFFF'FFFFu);
}

TEST(CpuidConfig, IpiHypercallsAddTheClusterIpiAndExProcessorMaskHints)
{
    FakeGuestMemory ram { { 0, 0x1'0000 } };
    RecordingInterrupts interrupts;
    Partition partition { ram.memory(), interrupts,
        PartitionConfig { .vcpu_count = 1, .tsc_hz = TSC_HZ, .apic_timer_hz = APIC_HZ, .ipi_hypercalls = true } };
    EXPECT_EQ(leaf(partition.cpuid_leaves(), 0x4000'0004).eax, 0x0000'0E00u); // Bits 9, 10, 11.
}

TEST(CpuidConfig, UnknownTscRateHidesTheFrequencyMsrs)
{
    FakeGuestMemory ram { { 0, 0x1'0000 } };
    RecordingInterrupts interrupts;
    FakeTsc tsc;
    Partition partition { ram.memory(), interrupts, default_config(1, 0, APIC_HZ, tsc) };
    auto const features = leaf(partition.cpuid_leaves(), 0x4000'0003);
    EXPECT_EQ(features.eax, 0x0000'00E5u); // No frequency MSRs, and no reference time without a rate.
    EXPECT_EQ(features.edx, 0x0000'0400u);
    EXPECT_FALSE(partition.read_msr(0, HV_X64_MSR_TSC_FREQUENCY).has_value());
    EXPECT_FALSE(partition.read_msr(0, HV_X64_MSR_APIC_FREQUENCY).has_value());
}

TEST_F(CpuidTest, LimitsLeafReportsTheVcpuCount)
{
    auto const limits = leaf(partition.cpuid_leaves(), 0x4000'0005);
    EXPECT_EQ(limits.eax, 2u);
}

TEST(PartitionMsrList, CoversTheWholeSyntheticRangeIncludingCrashAndTscInvariantControl)
{
    auto const msrs = Partition::msrs();
    EXPECT_EQ(msrs.size(), 0x200u);
    for (std::uint32_t msr : { 0x4000'0000u, 0x4000'0001u, 0x4000'0073u, 0x4000'0084u, 0x4000'009Fu,
             0x4000'0105u, 0x4000'0118u })
        EXPECT_NE(std::ranges::find(msrs, msr), msrs.end()) << std::hex << msr;
    EXPECT_TRUE(std::ranges::all_of(msrs, [](std::uint32_t msr) { return msr >> 9 == 0x4000'0000u >> 9; }));
}

} // namespace
} // namespace vmm::hyperv::test

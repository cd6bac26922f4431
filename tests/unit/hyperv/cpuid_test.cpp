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

TEST_F(CpuidTest, FeaturesAdvertiseHypercallVpIndexSynicTscInvariantAndFrequencyMsrs)
{
    auto const features = leaf(partition.cpuid_leaves(), 0x4000'0003);
    // Bits 2 (SynIC), 5 (HYPERCALL), 6 (VP_INDEX), 11 (frequency MSRs), 15 (TSC invariant).
    EXPECT_EQ(features.eax, 0x0000'8864u);
    EXPECT_EQ(features.ebx, 0x0000'0030u); // PostMessages, SignalEvents.
    EXPECT_EQ(features.ecx, 0u);
    EXPECT_EQ(features.edx, 0x0000'0500u); // Frequency MSRs (8), crash MSRs (10).
}

TEST_F(CpuidTest, FeaturesNeverAdvertiseMsrClockTscPageTimersOrRootPrivileges)
{
    auto const features = leaf(partition.cpuid_leaves(), 0x4000'0003);
    for (int bit : { 1, 3, 9, 10, 13 })
        EXPECT_EQ(features.eax & (1u << bit), 0u) << "EAX bit " << bit;
    for (int bit : { 1, 12, 20, 22 })
        EXPECT_EQ(features.ebx & (1u << bit), 0u) << "EBX bit " << bit;
    EXPECT_EQ(features.edx & (1u << 4), 0u) << "no XMM hypercall input";
}

TEST_F(CpuidTest, HintsOnlyDeprecateAutoEoiByDefault)
{
    auto const hints = leaf(partition.cpuid_leaves(), 0x4000'0004);
    EXPECT_EQ(hints.eax, 0x0000'0200u); // Bit 9; no APIC-access MSRs (3), TLB flush (1, 2), IPIs (10).
    EXPECT_EQ(hints.ebx, 0xFFFF'FFFFu);
}

TEST(CpuidConfig, IpiHypercallsAddTheClusterIpiAndExProcessorMaskHints)
{
    FakeRam ram { { 0, 0x1'0000 } };
    RecordingInterrupts interrupts;
    Partition partition { ram.memory(), interrupts,
        PartitionConfig { .vcpu_count = 1, .tsc_hz = TSC_HZ, .apic_timer_hz = APIC_HZ, .ipi_hypercalls = true } };
    EXPECT_EQ(leaf(partition.cpuid_leaves(), 0x4000'0004).eax, 0x0000'0E00u); // Bits 9, 10, 11.
}

TEST(CpuidConfig, UnknownTscRateHidesTheFrequencyMsrs)
{
    FakeRam ram { { 0, 0x1'0000 } };
    RecordingInterrupts interrupts;
    Partition partition { ram.memory(), interrupts, PartitionConfig { 1, 0, APIC_HZ } };
    auto const features = leaf(partition.cpuid_leaves(), 0x4000'0003);
    EXPECT_EQ(features.eax, 0x0000'8064u);
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

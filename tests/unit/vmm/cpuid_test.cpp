// SPDX-License-Identifier: MIT
#include "vmm/cpuid.hpp" // Header under test first.

#include <gtest/gtest.h>

namespace vmm {
namespace {

constexpr u32 bit(unsigned n) { return u32 { 1 } << n; }

// KVM signature "KVMKVMKVM\0\0\0" as EBX/ECX/EDX (arch/x86/include/uapi/asm/kvm_para.h).
constexpr u32 KVM_SIG_EBX = 0x4b4d564b, KVM_SIG_ECX = 0x564b4d56, KVM_SIG_EDX = 0x0000004d;

// A trimmed KVM_GET_SUPPORTED_CPUID of an AVX-512 machine like this host.
CpuidTable supported()
{
    return {
        { 0x0, 0, false, 0x1F, 0x68747541, 0x444d4163, 0x69746e65 },
        { 0x1, 0, false, 0x00A10F11, 0x00000800,
            bit(12) | bit(17) | bit(20) | bit(21) | bit(23) | bit(26) | bit(27) | bit(28) | bit(29) | bit(30),
            0x178BFBFF },
        { 0x7, 0, true, 0, bit(0) | bit(5) | bit(7) | bit(9) | bit(16) | bit(17) | bit(18) | bit(20) | bit(30) | bit(31),
            bit(1) | bit(9) | bit(14), bit(4) },
        { 0xB, 0, true, 1, 2, 0x100, 0 },
        { 0xB, 1, true, 4, 16, 0x201, 0 },
        { 0xB, 2, true, 0, 0, 2, 0 },
        { 0xD, 0, true, 0x2E7, 0x340, 0x988, 0 },
        { 0xD, 1, true, 0xF, 0, 0, 0 },
        { 0x40000000, 0, false, 0x40000001, KVM_SIG_EBX, KVM_SIG_ECX, KVM_SIG_EDX },
        { 0x40000001, 0, false, 0x01FFFFFF, 0, 0, 1 },
        { 0x80000001, 0, false, 0, 0, 0, bit(26) | bit(27) },
        { 0x80000008, 0, false, 0x3030, 0, 0x700F, 0 },
    };
}

bool has(CpuidTable const& table, u32 function, u32 index, CpuReg reg, unsigned n)
{
    auto const* entry = find_leaf(table, function, index);
    if (!entry)
        return false;
    u32 value = reg == CpuReg::Eax ? entry->eax : reg == CpuReg::Ebx ? entry->ebx : reg == CpuReg::Ecx ? entry->ecx : entry->edx;
    return value & bit(n);
}

bool has(CpuidTable const& table, std::string_view feature)
{
    auto f = find_cpu_feature(feature);
    EXPECT_TRUE(f.has_value()) << feature;
    return f && has(table, f->function, f->index, f->reg, f->bit);
}

TEST(Cpuid, EveryDocumentedFeatureNameIsKnown)
{
    for (auto name : { "xsave", "avx", "avx2", "avx512f", "popcnt", "smap", "smep", "pcid", "rdrand", "rdseed",
             "x2apic", "pdpe1gb", "fsgsbase", "erms", "fsrm", "hypervisor", "osxsave" })
        EXPECT_TRUE(find_cpu_feature(name).has_value()) << name;
}

TEST(Cpuid, HidingXsaveHidesOsxsaveTheAvxFamilyAndLeafD)
{
    auto table = supported();
    std::vector<std::string> names { "xsave" };
    ASSERT_TRUE(hide_features(table, names));
    for (auto name : { "xsave", "osxsave", "avx", "fma", "f16c", "avx2", "avx512f", "avx512dq", "avx512bw",
             "avx512vl", "avx512vbmi", "vaes", "avx512_vpopcntdq" })
        EXPECT_FALSE(has(table, name)) << name;
    EXPECT_EQ(find_leaf(table, 0xD, 0), nullptr);
    EXPECT_EQ(find_leaf(table, 0xD, 1), nullptr);
    // Unrelated features stay.
    EXPECT_TRUE(has(table, "popcnt"));
    EXPECT_TRUE(has(table, "smap"));
    EXPECT_TRUE(has(table, "x2apic"));
}

TEST(Cpuid, HidingAvx512fKeepsAvx2AndXsave)
{
    auto table = supported();
    std::vector<std::string> names { "avx512f" };
    ASSERT_TRUE(hide_features(table, names));
    EXPECT_FALSE(has(table, "avx512f"));
    EXPECT_FALSE(has(table, "avx512bw"));
    EXPECT_TRUE(has(table, "avx2"));
    EXPECT_TRUE(has(table, "xsave"));
    EXPECT_NE(find_leaf(table, 0xD, 0), nullptr);
}

TEST(Cpuid, HidingPlainFeaturesClearsExactlyTheirBits)
{
    auto table = supported();
    std::vector<std::string> names { "popcnt", "smap", "pdpe1gb", "fsrm" };
    ASSERT_TRUE(hide_features(table, names));
    EXPECT_FALSE(has(table, "popcnt"));
    EXPECT_FALSE(has(table, "smap"));
    EXPECT_FALSE(has(table, "pdpe1gb"));
    EXPECT_FALSE(has(table, "fsrm"));
    EXPECT_TRUE(has(table, "smep"));
    EXPECT_TRUE(has(table, "rdtscp"));
    EXPECT_TRUE(has(table, "xsave"));
}

TEST(Cpuid, UnknownFeatureNameIsAConfigErrorNamingIt)
{
    auto table = supported();
    std::vector<std::string> names { "popcnt", "avx9000" };
    auto result = hide_features(table, names);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), Errc::Config);
    EXPECT_NE(result.error().what().find("avx9000"), std::string_view::npos);
    EXPECT_TRUE(has(table, "popcnt")); // Nothing changed.
}

TEST(Cpuid, TopologyGivesEachVcpuItsApicIdAndThePackageCount)
{
    auto table = supported();
    set_topology(table, 1, 2);
    auto const* leaf1 = find_leaf(table, 0x1);
    EXPECT_EQ(leaf1->ebx >> 24, 1u);
    EXPECT_EQ((leaf1->ebx >> 16) & 0xFF, 2u);
    EXPECT_EQ(leaf1->ebx & 0xFFFF, 0x0800u); // CLFLUSH size etc. untouched.
    EXPECT_TRUE(leaf1->edx & bit(28));
    auto const* smt = find_leaf(table, 0xB, 0);
    EXPECT_EQ(smt->edx, 1u);
    EXPECT_EQ(smt->ebx, 1u);
    EXPECT_EQ(smt->ecx, 0x100u);
    EXPECT_EQ(smt->eax, 0u);
    auto const* core = find_leaf(table, 0xB, 1);
    EXPECT_EQ(core->edx, 1u);
    EXPECT_EQ(core->ebx, 2u);
    EXPECT_EQ(core->ecx, 0x201u);
    EXPECT_EQ(core->eax, 1u);
    auto const* end = find_leaf(table, 0xB, 2);
    EXPECT_EQ(end->ecx, 2u); // Level type 0: end of the list.
    EXPECT_EQ(find_leaf(table, 0x80000008)->ecx & 0xFF, 1u);
}

TEST(Cpuid, SingleVcpuTopologyHasNoHtt)
{
    auto table = supported();
    set_topology(table, 0, 1);
    EXPECT_FALSE(find_leaf(table, 0x1)->edx & bit(28));
    EXPECT_EQ(find_leaf(table, 0xB, 1)->ebx, 1u);
    EXPECT_EQ(find_leaf(table, 0xB, 1)->eax, 0u);
}

TEST(Cpuid, ThreeVcpusUseTwoApicIdBits)
{
    auto table = supported();
    set_topology(table, 2, 3);
    EXPECT_EQ(find_leaf(table, 0xB, 1)->eax, 2u);
    EXPECT_EQ((find_leaf(table, 0x1)->ebx >> 16) & 0xFF, 4u);
}

TEST(Cpuid, HypervisorBitIsSet)
{
    auto table = supported();
    EXPECT_FALSE(has(table, "hypervisor"));
    set_hypervisor_bit(table);
    EXPECT_TRUE(has(table, "hypervisor"));
}

TEST(Cpuid, KvmLeavesKeepTheSignatureAndOnlyVettedPvFeatures)
{
    auto table = supported();
    restrict_kvm_leaves(table);
    auto const* signature = find_leaf(table, 0x40000000);
    ASSERT_NE(signature, nullptr);
    EXPECT_EQ(signature->ebx, KVM_SIG_EBX);
    auto const* features = find_leaf(table, 0x40000001);
    EXPECT_TRUE(features->eax & bit(3));   // KVM_FEATURE_CLOCKSOURCE2
    EXPECT_TRUE(features->eax & bit(11));  // KVM_FEATURE_PV_SEND_IPI (SMP on this host)
    EXPECT_TRUE(features->eax & bit(24));  // KVM_FEATURE_CLOCKSOURCE_STABLE_BIT
    EXPECT_FALSE(features->eax & bit(4));  // ASYNC_PF
    EXPECT_FALSE(features->eax & bit(15)); // MSI_EXT_DEST_ID
    EXPECT_EQ(features->edx, 0u);          // No KVM_HINTS_REALTIME.
}

TEST(Cpuid, HypervLeavesReplaceEveryKvmLeafAndNoKvmSignatureRemains)
{
    auto table = supported();
    table.push_back({ 0x40000100, 0, false, 0x40000101, KVM_SIG_EBX, KVM_SIG_ECX, KVM_SIG_EDX });
    std::vector<CpuidEntry> hyperv {
        { 0x40000000, 0, false, 0x4000000A, 0x7263694D, 0x666F736F, 0x76482074 },
        { 0x40000001, 0, false, 0x31237648, 0, 0, 0 },
    };
    replace_hypervisor_leaves(table, hyperv);
    for (auto const& entry : table) {
        EXPECT_FALSE(entry.ebx == KVM_SIG_EBX && entry.ecx == KVM_SIG_ECX) << std::hex << entry.function;
        if (entry.function >= 0x40000000 && entry.function <= 0x4FFFFFFF)
            EXPECT_LE(entry.function, 0x40000001u);
    }
    EXPECT_EQ(find_leaf(table, 0x40000000)->eax, 0x4000000Au);
    EXPECT_EQ(find_leaf(table, 0x40000001)->eax, 0x31237648u);
    EXPECT_NE(find_leaf(table, 0x80000001), nullptr); // Non-hypervisor leaves untouched.
}

} // namespace
} // namespace vmm

namespace vmm {
namespace {

TEST(Cpuid, TopologyLeafWithOnlyItsFirstSubleafGetsTheCoreLevelAdded)
{
    // KVM_GET_SUPPORTED_CPUID on this AMD host: 0xB subleaf 0 only, all zero but EDX.
    CpuidTable table { { 0x1, 0, false, 0, 0, 0, 0 }, { 0xB, 0, true, 0, 0, 0, 1 } };
    set_topology(table, 1, 2);
    ASSERT_NE(find_leaf(table, 0xB, 1), nullptr);
    EXPECT_EQ(find_leaf(table, 0xB, 1)->index, 1u);
    EXPECT_EQ(find_leaf(table, 0xB, 1)->ebx, 2u);
    EXPECT_EQ(find_leaf(table, 0xB, 1)->edx, 1u);
    EXPECT_EQ(find_leaf(table, 0xB, 2)->ecx, 2u);
    EXPECT_EQ(find_leaf(table, 0x1F, 0), nullptr); // Absent leaves stay absent.
}

} // namespace
} // namespace vmm

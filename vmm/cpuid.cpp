// SPDX-License-Identifier: MIT
// CPUID table editing. Bit positions: Intel SDM Vol. 2A "CPUID", AMD APM Vol. 3 appendix E,
// and Linux arch/x86/include/asm/cpufeatures.h (the names).
#include "vmm/cpuid.hpp"

#include <algorithm>
#include <array>
#include <bit>

#include <fmt/format.h>

namespace vmm {

namespace {

constexpr u32 LEAF_FEATURES = 0x1;
constexpr u32 LEAF_CACHE_PARAMS = 0x4; // Intel deterministic cache parameters.
constexpr u32 LEAF_EXTENDED_FEATURES = 0x7;
constexpr u32 LEAF_TOPOLOGY = 0xB;
constexpr u32 LEAF_XSAVE = 0xD;
constexpr u32 LEAF_TOPOLOGY_V2 = 0x1F;
constexpr u32 LEAF_HYPERVISOR_FIRST = 0x40000000;
constexpr u32 LEAF_HYPERVISOR_LAST = 0x4FFFFFFF;
constexpr u32 LEAF_KVM_FEATURES = 0x40000001;
constexpr u32 LEAF_EXT_FEATURES = 0x80000001;
constexpr u32 LEAF_AMD_SIZES = 0x80000008;

constexpr u8 HYPERVISOR_BIT = 31; // CPUID.1:ECX[31], "hypervisor present".
constexpr u8 HTT_BIT = 28;        // CPUID.1:EDX[28], more than one logical processor.

using R = CpuReg;
constexpr std::array FEATURES = std::to_array<CpuFeature>({
    { "fma", LEAF_FEATURES, 0, R::Ecx, 12 },
    { "pcid", LEAF_FEATURES, 0, R::Ecx, 17 },
    { "sse4_2", LEAF_FEATURES, 0, R::Ecx, 20 },
    { "x2apic", LEAF_FEATURES, 0, R::Ecx, 21 },
    { "movbe", LEAF_FEATURES, 0, R::Ecx, 22 },
    { "popcnt", LEAF_FEATURES, 0, R::Ecx, 23 },
    { "tsc_deadline_timer", LEAF_FEATURES, 0, R::Ecx, 24 },
    { "aes", LEAF_FEATURES, 0, R::Ecx, 25 },
    { "xsave", LEAF_FEATURES, 0, R::Ecx, 26 },
    { "osxsave", LEAF_FEATURES, 0, R::Ecx, 27 },
    { "avx", LEAF_FEATURES, 0, R::Ecx, 28 },
    { "f16c", LEAF_FEATURES, 0, R::Ecx, 29 },
    { "rdrand", LEAF_FEATURES, 0, R::Ecx, 30 },
    { "hypervisor", LEAF_FEATURES, 0, R::Ecx, HYPERVISOR_BIT },
    { "fsgsbase", LEAF_EXTENDED_FEATURES, 0, R::Ebx, 0 },
    { "bmi1", LEAF_EXTENDED_FEATURES, 0, R::Ebx, 3 },
    { "avx2", LEAF_EXTENDED_FEATURES, 0, R::Ebx, 5 },
    { "smep", LEAF_EXTENDED_FEATURES, 0, R::Ebx, 7 },
    { "bmi2", LEAF_EXTENDED_FEATURES, 0, R::Ebx, 8 },
    { "erms", LEAF_EXTENDED_FEATURES, 0, R::Ebx, 9 },
    { "invpcid", LEAF_EXTENDED_FEATURES, 0, R::Ebx, 10 },
    { "avx512f", LEAF_EXTENDED_FEATURES, 0, R::Ebx, 16 },
    { "avx512dq", LEAF_EXTENDED_FEATURES, 0, R::Ebx, 17 },
    { "rdseed", LEAF_EXTENDED_FEATURES, 0, R::Ebx, 18 },
    { "adx", LEAF_EXTENDED_FEATURES, 0, R::Ebx, 19 },
    { "smap", LEAF_EXTENDED_FEATURES, 0, R::Ebx, 20 },
    { "avx512ifma", LEAF_EXTENDED_FEATURES, 0, R::Ebx, 21 },
    { "clflushopt", LEAF_EXTENDED_FEATURES, 0, R::Ebx, 23 },
    { "avx512pf", LEAF_EXTENDED_FEATURES, 0, R::Ebx, 26 },
    { "avx512er", LEAF_EXTENDED_FEATURES, 0, R::Ebx, 27 },
    { "avx512cd", LEAF_EXTENDED_FEATURES, 0, R::Ebx, 28 },
    { "sha_ni", LEAF_EXTENDED_FEATURES, 0, R::Ebx, 29 },
    { "avx512bw", LEAF_EXTENDED_FEATURES, 0, R::Ebx, 30 },
    { "avx512vl", LEAF_EXTENDED_FEATURES, 0, R::Ebx, 31 },
    { "avx512vbmi", LEAF_EXTENDED_FEATURES, 0, R::Ecx, 1 },
    { "umip", LEAF_EXTENDED_FEATURES, 0, R::Ecx, 2 },
    { "pku", LEAF_EXTENDED_FEATURES, 0, R::Ecx, 3 },
    { "avx512_vbmi2", LEAF_EXTENDED_FEATURES, 0, R::Ecx, 6 },
    { "vaes", LEAF_EXTENDED_FEATURES, 0, R::Ecx, 9 },
    { "vpclmulqdq", LEAF_EXTENDED_FEATURES, 0, R::Ecx, 10 },
    { "avx512_vnni", LEAF_EXTENDED_FEATURES, 0, R::Ecx, 11 },
    { "avx512_bitalg", LEAF_EXTENDED_FEATURES, 0, R::Ecx, 12 },
    { "avx512_vpopcntdq", LEAF_EXTENDED_FEATURES, 0, R::Ecx, 14 },
    { "la57", LEAF_EXTENDED_FEATURES, 0, R::Ecx, 16 },
    { "rdpid", LEAF_EXTENDED_FEATURES, 0, R::Ecx, 22 },
    { "fsrm", LEAF_EXTENDED_FEATURES, 0, R::Edx, 4 },
    { "avx512_vp2intersect", LEAF_EXTENDED_FEATURES, 0, R::Edx, 8 },
    { "avx512_fp16", LEAF_EXTENDED_FEATURES, 0, R::Edx, 23 },
    { "avx_vnni", LEAF_EXTENDED_FEATURES, 1, R::Eax, 4 },
    { "avx512_bf16", LEAF_EXTENDED_FEATURES, 1, R::Eax, 5 },
    { "pdpe1gb", LEAF_EXT_FEATURES, 0, R::Edx, 26 },
    { "rdtscp", LEAF_EXT_FEATURES, 0, R::Edx, 27 },
});

// Hiding a feature also hides the features that cannot work without it (Linux
// arch/x86/kernel/cpu/cpuid-deps.c has the same edges for clearcpuid=).
struct Dependency {
    std::string_view feature;
    std::string_view depends_on;
};
constexpr std::array DEPENDENCIES = std::to_array<Dependency>({
    { "osxsave", "xsave" },
    { "avx", "xsave" },
    { "fma", "avx" },
    { "f16c", "avx" },
    { "avx2", "avx" },
    { "vaes", "avx" },
    { "vpclmulqdq", "avx" },
    { "avx_vnni", "avx2" },
    { "avx512f", "avx2" },
    { "avx512dq", "avx512f" },
    { "avx512ifma", "avx512f" },
    { "avx512pf", "avx512f" },
    { "avx512er", "avx512f" },
    { "avx512cd", "avx512f" },
    { "avx512bw", "avx512f" },
    { "avx512vl", "avx512f" },
    { "avx512vbmi", "avx512f" },
    { "avx512_vbmi2", "avx512f" },
    { "avx512_vnni", "avx512f" },
    { "avx512_bitalg", "avx512f" },
    { "avx512_vpopcntdq", "avx512f" },
    { "avx512_vp2intersect", "avx512f" },
    { "avx512_fp16", "avx512f" },
    { "avx512_bf16", "avx512f" },
});

// KVM paravirt features (arch/x86/include/uapi/asm/kvm_para.h) that work with an in-kernel
// irqchip and no further VMM support: kvm-clock (0, 3, stable bit 24), no I/O delay (1),
// PV EOI (6) and PV send-IPI (11). PV IPIs are what makes SMP work on this host
// (test-host §7.1). Left out: async PF / steal time (guest memory the VMM never migrates
// but also never tested here), MSI_EXT_DEST_ID (needs a VMM-side IOAPIC), hints.
constexpr u32 KVM_FEATURES_ALLOWED = (1u << 0) | (1u << 1) | (1u << 3) | (1u << 6) | (1u << 11) | (1u << 24);

u32& register_of(CpuidEntry& entry, CpuReg reg)
{
    switch (reg) {
    case CpuReg::Eax: return entry.eax;
    case CpuReg::Ebx: return entry.ebx;
    case CpuReg::Ecx: return entry.ecx;
    case CpuReg::Edx: return entry.edx;
    }
    return entry.eax;
}

void clear_feature(CpuidTable& table, CpuFeature const& feature)
{
    if (auto* entry = find_leaf(table, feature.function, feature.index))
        register_of(*entry, feature.reg) &= ~(u32 { 1 } << feature.bit);
}

// `name` and every feature depending on it, transitively.
void collect_dependents(std::string_view name, std::vector<std::string_view>& out)
{
    if (std::ranges::find(out, name) != out.end())
        return;
    out.push_back(name);
    for (auto const& dependency : DEPENDENCIES) {
        if (dependency.depends_on == name)
            collect_dependents(dependency.feature, out);
    }
}

} // namespace

std::span<CpuFeature const> cpu_features() { return FEATURES; }

std::optional<CpuFeature> find_cpu_feature(std::string_view name)
{
    for (auto const& feature : FEATURES) {
        if (feature.name == name)
            return feature;
    }
    return std::nullopt;
}

std::optional<std::string> first_unknown_feature(std::span<std::string const> names)
{
    for (auto const& name : names) {
        if (!find_cpu_feature(name))
            return name;
    }
    return std::nullopt;
}

CpuidEntry* find_leaf(CpuidTable& table, u32 function, u32 index)
{
    for (auto& entry : table) {
        if (entry.function == function && (!entry.indexed || entry.index == index))
            return &entry;
    }
    return nullptr;
}

CpuidEntry const* find_leaf(CpuidTable const& table, u32 function, u32 index)
{
    return find_leaf(const_cast<CpuidTable&>(table), function, index); // Same lookup, read-only result.
}

Result<void> hide_features(CpuidTable& table, std::span<std::string const> names)
{
    if (auto unknown = first_unknown_feature(names))
        return fail(Errc::Config, fmt::format("cpu.hide_features: unknown feature \"{}\"", *unknown));
    std::vector<std::string_view> hidden;
    for (auto const& name : names)
        collect_dependents(name, hidden);
    for (auto name : hidden)
        clear_feature(table, *find_cpu_feature(name));
    // Without XSAVE the XSAVE state leaf describes nothing the guest may use.
    if (std::ranges::find(hidden, std::string_view { "xsave" }) != hidden.end())
        std::erase_if(table, [](CpuidEntry const& entry) { return entry.function == LEAF_XSAVE; });
    return {};
}

// KVM may report the topology leaf with only its first subleaf (this AMD host does): add the
// core level and the terminating invalid level so the guest sees one package of N cores.
static void complete_topology_leaf(CpuidTable& table, u32 function)
{
    if (!find_leaf(table, function, 0))
        return;
    for (u32 index = 1; index <= 2; ++index) {
        auto* entry = find_leaf(table, function, index);
        if (!entry || !entry->indexed || entry->index != index)
            table.push_back(CpuidEntry { function, index, true, 0, 0, 0, 0 });
    }
}

void set_topology(CpuidTable& table, u32 apic_id, u32 vcpu_count)
{
    complete_topology_leaf(table, LEAF_TOPOLOGY);
    complete_topology_leaf(table, LEAF_TOPOLOGY_V2);
    // Bits needed to number the cores of the package (x2APIC id layout, SDM Vol. 3A 10.12.8).
    u32 const core_bits = vcpu_count <= 1 ? 0 : static_cast<u32>(std::bit_width(vcpu_count - 1));
    if (auto* leaf = find_leaf(table, LEAF_FEATURES)) {
        // EBX[31:24] initial APIC id, EBX[23:16] max addressable logical processor ids.
        leaf->ebx = (leaf->ebx & 0x0000FFFFu) | (apic_id << 24) | ((u32 { 1 } << core_bits) << 16);
        if (vcpu_count > 1)
            leaf->edx |= u32 { 1 } << HTT_BIT;
        else
            leaf->edx &= ~(u32 { 1 } << HTT_BIT);
    }
    for (auto& entry : table) {
        if (entry.function == LEAF_CACHE_PARAMS) {
            // EAX[31:26] = cores per package - 1. Caches are per core except the last level.
            u32 const cache_level = (entry.eax >> 5) & 0x7;
            u32 const sharing = cache_level >= 3 ? (u32 { 1 } << core_bits) - 1 : 0;
            entry.eax = (entry.eax & 0x3FFFu) | (sharing << 14) | (((u32 { 1 } << core_bits) - 1) << 26);
        }
        if (entry.function == LEAF_TOPOLOGY || entry.function == LEAF_TOPOLOGY_V2) {
            // ECX[15:8] level type: 1 = SMT, 2 = core, 0 = invalid (end of list).
            entry.edx = apic_id;
            if (entry.index == 0) {
                entry.eax = 0;
                entry.ebx = 1;
                entry.ecx = (1u << 8) | 0;
            } else if (entry.index == 1) {
                entry.eax = core_bits;
                entry.ebx = vcpu_count;
                entry.ecx = (2u << 8) | 1;
            } else {
                entry.eax = 0;
                entry.ebx = 0;
                entry.ecx = entry.index;
            }
        }
    }
    if (auto* leaf = find_leaf(table, LEAF_AMD_SIZES)) {
        // AMD: ECX[7:0] = cores - 1, ECX[15:12] = APIC id bits for the core number.
        leaf->ecx = (leaf->ecx & ~0xF0FFu) | (core_bits << 12) | (vcpu_count - 1);
    }
}

void set_hypervisor_bit(CpuidTable& table)
{
    if (auto* leaf = find_leaf(table, LEAF_FEATURES))
        leaf->ecx |= u32 { 1 } << HYPERVISOR_BIT;
}

void restrict_kvm_leaves(CpuidTable& table)
{
    if (auto* leaf = find_leaf(table, LEAF_KVM_FEATURES)) {
        leaf->eax &= KVM_FEATURES_ALLOWED;
        leaf->edx = 0; // KVM_HINTS_REALTIME and friends: promises about the host we can't make.
    }
}

void replace_hypervisor_leaves(CpuidTable& table, std::span<CpuidEntry const> leaves)
{
    std::erase_if(table, [](CpuidEntry const& entry) {
        return entry.function >= LEAF_HYPERVISOR_FIRST && entry.function <= LEAF_HYPERVISOR_LAST;
    });
    table.insert(table.end(), leaves.begin(), leaves.end());
}

} // namespace vmm

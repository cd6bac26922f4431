// SPDX-License-Identifier: MIT
// The guest's CPUID table, built from KVM_GET_SUPPORTED_CPUID: feature hiding by name (with
// dependent features), per-vCPU topology, and the hypervisor leaves (KVM's or Hyper-V's).
// Pure functions on plain data, so the table is unit-tested without KVM (this host ignores
// standard-leaf filtering, test-host §9, so unit tests are where it can be checked).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "base/types.hpp"

namespace vmm {

// One CPUID leaf as the guest sees it. `indexed` mirrors KVM_CPUID_FLAG_SIGNIFCANT_INDEX:
// when false the leaf answers every ECX input.
struct CpuidEntry {
    u32 function { 0 };
    u32 index { 0 };
    bool indexed { false };
    u32 eax { 0 };
    u32 ebx { 0 };
    u32 ecx { 0 };
    u32 edx { 0 };
};
using CpuidTable = std::vector<CpuidEntry>;

enum class CpuReg : u8 { Eax, Ebx, Ecx, Edx };

// A named feature bit (names as in Linux's /proc/cpuinfo, arch/x86/include/asm/cpufeatures.h).
struct CpuFeature {
    std::string_view name;
    u32 function;
    u32 index;
    CpuReg reg;
    u8 bit;
};

std::span<CpuFeature const> cpu_features();
std::optional<CpuFeature> find_cpu_feature(std::string_view name);

// Returns the unknown name (if any) so config validation can name it without a table.
std::optional<std::string> first_unknown_feature(std::span<std::string const> names);

CpuidEntry* find_leaf(CpuidTable&, u32 function, u32 index = 0);
CpuidEntry const* find_leaf(CpuidTable const&, u32 function, u32 index = 0);

// Clears each named feature and everything that depends on it (xsave hides osxsave, the AVX
// family and leaf 0xD). Unknown names fail with Errc::Config naming the feature.
Result<void> hide_features(CpuidTable&, std::span<std::string const> names);

// One package of `vcpu_count` single-thread cores; writes the APIC id of vCPU `apic_id` into
// leaves 1, 0xB, 0x1F (and AMD 0x80000008 / Intel 4 core counts).
void set_topology(CpuidTable&, u32 apic_id, u32 vcpu_count);

// Sets CPUID.1:ECX[31] (hypervisor present).
void set_hypervisor_bit(CpuidTable&);

// Keeps KVM's own 0x40000000/0x40000001 leaves but masks 0x40000001.EAX to the paravirt
// features microvmm is known to support with an in-kernel irqchip (see cpuid.cpp).
void restrict_kvm_leaves(CpuidTable&);

// Drops every hypervisor leaf (0x40000000..0x4FFFFFFF) and appends `leaves`: with Hyper-V
// the KVM signature must be absent everywhere (docs/guest-interface.md §1.1).
void replace_hypervisor_leaves(CpuidTable&, std::span<CpuidEntry const> leaves);

} // namespace vmm

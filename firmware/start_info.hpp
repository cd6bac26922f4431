// SPDX-License-Identifier: MIT
// Wire layout of the Xen/PVH boot information a PVH kernel finds in %ebx at entry.
//
// Spec: Linux include/xen/interface/hvm/start_info.h (6.1); Xen docs/misc/pvh.pandoc.
//       Field names kept from start_info.h.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/types.hpp"
#include "base/wire.hpp"

namespace vmm::firmware {

// "xEn3" with the 0x80 bit of the "E" set (XEN_HVM_START_MAGIC_VALUE).
inline constexpr u32 XEN_HVM_START_MAGIC_VALUE = 0x336E'C578;
// Version 1 adds memmap_paddr/memmap_entries; Linux refuses a non-Xen PVH boot without a
// memmap (arch/x86/platform/pvh/enlighten.c init_pvh_bootparams()).
inline constexpr u32 HVM_START_INFO_VERSION = 1;

struct HvmStartInfo {
    u32 magic;          //  0
    u32 version;        //  4
    u32 flags;          //  8
    u32 nr_modules;     // 12
    u64 modlist_paddr;  // 16
    u64 cmdline_paddr;  // 24
    u64 rsdp_paddr;     // 32
    u64 memmap_paddr;   // 40 (version >= 1)
    u32 memmap_entries; // 48
    u32 reserved;       // 52 (must be zero)
};
static_assert(sizeof(HvmStartInfo) == 56 && Wire<HvmStartInfo>);
static_assert(offsetof(HvmStartInfo, rsdp_paddr) == 32 && offsetof(HvmStartInfo, memmap_entries) == 48);

struct HvmModlistEntry {
    u64 paddr;         //  0
    u64 size;          //  8
    u64 cmdline_paddr; // 16
    u64 reserved;      // 24
};
static_assert(sizeof(HvmModlistEntry) == 32 && Wire<HvmModlistEntry>);

struct HvmMemmapTableEntry {
    u64 addr;     //  0
    u64 size;     //  8
    u32 type;     // 16 (XEN_HVM_MEMMAP_TYPE_* = e820 types)
    u32 reserved; // 20
};
static_assert(sizeof(HvmMemmapTableEntry) == 24 && Wire<HvmMemmapTableEntry>);

} // namespace vmm::firmware

// SPDX-License-Identifier: MIT
// The boot GDT, the identity-mapped page tables and the entry register states for the two
// entry modes: 32-bit protected mode (PVH) and 64-bit long mode (Linux 64-bit boot protocol).
#pragma once

#include <array>
#include <cstdint>

#include "base/error.hpp"
#include "firmware/boot_cpu_state.hpp"
#include "mem/guest_memory.hpp"

namespace vmm::firmware {

// Boot GDT selectors. Linux's 64-bit boot protocol requires __BOOT_CS = 0x10 and
// __BOOT_DS = 0x18 (boot.rst "64-bit BOOT PROTOCOL"); PVH leaves selectors unspecified, so the
// 32-bit code segment takes the free slot 0x08 (Xen docs/misc/pvh.pandoc).
inline constexpr u16 BOOT_CS32_SELECTOR = 0x08;
inline constexpr u16 BOOT_CS64_SELECTOR = 0x10;
inline constexpr u16 BOOT_DS_SELECTOR = 0x18;
inline constexpr u16 BOOT_TSS_SELECTOR = 0x20;
inline constexpr std::size_t BOOT_GDT_ENTRIES = 5;

// Descriptor attribute word in Linux's GDT_ENTRY() layout (arch/x86/include/asm/segment.h):
// bits 0-3 type, 4 S, 5-6 DPL, 7 P, 12 AVL, 13 L, 14 D/B, 15 G.
inline constexpr u16 GDT_CODE32_FLAGS = 0xC09B; // G, D, P, S, execute/read/accessed.
inline constexpr u16 GDT_CODE64_FLAGS = 0xA09B; // G, L, P, S, execute/read/accessed.
inline constexpr u16 GDT_DATA_FLAGS = 0xC093;   // G, B, P, S, read/write/accessed.
inline constexpr u16 GDT_TSS_FLAGS = 0x008B;    // P, busy 32-bit TSS (S = 0).
inline constexpr u32 TSS_LIMIT = 0x67;          // Minimum 32-bit TSS (SDM Vol. 3A 7.2.1).

// Encodes a segment descriptor (SDM Vol. 3A Figure 3-8), as Linux GDT_ENTRY().
constexpr u64 gdt_entry(u16 flags, u32 base, u32 limit)
{
    return ((u64 { base } & 0xFF00'0000) << 32) | ((u64 { flags } & 0xF0FF) << 40)
        | ((u64 { limit } & 0xF'0000) << 32) | ((u64 { base } & 0x00FF'FFFF) << 16) | (u64 { limit } & 0xFFFF);
}

// The KVM view of the same descriptor (expanded limit, split attribute bits).
SegmentState segment_from_descriptor(u64 descriptor, u16 selector);

// The boot GDT: null, code32 (0x08), code64 (0x10), data (0x18), TSS (0x20).
std::array<u64, BOOT_GDT_ENTRIES> boot_gdt();

// Writes the GDT and a zeroed 8-byte IDT (any interrupt before the kernel loads its own IDT
// ends in a triple fault, a clean shutdown exit, instead of running garbage).
Result<void> write_boot_gdt(mem::GuestMemory const&);
// PML4 -> PDPT -> 4 page directories of 2 MiB pages: [0, 4 GiB) mapped 1:1, writable.
Result<void> write_identity_page_tables(mem::GuestMemory const&);

BootCpuState protected_mode_cpu_state(u64 entry, u64 start_info_gpa);
BootCpuState long_mode_cpu_state(u64 entry, u64 zero_page_gpa);

} // namespace vmm::firmware

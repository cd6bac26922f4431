// SPDX-License-Identifier: MIT
// Wire layout of the Linux x86 "zero page" (struct boot_params) and its setup header.
//
// Spec: Linux arch/x86/include/uapi/asm/bootparam.h (6.1), Documentation/x86/boot.rst and
//       Documentation/x86/zero-page.rst. Field names kept from bootparam.h.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "base/types.hpp"
#include "base/wire.hpp"

namespace vmm::firmware {

// Header magic "HdrS" (boot.rst, offset 0x202) and the 0xAA55 boot_flag (offset 0x1FE).
inline constexpr u32 SETUP_HEADER_MAGIC = 0x5372'6448;
inline constexpr u16 SETUP_BOOT_FLAG = 0xAA55;
// Offsets inside a bzImage / the zero page (boot.rst "THE REAL-MODE KERNEL HEADER").
inline constexpr std::size_t SETUP_HEADER_OFFSET = 0x1F1;
inline constexpr std::size_t SETUP_JUMP_OFFSET = 0x200; // The header ends at 0x202 + byte at 0x201.
inline constexpr std::size_t SETUP_MAGIC_OFFSET = 0x202;
inline constexpr std::size_t SETUP_VERSION_OFFSET = 0x206;
// setup_sects == 0 means 4 (boot.rst "setup_sects").
inline constexpr u8 SETUP_SECTS_DEFAULT = 4;
inline constexpr u64 SECTOR_BYTES = 512;
// Boot protocol 2.12 (Linux 3.8): xloadflags and the 64-bit entry are defined from here on.
inline constexpr u16 MIN_BOOT_PROTOCOL = 0x020C;
// loadflags / xloadflags bits (bootparam.h).
inline constexpr u8 LOADED_HIGH = 1 << 0;
inline constexpr u16 XLF_KERNEL_64 = 1 << 0;
// type_of_loader 0xFF: "undefined" boot loader (boot.rst "type_of_loader").
inline constexpr u8 LOADER_TYPE_UNDEFINED = 0xFF;
// E820_MAX_ENTRIES_ZEROPAGE.
inline constexpr std::size_t ZERO_PAGE_E820_ENTRIES = 128;

struct [[gnu::packed]] SetupHeader {
    u8 setup_sects;             // 0x1f1
    u16 root_flags;             // 0x1f2
    u32 syssize;                // 0x1f4
    u16 ram_size;               // 0x1f8
    u16 vid_mode;               // 0x1fa
    u16 root_dev;               // 0x1fc
    u16 boot_flag;              // 0x1fe
    u16 jump;                   // 0x200
    u32 header;                 // 0x202
    u16 version;                // 0x206
    u32 realmode_swtch;         // 0x208
    u16 start_sys_seg;          // 0x20c
    u16 kernel_version;         // 0x20e
    u8 type_of_loader;          // 0x210
    u8 loadflags;               // 0x211
    u16 setup_move_size;        // 0x212
    u32 code32_start;           // 0x214
    u32 ramdisk_image;          // 0x218
    u32 ramdisk_size;           // 0x21c
    u32 bootsect_kludge;        // 0x220
    u16 heap_end_ptr;           // 0x224
    u8 ext_loader_ver;          // 0x226
    u8 ext_loader_type;         // 0x227
    u32 cmd_line_ptr;           // 0x228
    u32 initrd_addr_max;        // 0x22c
    u32 kernel_alignment;       // 0x230
    u8 relocatable_kernel;      // 0x234
    u8 min_alignment;           // 0x235
    u16 xloadflags;             // 0x236
    u32 cmdline_size;           // 0x238
    u32 hardware_subarch;       // 0x23c
    u64 hardware_subarch_data;  // 0x240
    u32 payload_offset;         // 0x248
    u32 payload_length;         // 0x24c
    u64 setup_data;             // 0x250
    u64 pref_address;           // 0x258
    u32 init_size;              // 0x260
    u32 handover_offset;        // 0x264
    u32 kernel_info_offset;     // 0x268
};
static_assert(sizeof(SetupHeader) == 0x26C - SETUP_HEADER_OFFSET && Wire<SetupHeader>);
static_assert(offsetof(SetupHeader, header) == SETUP_MAGIC_OFFSET - SETUP_HEADER_OFFSET);
static_assert(offsetof(SetupHeader, version) == SETUP_VERSION_OFFSET - SETUP_HEADER_OFFSET);
static_assert(offsetof(SetupHeader, pref_address) == 0x258 - SETUP_HEADER_OFFSET);

struct [[gnu::packed]] BootE820Entry {
    u64 addr;
    u64 size;
    u32 type;
};
static_assert(sizeof(BootE820Entry) == 20 && Wire<BootE820Entry>);

// Only the fields this VMM writes are named; the rest stay zero as boot.rst asks of a loader
// that builds a fresh zero page.
struct [[gnu::packed]] BootParams {
    std::array<u8, 0x70> pad_screen_apm_ist;                   // 0x000 screen_info .. ist_info
    u64 acpi_rsdp_addr;                                        // 0x070
    std::array<u8, 0x1E8 - 0x78> pad_legacy;                   // 0x078 .. efi_info, alt_mem_k
    u8 e820_entries;                                           // 0x1e8
    std::array<u8, 0x1F1 - 0x1E9> pad_edd_sentinel;            // 0x1e9
    SetupHeader hdr;                                           // 0x1f1
    std::array<u8, 0x2D0 - 0x26C> pad_edd_mbr;                 // 0x26c .. edd_mbr_sig_buffer
    std::array<BootE820Entry, ZERO_PAGE_E820_ENTRIES> e820_table; // 0x2d0
    std::array<u8, 0x1000 - 0xCD0> pad_eddbuf;                 // 0xcd0
};
static_assert(sizeof(BootParams) == 4096 && Wire<BootParams>);
static_assert(offsetof(BootParams, acpi_rsdp_addr) == 0x070);
static_assert(offsetof(BootParams, e820_entries) == 0x1E8);
static_assert(offsetof(BootParams, hdr) == 0x1F1);
static_assert(offsetof(BootParams, e820_table) == 0x2D0);

} // namespace vmm::firmware

// SPDX-License-Identifier: MIT
// Wire layout of the ELF64 structures the kernel loader reads (file header, program header,
// note header) and the constants it checks.
//
// Spec: System V gABI "ELF-64 Object File Format" 1.5; Linux include/uapi/linux/elf.h;
//       Xen include/public/elfnote.h (XEN_ELFNOTE_PHYS32_ENTRY).
#pragma once

#include <array>
#include <cstdint>

#include "base/types.hpp"
#include "base/wire.hpp"

namespace vmm::firmware::elf {

inline constexpr std::array<u8, 4> ELFMAG = { 0x7F, 'E', 'L', 'F' };
inline constexpr u8 ELFCLASS64 = 2;
inline constexpr u8 ELFDATA2LSB = 1;
inline constexpr u8 EV_CURRENT = 1;
inline constexpr u16 ET_EXEC = 2;
inline constexpr u16 EM_X86_64 = 62;
inline constexpr u32 PT_LOAD = 1;
inline constexpr u32 PT_NOTE = 4;
// e_phnum == PN_XNUM means the real count is in section 0; vmlinux never needs it.
inline constexpr u16 PN_XNUM = 0xFFFF;
// Xen PVH entry note: owner "Xen", type 18, a 32-bit physical entry point (Linux emits it as
// an 8-byte _ASM_PTR on x86-64: arch/x86/platform/pvh/head.S).
inline constexpr u32 XEN_ELFNOTE_PHYS32_ENTRY = 18;

struct Elf64Ehdr {
    std::array<u8, 16> e_ident; //  0
    u16 e_type;                 // 16
    u16 e_machine;              // 18
    u32 e_version;              // 20
    u64 e_entry;                // 24
    u64 e_phoff;                // 32
    u64 e_shoff;                // 40
    u32 e_flags;                // 48
    u16 e_ehsize;               // 52
    u16 e_phentsize;            // 54
    u16 e_phnum;                // 56
    u16 e_shentsize;            // 58
    u16 e_shnum;                // 60
    u16 e_shstrndx;             // 62
};
static_assert(sizeof(Elf64Ehdr) == 64 && Wire<Elf64Ehdr>);

// e_ident indexes.
inline constexpr std::size_t EI_CLASS = 4;
inline constexpr std::size_t EI_DATA = 5;
inline constexpr std::size_t EI_VERSION = 6;

struct Elf64Phdr {
    u32 p_type;   //  0
    u32 p_flags;  //  4
    u64 p_offset; //  8
    u64 p_vaddr;  // 16
    u64 p_paddr;  // 24
    u64 p_filesz; // 32
    u64 p_memsz;  // 40
    u64 p_align;  // 48
};
static_assert(sizeof(Elf64Phdr) == 56 && Wire<Elf64Phdr>);

// Name and descriptor follow, each padded to 4 bytes (gABI "Note Section").
struct Elf64Nhdr {
    u32 n_namesz; // 0
    u32 n_descsz; // 4
    u32 n_type;   // 8
};
static_assert(sizeof(Elf64Nhdr) == 12 && Wire<Elf64Nhdr>);

} // namespace vmm::firmware::elf

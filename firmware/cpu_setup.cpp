// SPDX-License-Identifier: MIT
// Boot GDT, identity page tables and entry register states (see cpu_setup.hpp).
//
// Spec: Xen docs/misc/pvh.pandoc and Linux arch/x86/platform/pvh/head.S (PVH entry state);
//       Linux Documentation/x86/boot.rst "64-bit BOOT PROTOCOL"; Intel SDM Vol. 3A 4.5 (paging).
#include "firmware/cpu_setup.hpp"

#include "firmware/layout.hpp"

namespace vmm::firmware {

namespace {

// Page-table entry bits (SDM Vol. 3A Table 4-15..4-19): present, writable, 2 MiB page.
constexpr u64 PTE_PRESENT = 1 << 0;
constexpr u64 PTE_WRITABLE = 1 << 1;
constexpr u64 PTE_LARGE_PAGE = 1 << 7;
constexpr u64 ENTRIES_PER_TABLE = 512;
constexpr u64 LARGE_PAGE_BYTES = 2 * MIB;
constexpr u64 IDENTITY_MAP_BYTES = 4 * GIB;
constexpr u64 PAGE_DIRECTORIES = IDENTITY_MAP_BYTES / (ENTRIES_PER_TABLE * LARGE_PAGE_BYTES);
static_assert(BOOT_PD_GPA + PAGE_DIRECTORIES * 4096 == BOOT_PAGE_TABLES_END);

constexpr u32 FLAT_LIMIT = 0xF'FFFF; // 4 GiB with G = 1.

BootCpuState common_state(u64 entry, std::array<u64, BOOT_GDT_ENTRIES> const& gdt, u16 cs_selector)
{
    BootCpuState state {};
    state.rip = entry;
    state.rsp = BOOT_STACK_TOP;
    state.rflags = X86_RFLAGS_RESERVED_1;
    state.cs = segment_from_descriptor(gdt[cs_selector / 8], cs_selector);
    SegmentState data = segment_from_descriptor(gdt[BOOT_DS_SELECTOR / 8], BOOT_DS_SELECTOR);
    state.ds = state.es = state.fs = state.gs = state.ss = data;
    state.tr = segment_from_descriptor(gdt[BOOT_TSS_SELECTOR / 8], BOOT_TSS_SELECTOR);
    state.gdt_base = BOOT_GDT_GPA;
    state.gdt_limit = static_cast<u16>(BOOT_GDT_ENTRIES * sizeof(u64) - 1);
    state.idt_base = BOOT_IDT_GPA;
    state.idt_limit = sizeof(u64) - 1;
    return state;
}

} // namespace

SegmentState segment_from_descriptor(u64 descriptor, u16 selector)
{
    auto bit = [descriptor](unsigned index) { return static_cast<u8>((descriptor >> index) & 1); };
    u32 raw_limit = static_cast<u32>((descriptor & 0xFFFF) | ((descriptor >> 32) & 0xF'0000));
    u8 granular = bit(55);
    return SegmentState {
        .base = ((descriptor >> 16) & 0xFF'FFFF) | ((descriptor >> 32) & 0xFF00'0000),
        .limit = granular ? (raw_limit << 12) | 0xFFF : raw_limit,
        .selector = selector,
        .type = static_cast<u8>((descriptor >> 40) & 0xF),
        .present = bit(47),
        .dpl = static_cast<u8>((descriptor >> 45) & 3),
        .db = bit(54),
        .s = bit(44),
        .l = bit(53),
        .g = granular,
        .avl = bit(52),
    };
}

std::array<u64, BOOT_GDT_ENTRIES> boot_gdt()
{
    return {
        0, // The null descriptor.
        gdt_entry(GDT_CODE32_FLAGS, 0, FLAT_LIMIT),
        gdt_entry(GDT_CODE64_FLAGS, 0, FLAT_LIMIT),
        gdt_entry(GDT_DATA_FLAGS, 0, FLAT_LIMIT),
        // An 8-byte (32-bit) TSS descriptor: only its cached form in TR matters, nobody runs
        // LTR on this GDT (the kernels install their own GDT and TSS).
        gdt_entry(GDT_TSS_FLAGS, 0, TSS_LIMIT),
    };
}

Result<void> write_boot_gdt(mem::GuestMemory const& memory)
{
    VMM_TRY(memory.write_obj(mem::Gpa { BOOT_GDT_GPA }, boot_gdt()));
    return memory.write_obj(mem::Gpa { BOOT_IDT_GPA }, u64 { 0 });
}

Result<void> write_identity_page_tables(mem::GuestMemory const& memory)
{
    VMM_TRY(memory.fill(mem::Gpa { BOOT_PML4_GPA }, std::byte { 0 }, BOOT_PAGE_TABLES_END - BOOT_PML4_GPA));
    VMM_TRY(memory.write_obj(mem::Gpa { BOOT_PML4_GPA }, BOOT_PDPT_GPA | PTE_PRESENT | PTE_WRITABLE));
    for (u64 directory = 0; directory < PAGE_DIRECTORIES; ++directory) {
        u64 pd_gpa = BOOT_PD_GPA + directory * 4096;
        VMM_TRY(memory.write_obj(mem::Gpa { BOOT_PDPT_GPA + directory * sizeof(u64) }, pd_gpa | PTE_PRESENT | PTE_WRITABLE));
        std::array<u64, ENTRIES_PER_TABLE> entries;
        for (u64 i = 0; i < ENTRIES_PER_TABLE; ++i)
            entries[i] = (directory * ENTRIES_PER_TABLE + i) * LARGE_PAGE_BYTES | PTE_PRESENT | PTE_WRITABLE | PTE_LARGE_PAGE;
        VMM_TRY(memory.write_obj(mem::Gpa { pd_gpa }, entries));
    }
    return {};
}

BootCpuState protected_mode_cpu_state(u64 entry, u64 start_info_gpa)
{
    // PVH: CR0.PE only (ET is read-only 1), CR4 = 0, paging off, flat 32-bit CS/DS/ES,
    // ebx = start info (pvh.pandoc; head.S comment above pvh_start_xen).
    BootCpuState state = common_state(entry, boot_gdt(), BOOT_CS32_SELECTOR);
    state.rbx = start_info_gpa;
    state.cr0 = X86_CR0_PE | X86_CR0_ET;
    return state;
}

BootCpuState long_mode_cpu_state(u64 entry, u64 zero_page_gpa)
{
    // 64-bit boot protocol: long mode with paging, identity map covering the kernel, zero
    // page and command line, CS = __BOOT_CS, DS/ES/SS = __BOOT_DS, rsi = zero page.
    BootCpuState state = common_state(entry, boot_gdt(), BOOT_CS64_SELECTOR);
    state.rsi = zero_page_gpa;
    state.cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
    state.cr3 = BOOT_PML4_GPA;
    state.cr4 = X86_CR4_PAE;
    state.efer = X86_EFER_LME | X86_EFER_LMA;
    return state;
}

} // namespace vmm::firmware

// SPDX-License-Identifier: MIT
// The boot vCPU's initial register state as plain data: the VMM core copies it into
// kvm_regs/kvm_sregs (KVM_SET_REGS/KVM_SET_SREGS); firmware stays free of <linux/kvm.h>.
#pragma once

#include <cstdint>

#include "base/types.hpp"

namespace vmm::firmware {

// Mirrors struct kvm_segment: `limit` is the byte-granular (expanded) limit, the flags are
// the descriptor's attribute bits (Intel SDM Vol. 3A 3.4.5).
struct SegmentState {
    u64 base;
    u32 limit;
    u16 selector;
    u8 type;
    u8 present, dpl, db, s, l, g, avl;
    bool operator==(SegmentState const&) const = default;
};

struct BootCpuState {
    u64 rip, rsp, rbx, rsi, rflags;
    u64 cr0, cr3, cr4, efer;
    SegmentState cs, ds, es, fs, gs, ss;
    // A 32-bit busy TSS descriptor from the boot GDT: VM entry needs a usable TR in protected
    // mode (Intel SDM Vol. 3C 26.3.1.2); KVM's reset TR also works, so setting it is optional.
    SegmentState tr;
    u64 gdt_base;
    u16 gdt_limit;
    u64 idt_base;
    u16 idt_limit;
};

// Control-register and EFER bits used at entry (Intel SDM Vol. 3A 2.5, 2.2.1).
inline constexpr u64 X86_CR0_PE = u64 { 1 } << 0;
inline constexpr u64 X86_CR0_ET = u64 { 1 } << 4; // Hard-wired to 1 on every CPU since the 486.
inline constexpr u64 X86_CR0_PG = u64 { 1 } << 31;
inline constexpr u64 X86_CR4_PAE = u64 { 1 } << 5;
inline constexpr u64 X86_EFER_LME = u64 { 1 } << 8;
inline constexpr u64 X86_EFER_LMA = u64 { 1 } << 10;
// RFLAGS bit 1 is reserved and always 1; IF, TF and VM stay clear (PVH ABI, boot.rst).
inline constexpr u64 X86_RFLAGS_RESERVED_1 = u64 { 1 } << 1;

} // namespace vmm::firmware

// SPDX-License-Identifier: MIT
// x86 register state in microvmm's own types, so callers of KvmVcpu never see <linux/kvm.h>.
#pragma once

#include "base/types.hpp"

namespace vmm::kvm {

struct Regs {
    u64 rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    u64 r8, r9, r10, r11, r12, r13, r14, r15;
    u64 rip, rflags;
};

// A segment register's hidden part (SDM Vol. 3A 3.4.5); `type` is the 4-bit descriptor type.
struct Segment {
    u64 base { 0 };
    u32 limit { 0 };
    u16 selector { 0 };
    u8 type { 0 };
    u8 present { 0 };
    u8 dpl { 0 };
    u8 db { 0 };
    u8 s { 0 };
    u8 l { 0 };
    u8 g { 0 };
};

struct DescriptorTable {
    u64 base { 0 };
    u16 limit { 0 };
};

// The parts of KVM_GET/SET_SREGS microvmm sets; the rest (LDT, APIC base, interrupt bitmap)
// is kept as KVM initialised it.
struct SpecialRegs {
    Segment cs, ds, es, fs, gs, ss, tr;
    DescriptorTable gdt, idt;
    u64 cr0 { 0 }, cr3 { 0 }, cr4 { 0 }, efer { 0 };
};

} // namespace vmm::kvm

// SPDX-License-Identifier: MIT
// The seccomp allow-lists, one per thread type, as data: a rule is one system call with an
// optional conjunction of argument comparisons; several rules for one call are alternatives.
// seccomp_compiler.cpp turns each list into BPF with libseccomp at build time; seccomp_filter.*
// loads the result. Kept apart so the tables can be read (and reviewed) as one page and
// unit-tested without loading them.
#pragma once

#include <cstdint>
#include <vector>

#include "vmm/sandbox/thread_kind.hpp"

namespace vmm::sandbox {

struct ArgCheck {
    enum class Op : std::uint8_t { Eq, Ne, MaskedEq };
    unsigned index;       // 0-5: the system call argument.
    Op op;
    std::uint64_t mask;   // MaskedEq: (arg & mask) == value; Eq/Ne: arg ==/!= value.
    std::uint64_t value;
};

struct SyscallRule {
    int nr;                       // __NR_* of the native (x86-64) ABI.
    std::vector<ArgCheck> checks; // All must hold; empty: any arguments.
};

// The rules of one thread type, children included: a thread's filter stays on every thread it
// creates (filters stack and are inherited, seccomp(2)), so the event loop's list is its own
// calls plus those of the vCPU and Hyper-V timer threads it starts on every boot. The API thread
// is started before the loop installs its filter and so runs under its own list only.
std::vector<SyscallRule> rules_for(ThreadKind);
// Only the thread's own calls (no children): for the documentation table and the tests.
std::vector<SyscallRule> own_rules(ThreadKind);

// Extra calls of the sanitizer runtimes (ASan, UBSan, TSan: their interceptors, shadow memory,
// background thread and reports). Present only in sanitizer builds (MICROVMM_SANITIZER_BUILD),
// added to every thread's list; never in the product.
std::vector<SyscallRule> sanitizer_rules();

} // namespace vmm::sandbox

// SPDX-License-Identifier: MIT
// The seccomp programs, compiled at build time: build/vmm/sandbox/seccomp_programs.cpp is
// written by seccomp_compiler.cpp from seccomp_rules.cpp (libseccomp runs on the build machine,
// never in microvmm). seccomp_filter.cpp loads them.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <span>

#include "vmm/sandbox/thread_kind.hpp"

namespace vmm::sandbox {

// x86-64 system call numbers in use end below 512 (arch/x86/entry/syscalls/syscall_64.tbl).
inline constexpr int SYSCALL_NAME_TABLE_SIZE = 512;

// The classic-BPF filter of `kind`'s allow-list (rules_for(kind)): ALLOW for a listed call,
// SECCOMP_RET_TRAP for any other, SECCOMP_RET_KILL_PROCESS for another ABI.
std::span<sock_filter const> filter_program(ThreadKind kind);

// The x86-64 name of system call `nr` ("personality"), or nullptr. Async-signal-safe (constant data).
char const* syscall_name(int nr);

} // namespace vmm::sandbox

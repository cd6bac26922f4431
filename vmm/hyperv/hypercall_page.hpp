// SPDX-License-Identifier: MIT
// The code the host writes into the guest's hypercall page on WRMSR HV_X64_MSR_HYPERCALL
// enable: `out HYPERCALL_PORT, al ; ret`, so every hypercall becomes a port-I/O exit that
// reaches user space on any KVM (guest-interface §3.1).
#pragma once

#include <array>
#include <cstddef>

#include "mem/gpa.hpp"

namespace vmm::hyperv {

enum class Endbr64 : bool { Omit, Emit };

// One whole page: the trampoline, then INT3 padding so a stray jump into the page traps.
std::array<std::byte, mem::PAGE_SIZE> hypercall_page(Endbr64);

} // namespace vmm::hyperv

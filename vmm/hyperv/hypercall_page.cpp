// SPDX-License-Identifier: MIT
// Hypercall page bytes (guest-interface §3.1). Linux calls the page with an indirect `call`, passing
// rcx/rdx/r8, and expects the result in rax after a plain `ret` (arch/x86/include/asm/mshyperv.h:39-140).
#include "vmm/hyperv/hypercall_page.hpp"

#include <algorithm>

#include "firmware/layout.hpp"

namespace vmm::hyperv {
namespace {

// ENDBR64: first instruction of an indirect-branch target for IBT guests (hv_init.c:500-506).
constexpr std::array<std::byte, 4> ENDBR64 { std::byte { 0xF3 }, std::byte { 0x0F }, std::byte { 0x1E },
    std::byte { 0xFA } };
// OUT imm8, AL (Intel SDM Vol. 2B "OUT": E6 ib). KVM leaves RIP on the OUT for ports other than
// 0x7E and advances it when the exit completes (arch/x86/kvm/x86.c:9116-9149), so the guest
// resumes at the RET with the rax the VMM wrote back.
constexpr std::byte OUT_IMM8_AL { 0xE6 };
constexpr std::byte RET { 0xC3 };
constexpr std::byte INT3 { 0xCC };
static_assert(firmware::HYPERCALL_PORT <= 0xFF && firmware::HYPERCALL_PORT != 0x7E,
    "imm8 port, and not KVM's legacy port 0x7E that advances RIP before the exit");

} // namespace

std::array<std::byte, mem::PAGE_SIZE> hypercall_page(Endbr64 endbr64)
{
    std::array<std::byte, mem::PAGE_SIZE> page;
    std::ranges::fill(page, INT3);
    auto out = page.begin();
    if (endbr64 == Endbr64::Emit)
        out = std::ranges::copy(ENDBR64, out).out;
    *out++ = OUT_IMM8_AL;
    *out++ = static_cast<std::byte>(firmware::HYPERCALL_PORT);
    *out++ = RET;
    return page;
}

} // namespace vmm::hyperv

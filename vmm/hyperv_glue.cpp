// SPDX-License-Identifier: MIT
#include "vmm/hyperv_glue.hpp"

#include "base/log.hpp"
#include "firmware/layout.hpp"

namespace vmm {

namespace {
constexpr u64 MSI_ADDRESS_BASE = 0xFEE0'0000; // SDM Vol. 3A 10.11.1: MSI address bits 31:20.
constexpr unsigned MSI_DESTINATION_SHIFT = 12; // Destination ID, bits 19:12.
} // namespace

void MsiInterruptSink::inject(std::uint32_t vp, std::uint8_t vector)
{
    // Data bits 10:8 = 000 (fixed), bit 15 = 0 (edge): only the vector is set.
    if (auto sent = m_vm.signal_msi(MSI_ADDRESS_BASE | (u64 { vp } << MSI_DESTINATION_SHIFT), vector); !sent)
        VMM_GUEST_WARN("hyperv", "interrupt to vp {} vector {:#x} lost: {}", vp, vector, sent.error());
}

bool PartitionHooks::is_hypercall_port(u16 port) const { return port == firmware::HYPERCALL_PORT; }

void PartitionHooks::hypercall(u32 vp, u8 cpl, kvm::Regs& regs)
{
    hyperv::HypercallRegs call { regs.rax, regs.rcx, regs.rdx, regs.r8, cpl };
    m_partition.hypercall(vp, call);
    regs.rax = call.rax;
}

} // namespace vmm

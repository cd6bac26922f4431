// SPDX-License-Identifier: MIT
// KvmVm: the owner of a VM fd. In-kernel irqchip (LAPIC + IOAPIC + PIC) and PIT, memory slots,
// interrupt lines and MSIs, and the user-space MSR filter that Hyper-V emulation needs.
#pragma once

#include <span>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/types.hpp"
#include "mem/gpa.hpp"

namespace vmm::kvm {

class KvmVcpu;

class KvmVm {
public:
    KvmVm(Fd fd, u32 vcpu_mmap_bytes)
        : m_fd(std::move(fd))
        , m_vcpu_mmap_bytes(vcpu_mmap_bytes)
    {
    }

    // KVM_SET_TSS_ADDR + KVM_SET_IDENTITY_MAP_ADDR, KVM_CREATE_IRQCHIP, KVM_CREATE_PIT2.
    // `tss_gpa` needs 3 pages and the identity map 1 page of guest-physical space that is
    // neither RAM nor MMIO (Firecracker/kvmtool put them just below the 4 GiB BIOS area).
    Result<void> create_platform(mem::Gpa tss_gpa, mem::Gpa identity_map_gpa);

    // Maps [gpa, gpa + host.size()) to `host`; `host` must stay mapped until remove.
    Result<void> set_user_memory_region(u32 slot, mem::Gpa gpa, std::span<std::byte> host);
    Result<void> remove_user_memory_region(u32 slot);

    // KVM_IRQ_LINE: level of an IOAPIC/PIC input (edge-triggered pins fire on 0 -> 1).
    Result<void> irq_line(u32 gsi, bool level);
    // KVM_SIGNAL_MSI: an MSI write of `data` to `address` (the LAPIC decodes it).
    Result<void> signal_msi(u64 address, u32 data);

    // KVM_IOEVENTFD: a guest write of exactly `length` bytes (1, 2, 4 or 8) at MMIO `address`
    // (or port, with `io_space`) signals `eventfd` inside the kernel instead of exiting, any
    // value (no datamatch). remove_ioeventfd() takes the same arguments (KVM matches them).
    Result<void> add_ioeventfd(bool io_space, u64 address, u32 length, int eventfd);
    Result<void> remove_ioeventfd(bool io_space, u64 address, u32 length, int eventfd);

    // Makes guest RDMSR/WRMSR of `msrs` exit to user space (KVM_EXIT_X86_RDMSR/WRMSR) and
    // lets KVM's own handling cover everything else. Also routes MSRs KVM does not know to
    // user space, where they fault with #GP unless someone handles them.
    Result<void> set_msr_filter(std::span<u32 const> msrs);

    Result<KvmVcpu> create_vcpu(u32 index);

    int fd() const { return m_fd.get(); }

private:
    Fd m_fd;
    u32 m_vcpu_mmap_bytes;
};

} // namespace vmm::kvm

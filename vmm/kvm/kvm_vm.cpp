// SPDX-License-Identifier: MIT
#include "vmm/kvm/kvm_vm.hpp"

#include "base/startup_trace.hpp"

#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <algorithm>
#include <vector>

#include "vmm/kvm/kvm_vcpu.hpp"

namespace vmm::kvm {

namespace {
// MSRs further apart than this go into separate filter ranges (each range is a bitmap of
// nmsrs bits starting at base, Documentation/virt/kvm/api.rst KVM_X86_SET_MSR_FILTER).
constexpr u32 MAX_MSR_RANGE_SPAN = 0x1000;
} // namespace

Result<void> KvmVm::create_platform(mem::Gpa tss_gpa, mem::Gpa identity_map_gpa)
{
    startup::KvmScope timed { startup::KvmCall::Other };
    if (::ioctl(m_fd.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(tss_gpa.raw())) < 0)
        return fail_errno("KVM_SET_TSS_ADDR");
    u64 identity_map = identity_map_gpa.raw();
    if (::ioctl(m_fd.get(), KVM_SET_IDENTITY_MAP_ADDR, &identity_map) < 0)
        return fail_errno("KVM_SET_IDENTITY_MAP_ADDR");
    if (::ioctl(m_fd.get(), KVM_CREATE_IRQCHIP, 0) < 0)
        return fail_errno("KVM_CREATE_IRQCHIP");
    // The PIT exists for guests that calibrate against it; its speaker port is a dummy.
    kvm_pit_config pit {};
    pit.flags = KVM_PIT_SPEAKER_DUMMY;
    if (::ioctl(m_fd.get(), KVM_CREATE_PIT2, &pit) < 0)
        return fail_errno("KVM_CREATE_PIT2");
    return {};
}

Result<void> KvmVm::set_user_memory_region(u32 slot, mem::Gpa gpa, std::span<std::byte> host)
{
    startup::KvmScope timed { startup::KvmCall::Memslots };
    kvm_userspace_memory_region region {};
    region.slot = slot;
    region.guest_phys_addr = gpa.raw();
    region.memory_size = host.size();
    region.userspace_addr = reinterpret_cast<u64>(host.data()); // The ABI passes a host address.
    if (::ioctl(m_fd.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0)
        return fail_errno("KVM_SET_USER_MEMORY_REGION");
    return {};
}

Result<void> KvmVm::remove_user_memory_region(u32 slot)
{
    kvm_userspace_memory_region region {};
    region.slot = slot; // memory_size 0 deletes the slot (api.rst).
    if (::ioctl(m_fd.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0)
        return fail_errno("KVM_SET_USER_MEMORY_REGION remove");
    return {};
}

Result<void> KvmVm::irq_line(u32 gsi, bool level)
{
    kvm_irq_level irq {};
    irq.irq = gsi;
    irq.level = level ? 1 : 0;
    if (::ioctl(m_fd.get(), KVM_IRQ_LINE, &irq) < 0)
        return fail_errno("KVM_IRQ_LINE");
    return {};
}

Result<void> KvmVm::signal_msi(u64 address, u32 data)
{
    kvm_msi msi {};
    msi.address_lo = static_cast<u32>(address);
    msi.address_hi = static_cast<u32>(address >> 32);
    msi.data = data;
    // > 0 delivered, 0 blocked by the guest (masked LAPIC): only < 0 is our failure.
    if (::ioctl(m_fd.get(), KVM_SIGNAL_MSI, &msi) < 0)
        return fail_errno("KVM_SIGNAL_MSI");
    return {};
}

namespace {
Result<void> ioeventfd(int vm_fd, bool io_space, u64 address, u32 length, int eventfd, bool remove)
{
    // Documentation/virt/kvm/api.rst 4.59 KVM_IOEVENTFD: len 0, 1, 2, 4 or 8; we never use 0
    // (any-length MMIO), so a wider or narrower guest access still exits to the device.
    if (length != 1 && length != 2 && length != 4 && length != 8)
        return fail(Errc::InvalidArgument, "KVM_IOEVENTFD length must be 1, 2, 4 or 8", length);
    kvm_ioeventfd request {};
    request.addr = address;
    request.len = length;
    request.fd = eventfd;
    request.flags = (io_space ? KVM_IOEVENTFD_FLAG_PIO : 0u) | (remove ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0u);
    if (::ioctl(vm_fd, KVM_IOEVENTFD, &request) < 0)
        return fail_errno(remove ? "KVM_IOEVENTFD deassign" : "KVM_IOEVENTFD");
    return {};
}
} // namespace

Result<void> KvmVm::add_ioeventfd(bool io_space, u64 address, u32 length, int eventfd)
{
    return ioeventfd(m_fd.get(), io_space, address, length, eventfd, false);
}

Result<void> KvmVm::remove_ioeventfd(bool io_space, u64 address, u32 length, int eventfd)
{
    return ioeventfd(m_fd.get(), io_space, address, length, eventfd, true);
}

Result<void> KvmVm::set_msr_filter(std::span<u32 const> msrs)
{
    startup::KvmScope timed { startup::KvmCall::Other };
    kvm_enable_cap cap {};
    cap.cap = KVM_CAP_X86_USER_SPACE_MSR;
    cap.args[0] = KVM_MSR_EXIT_REASON_FILTER | KVM_MSR_EXIT_REASON_UNKNOWN;
    if (::ioctl(m_fd.get(), KVM_ENABLE_CAP, &cap) < 0)
        return fail_errno("KVM_ENABLE_CAP KVM_CAP_X86_USER_SPACE_MSR");

    std::vector<u32> sorted(msrs.begin(), msrs.end());
    std::ranges::sort(sorted);
    // Group nearby MSRs into ranges; in each range's bitmap 1 = KVM handles, 0 = exit.
    std::vector<std::vector<u8>> bitmaps;
    kvm_msr_filter filter {};
    filter.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
    u32 range_count = 0;
    for (std::size_t first = 0; first < sorted.size();) {
        std::size_t last = first;
        while (last + 1 < sorted.size() && sorted[last + 1] - sorted[first] < MAX_MSR_RANGE_SPAN)
            ++last;
        if (range_count == KVM_MSR_FILTER_MAX_RANGES)
            return fail(Errc::Unsupported, "MSR filter needs more than 16 ranges", sorted[first]);
        u32 const base = sorted[first];
        u32 const count = sorted[last] - base + 1;
        auto& bitmap = bitmaps.emplace_back((count + 7) / 8, u8 { 0xFF });
        for (std::size_t i = first; i <= last; ++i) {
            u32 const bit = sorted[i] - base;
            bitmap[bit / 8] &= static_cast<u8>(~(1u << (bit % 8)));
        }
        auto& range = filter.ranges[range_count++];
        range.flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
        range.base = base;
        range.nmsrs = count;
        range.bitmap = bitmap.data();
        first = last + 1;
    }
    if (::ioctl(m_fd.get(), KVM_X86_SET_MSR_FILTER, &filter) < 0)
        return fail_errno("KVM_X86_SET_MSR_FILTER");
    return {};
}

Result<KvmVcpu> KvmVm::create_vcpu(u32 index)
{
    startup::KvmScope timed { startup::KvmCall::CreateVcpu };
    int raw = ::ioctl(m_fd.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(index));
    if (raw < 0)
        return fail_errno("KVM_CREATE_VCPU");
    Fd fd { raw };
    auto run = VMM_TRY(Mapping::of_fd(fd, 0, m_vcpu_mmap_bytes, PROT_READ | PROT_WRITE, MAP_SHARED));
    return KvmVcpu { index, std::move(fd), std::move(run) };
}

} // namespace vmm::kvm

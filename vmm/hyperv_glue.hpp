// SPDX-License-Identifier: MIT
// Connects a hyperv::Partition to the machine: interrupts go out as KVM_SIGNAL_MSI to the
// target vCPU's LAPIC, and the vCPU loop's MSR exits and hypercall-port OUTs come in through
// VcpuHooks.
#pragma once

#include <functional>

#include "vmm/hyperv/partition.hpp"
#include "vmm/kvm/kvm_vm.hpp"
#include "vmm/vcpu_hooks.hpp"

namespace vmm {

// Fixed-delivery, edge-triggered MSI to LAPIC `vp` (APIC id = vCPU index): address
// 0xFEE00000 | dest << 12 (physical destination mode), data = vector (Intel SDM Vol. 3A
// 10.11.1-10.11.2).
class MsiInterruptSink final : public hyperv::InterruptSink {
public:
    explicit MsiInterruptSink(kvm::KvmVm& vm)
        : m_vm(vm)
    {
    }
    void inject(std::uint32_t vp, std::uint8_t vector) override;

private:
    kvm::KvmVm& m_vm;
};

// Reset requests and crash reports from the partition, handed to the Machine's callbacks (called
// on the reporting vCPU's thread, like the ACPI reset register's power callback).
class PartitionPlatform final : public hyperv::PlatformSink {
public:
    PartitionPlatform(std::function<void()> reset, std::function<void(hyperv::CrashReport const&)> crashed)
        : m_reset(std::move(reset))
        , m_crashed(std::move(crashed))
    {
    }
    void reset_requested(std::uint32_t) override { m_reset(); }
    void guest_crashed(hyperv::CrashReport const& report) override
    {
        if (m_crashed)
            m_crashed(report);
    }

private:
    std::function<void()> m_reset;
    std::function<void(hyperv::CrashReport const&)> m_crashed;
};

class PartitionHooks final : public VcpuHooks {
public:
    explicit PartitionHooks(hyperv::Partition& partition)
        : m_partition(partition)
    {
    }
    std::optional<u64> read_msr(u32 vp, u32 msr) override { return m_partition.read_msr(vp, msr); }
    bool write_msr(u32 vp, u32 msr, u64 value) override { return m_partition.write_msr(vp, msr, value); }
    bool is_hypercall_port(u16 port) const override;
    void hypercall(u32 vp, u8 cpl, kvm::Regs& regs) override;

private:
    hyperv::Partition& m_partition;
};

} // namespace vmm

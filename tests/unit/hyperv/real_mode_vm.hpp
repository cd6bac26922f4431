// SPDX-License-Identifier: MIT
// RealModeVm: a small real-mode VM on the host's KVM for the *_kvm tests, built only from the
// vmm/kvm wrappers (the one place that calls KVM ioctls). RAM [0, ram_bytes) is a
// FakeGuestMemory registered as memslot 0; each vCPU starts in real mode with CS base 0 at the
// RIP it is given. serve_msr_exit() answers user-space MSR exits from a Partition, as the VMM's
// vCPU loop does (vmm/vcpu_thread.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <variant>
#include <vector>

#include "base/error.hpp"
#include "tests/support/fake_guest_memory.hpp"
#include "vmm/cpuid.hpp"
#include "vmm/hyperv/partition.hpp"
#include "vmm/kvm/kvm_system.hpp"
#include "vmm/kvm/kvm_vcpu.hpp"
#include "vmm/kvm/kvm_vm.hpp"

namespace vmm::hyperv::test {

using vmm::test::FakeGuestMemory;

class RealModeVm {
public:
    // `system` from kvm::KvmSystem::open(): the test skips when that fails (no /dev/kvm, or a
    // KVM without what microvmm needs); every failure from here on is a test failure.
    static Result<std::unique_ptr<RealModeVm>> create(kvm::KvmSystem system, std::uint64_t ram_bytes)
    {
        auto vm = VMM_TRY(system.create_vm().context("creating a test VM"));
        std::unique_ptr<RealModeVm> created { new RealModeVm(std::move(system), std::move(vm), ram_bytes) };
        VMM_TRY(created->m_vm.set_user_memory_region(0, mem::Gpa { 0 }, created->m_ram.host(0)));
        return created;
    }

    // In-kernel LAPIC/IOAPIC/PIC (and PIT); the TSS and identity map sit where the VMM puts
    // them (vmm/machine.cpp), far above the test RAM.
    Result<void> create_irqchip() { return m_vm.create_platform(mem::Gpa { 0xFFFB'D000 }, mem::Gpa { 0xFFFB'C000 }); }

    // A vCPU in real mode at `rip` (CS base 0, flags just the reserved bit 1), runnable even as
    // an AP (KVM parks APs in INIT-wait otherwise), with `cpuid` when given.
    Result<kvm::KvmVcpu*> add_vcpu(std::uint32_t index, std::uint64_t rip, std::uint64_t rsp, CpuidTable const* cpuid = nullptr)
    {
        auto vcpu = std::make_unique<kvm::KvmVcpu>(VMM_TRY(m_vm.create_vcpu(index)));
        if (cpuid)
            VMM_TRY(vcpu->set_cpuid(*cpuid));
        VMM_TRY(vcpu->set_mp_state(kvm::MpState::Runnable));
        auto sregs = VMM_TRY(vcpu->get_sregs());
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        VMM_TRY(vcpu->set_sregs(sregs));
        kvm::Regs regs {};
        regs.rip = rip;
        regs.rsp = rsp;
        regs.rflags = 0x2;
        VMM_TRY(vcpu->set_regs(regs));
        return m_vcpus.emplace_back(std::move(vcpu)).get();
    }

    kvm::KvmSystem const& system() const { return m_system; }
    kvm::KvmVm& vm() { return m_vm; }
    FakeGuestMemory& ram() { return m_ram; }
    kvm::KvmVcpu& vcpu(std::size_t index) { return *m_vcpus.at(index); }

private:
    RealModeVm(kvm::KvmSystem system, kvm::KvmVm vm, std::uint64_t ram_bytes)
        : m_system(std::move(system))
        , m_ram { { 0, ram_bytes } }
        , m_vm(std::move(vm))
    {
    }
    // Destroyed bottom-up: vCPUs, then the VM (and its memslot), then the RAM it pointed at.
    kvm::KvmSystem m_system;
    FakeGuestMemory m_ram;
    kvm::KvmVm m_vm;
    std::vector<std::unique_ptr<kvm::KvmVcpu>> m_vcpus;
};

// Answers a user-space RDMSR/WRMSR exit from `partition` (#GP where it refuses); false for any
// other exit.
inline bool serve_msr_exit(Partition& partition, std::uint32_t vp, kvm::VcpuExit const& exit)
{
    if (auto const* read = std::get_if<kvm::MsrRead>(&exit)) {
        if (auto value = partition.read_msr(vp, read->msr))
            read->reply.set_value(*value);
        else
            read->reply.inject_gp();
        return true;
    }
    if (auto const* write = std::get_if<kvm::MsrWrite>(&exit)) {
        if (!partition.write_msr(vp, write->msr, write->value))
            write->reply.inject_gp();
        return true;
    }
    return false;
}

} // namespace vmm::hyperv::test

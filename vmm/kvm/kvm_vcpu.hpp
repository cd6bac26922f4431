// SPDX-License-Identifier: MIT
// KvmVcpu: the owner of a vCPU fd and its kvm_run mapping. run() is the only place that
// decodes kvm_run (into VcpuExit).
#pragma once

#include <span>
#include <string>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/mapping.hpp"
#include "base/types.hpp"
#include "vmm/cpuid.hpp"
#include "vmm/kvm/runnable_vcpu.hpp"
#include "vmm/kvm/vcpu_exit.hpp"
#include "vmm/kvm/x86_regs.hpp"

namespace vmm::kvm {

// Halted: waits in KVM for an interrupt it can take (IF=1), as after HLT.
enum class MpState : u8 { Runnable, Uninitialized, Halted };

struct MsrValue {
    u32 index;
    u64 value;
};

class KvmVcpu final : public RunnableVcpu {
public:
    KvmVcpu(u32 index, Fd fd, Mapping run)
        : m_index(index)
        , m_fd(std::move(fd))
        , m_run(std::move(run))
    {
    }

    u32 index() const override { return m_index; }

    Result<void> set_cpuid(CpuidTable const&);
    Result<Regs> get_regs() const override;
    Result<void> set_regs(Regs const&) override;
    Result<SpecialRegs> get_sregs() const override;
    // Reads the current sregs, overlays `sregs`, writes them back.
    Result<void> set_sregs(SpecialRegs const&);
    Result<void> set_msrs(std::span<MsrValue const>);
    Result<void> set_mp_state(MpState);
    Result<MpState> get_mp_state() const; // Other KVM states (INIT_RECEIVED, SIPI, ...) are errors.
    // KVM_GET_TSC_KHZ: the guest TSC frequency.
    Result<u32> tsc_khz() const;
    // guest TSC - host TSC. microvmm never calls KVM_SET_TSC_KHZ, so the guest TSC runs at the
    // host rate and guest_tsc = host RDTSC + this offset (Documentation/virt/kvm/devices/vcpu.rst
    // "KVM_VCPU_TSC_OFFSET"). Without that attribute (KVM < 5.16) the offset is sampled from
    // KVM_GET_MSRS(IA32_TSC) between two host RDTSCs. Call before the vCPU runs.
    Result<i64> guest_tsc_offset() const;

    // One KVM_RUN. EINTR is not an error: it decodes to Interrupted.
    Result<VcpuExit> run() override;

    // Async-signal-safe: makes the current or next KVM_RUN return at once (Interrupted).
    void request_immediate_exit() const override;
    void clear_immediate_exit() const override;

    // For logging an InternalError: suberror, KVM's extra data words and the RIP.
    std::string describe_internal_error() const override;

private:
    u32 m_index;
    Fd m_fd;
    Mapping m_run; // kvm_run, shared with the kernel; unmapped before the fd closes (member order).
};

} // namespace vmm::kvm

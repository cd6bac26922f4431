// SPDX-License-Identifier: MIT
// RunnableVcpu: what a vCPU thread (vmm/vcpu_thread.*) needs from its vCPU. KvmVcpu is the one
// implementation in the VMM; unit tests drive VcpuThread with a scripted fake instead of KVM.
#pragma once

#include <string>

#include "base/error.hpp"
#include "base/types.hpp"
#include "vmm/kvm/vcpu_exit.hpp"
#include "vmm/kvm/x86_regs.hpp"

namespace vmm::kvm {

class RunnableVcpu {
public:
    virtual ~RunnableVcpu() = default;
    virtual u32 index() const = 0;
    // One KVM_RUN. EINTR is not an error: it decodes to Interrupted.
    virtual Result<VcpuExit> run() = 0;
    // Async-signal-safe: makes the current or next run() return at once (Interrupted).
    virtual void request_immediate_exit() const = 0;
    virtual void clear_immediate_exit() const = 0;
    // For logging an InternalError.
    virtual std::string describe_internal_error() const = 0;
    // The hypercall port's register protocol (vmm/vcpu_thread.cpp dispatch_hypercall).
    virtual Result<Regs> get_regs() const = 0;
    virtual Result<void> set_regs(Regs const&) = 0;
    virtual Result<SpecialRegs> get_sregs() const = 0;
};

} // namespace vmm::kvm

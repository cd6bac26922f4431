// SPDX-License-Identifier: MIT
// VcpuHooks: the seam through which the vCPU loop hands user-space MSR exits and hypercall
// port I/O to a platform extension (the Hyper-V Partition, via vmm/hyperv_glue.*). Without
// hooks, user-space MSR exits inject #GP and the hypercall port is an ordinary port.
#pragma once

#include <optional>

#include "base/types.hpp"
#include "vmm/kvm/x86_regs.hpp"

namespace vmm {

class VcpuHooks {
public:
    virtual ~VcpuHooks() = default;
    // nullopt / false -> the vCPU loop injects #GP.
    virtual std::optional<u64> read_msr(u32 vp, u32 msr) = 0;
    virtual bool write_msr(u32 vp, u32 msr, u64 value) = 0;
    // True for the port whose OUT is a hypercall (firmware::HYPERCALL_PORT).
    virtual bool is_hypercall_port(u16 port) const = 0;
    // Called on that OUT with the vCPU's registers and privilege level (CS.RPL); the hook
    // updates `regs` (rax = result) and the vCPU loop writes them back before resuming.
    virtual void hypercall(u32 vp, u8 cpl, kvm::Regs& regs) = 0;
};

} // namespace vmm

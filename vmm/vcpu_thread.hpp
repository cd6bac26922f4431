// SPDX-License-Identifier: MIT
// VcpuThread: one host thread per vCPU running KVM_RUN and dispatching exits synchronously
// to the buses and hooks. Stop = set a flag, then kick the thread with SIG_VCPU_KICK whose
// handler sets kvm_run->immediate_exit (Firecracker/kvmtool model; no pthread_cancel).
#pragma once

#include <atomic>
#include <functional>
#include <thread>

#include "base/error.hpp"
#include "vmm/bus.hpp"
#include "vmm/kvm/kvm_vcpu.hpp"
#include "vmm/vcpu_hooks.hpp"

namespace vmm {

// Why a machine stops. Guest power events and host failures all end up here.
enum class StopReason : u8 { Poweroff, Reset, Signal, Error };

// What a vCPU thread dispatches to. Everything must outlive the thread.
struct VcpuDispatch {
    Bus const& pio_bus;
    Bus const& mmio_bus;
    VcpuHooks* hooks; // Nullable: no platform extension.
    std::function<void(StopReason)> request_stop; // Thread-safe, never blocks.
    std::function<void()> on_first_run;           // Called once by vCPU 0 before its first KVM_RUN.
};

class VcpuThread {
public:
    VcpuThread(kvm::KvmVcpu& vcpu, VcpuDispatch const& dispatch)
        : m_vcpu(vcpu)
        , m_dispatch(dispatch)
    {
    }
    VcpuThread(VcpuThread const&) = delete;
    VcpuThread& operator=(VcpuThread const&) = delete;
    ~VcpuThread(); // Stops and joins.

    // Installs the kick signal handler (once per process).
    static Result<void> install_kick_handler();

    void start();
    // Any thread: the vCPU leaves KVM_RUN soon and the thread ends.
    void request_stop();
    // Loop thread only.
    void join();

private:
    void run_until_stopped();
    void dispatch_pio_in(kvm::PioIn const&);
    void dispatch_pio_out(kvm::PioOut const&);
    void dispatch_hypercall();

    kvm::KvmVcpu& m_vcpu;
    VcpuDispatch const& m_dispatch;
    std::atomic<bool> m_stop { false };
    std::thread m_thread; // Last: joined in the destructor before the members above go.
};

} // namespace vmm

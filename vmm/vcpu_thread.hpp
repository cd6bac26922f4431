// SPDX-License-Identifier: MIT
// VcpuThread: one host thread per vCPU running KVM_RUN and dispatching exits synchronously
// to the buses and hooks. Stop = set a flag, then kick the thread with SIG_VCPU_KICK whose
// handler sets kvm_run->immediate_exit (Firecracker/kvmtool model; no pthread_cancel).
#pragma once

#include <atomic>
#include <functional>
#include <thread>

#include <pthread.h>

#include "base/error.hpp"
#include "base/ranked_mutex.hpp"
#include "vmm/bus.hpp"
#include "vmm/kvm/runnable_vcpu.hpp"
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
    VcpuThread(kvm::RunnableVcpu& vcpu, VcpuDispatch const& dispatch)
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
    // Any thread, any time (also while join() runs): the vCPU leaves KVM_RUN soon and the
    // thread ends. The kick is only sent while the thread is still in its loop, so it never
    // targets a thread that ended or was joined.
    void request_stop();
    // Loop thread only (the owner): waits for the thread to end.
    void join();

private:
    void run_until_stopped();
    void run_loop();
    void dispatch_pio_in(kvm::PioIn const&);
    void dispatch_pio_out(kvm::PioOut const&);
    void dispatch_hypercall();

    kvm::RunnableVcpu& m_vcpu;
    VcpuDispatch const& m_dispatch;
    std::atomic<bool> m_stop { false };
    // Guards m_kickable, m_kicked and m_handle: request_stop() signals the thread only while it has not
    // yet left run_until_stopped(), which clears m_kickable under the lock as its last act.
    RankedMutex<LockRank::VcpuThread> m_kick_lock;
    bool m_kickable { false };
    bool m_kicked { false };
    pthread_t m_handle {};
    std::thread m_thread; // Last: joined in the destructor before the members above go.
};

} // namespace vmm

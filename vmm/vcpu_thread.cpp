// SPDX-License-Identifier: MIT
#include "vmm/vcpu_thread.hpp"

#include <pthread.h>
#include <signal.h>

#include <cstring>

#include "base/log.hpp"
#include "vmm/sandbox/thread_sandbox.hpp"

namespace vmm {

namespace {

// A real-time signal nobody else uses; its handler only touches kvm_run->immediate_exit.
int kick_signal() { return SIGRTMIN + 1; }

// The vCPU this thread runs, for the kick handler (set before the first KVM_RUN).
thread_local kvm::RunnableVcpu* t_current_vcpu = nullptr;

void on_kick(int)
{
    if (auto* vcpu = t_current_vcpu)
        vcpu->request_immediate_exit();
}

template<class... F>
struct Overloaded : F... {
    using F::operator()...;
};
// Explicit guide: clang 16 (the fuzz build) lacks C++20 aggregate class template deduction.
template<class... F>
Overloaded(F...) -> Overloaded<F...>;

} // namespace

Result<void> VcpuThread::install_kick_handler()
{
    struct sigaction action {};
    action.sa_handler = on_kick;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0; // No SA_RESTART: KVM_RUN must return EINTR.
    if (::sigaction(kick_signal(), &action, nullptr) < 0)
        return fail_errno("sigaction vcpu kick");
    return {};
}

VcpuThread::~VcpuThread()
{
    request_stop();
    join();
}

void VcpuThread::start()
{
    // Under the lock, so a request_stop() from the new thread itself (or another vCPU) waits
    // until the handle is known.
    std::lock_guard guard { m_kick_lock };
    VMM_ASSERT(!m_thread.joinable());
    m_kickable = true;
    m_thread = std::thread([this] { run_until_stopped(); });
    m_handle = m_thread.native_handle();
}

void VcpuThread::request_stop()
{
    m_stop.store(true, std::memory_order_seq_cst); // Ordered with immediate_exit (below, and the loop).
    std::lock_guard guard { m_kick_lock };
    // The thread is alive and not joined while m_kickable holds (it clears it under this lock
    // before returning), so the handle is valid for pthread_kill. One kick is enough (m_stop is
    // already set: the thread sees it before its next KVM_RUN, or that KVM_RUN returns at once),
    // and more would queue: real-time signals do, and a flood would starve the thread.
    if (m_kickable && !m_kicked) {
        m_kicked = true;
        // Set immediate_exit from here as well as from the signal handler: a vCPU between two
        // KVM_RUNs then returns at once from the next one, and the stop does not hang on the
        // handler having run (ThreadSanitizer defers handlers to its own safe points, and a
        // deferred kick was seen lost in ~1% of VcpuThread.DestructionKicksARunningVcpuAndJoinsIt).
        // The signal is still needed to interrupt a KVM_RUN already under way.
        m_vcpu.request_immediate_exit();
        pthread_kill(m_handle, kick_signal());
    }
}

void VcpuThread::join()
{
    if (m_thread.joinable())
        m_thread.join();
}

void VcpuThread::run_until_stopped()
{
    run_loop();
    std::lock_guard guard { m_kick_lock };
    m_kickable = false;
}

void VcpuThread::run_loop()
{
    // Named by itself (prctl PR_SET_NAME), not by the loop (which would open /proc/self/task/N/comm
    // for writing, a call its seccomp filter refuses). Cosmetic: shows in top/gdb.
    std::string const name = fmt::format("vcpu{}", m_vcpu.index());
    pthread_setname_np(pthread_self(), name.c_str());
    // Before the first KVM_RUN: from here on the guest can reach this thread (SECURITY.md).
    sandbox::enter_thread(sandbox::ThreadKind::Vcpu);
    t_current_vcpu = &m_vcpu;
    if (m_vcpu.index() == 0 && m_dispatch.on_first_run)
        m_dispatch.on_first_run();
    while (!m_stop.load(std::memory_order_seq_cst)) {
        auto exit = m_vcpu.run();
        if (!exit) {
            log::error("vcpu", "vcpu {}: {}", m_vcpu.index(), exit.error());
            m_dispatch.request_stop(StopReason::Error);
            break;
        }
        std::visit(Overloaded {
                       [&](kvm::PioIn const& e) { dispatch_pio_in(e); },
                       [&](kvm::PioOut const& e) { dispatch_pio_out(e); },
                       [&](kvm::MmioRead const& e) { m_dispatch.mmio_bus.read(e.gpa.raw(), e.data); },
                       [&](kvm::MmioWrite const& e) { m_dispatch.mmio_bus.write(e.gpa.raw(), e.data); },
                       [&](kvm::MsrRead const& e) {
                           auto value = m_dispatch.hooks ? m_dispatch.hooks->read_msr(m_vcpu.index(), e.msr) : std::nullopt;
                           if (value)
                               e.reply.set_value(*value);
                           else
                               e.reply.inject_gp();
                       },
                       [&](kvm::MsrWrite const& e) {
                           if (!m_dispatch.hooks || !m_dispatch.hooks->write_msr(m_vcpu.index(), e.msr, e.value))
                               e.reply.inject_gp();
                       },
                       [&](kvm::Halt const&) {}, // In-kernel LAPIC: HLT normally never exits.
                       [&](kvm::Shutdown const&) {
                           // A triple fault resets a PC (Linux uses it as its last reboot method).
                           log::info("vcpu", "vcpu {}: triple fault, resetting", m_vcpu.index());
                           m_dispatch.request_stop(StopReason::Reset);
                       },
                       [&](kvm::SystemEvent const& e) {
                           if (e.type == kvm::SystemEventType::Reset)
                               m_dispatch.request_stop(StopReason::Reset);
                           else if (e.type == kvm::SystemEventType::Shutdown)
                               m_dispatch.request_stop(StopReason::Poweroff);
                           else
                               log::warn("vcpu", "vcpu {}: system event {} ignored", m_vcpu.index(), e.raw_type);
                       },
                       [&](kvm::Interrupted const&) { m_vcpu.clear_immediate_exit(); },
                       [&](kvm::InternalError const&) {
                           log::error("vcpu", "vcpu {}: KVM internal error: {}", m_vcpu.index(),
                               m_vcpu.describe_internal_error());
                           m_dispatch.request_stop(StopReason::Error);
                       },
                       [&](kvm::FailEntry const& e) {
                           log::error("vcpu", "vcpu {}: VM entry failed, reason {:#x}", m_vcpu.index(), e.reason);
                           m_dispatch.request_stop(StopReason::Error);
                       },
                       [&](kvm::Unknown const& e) {
                           log::error("vcpu", "vcpu {}: unexpected KVM exit {}", m_vcpu.index(), e.exit_reason);
                           m_dispatch.request_stop(StopReason::Error);
                       },
                   },
            *exit);
    }
    t_current_vcpu = nullptr;
}

void VcpuThread::dispatch_pio_in(kvm::PioIn const& exit)
{
    for (u32 i = 0; i < exit.count; ++i)
        m_dispatch.pio_bus.read(exit.port, exit.data.subspan(std::size_t { i } * exit.size, exit.size));
}

void VcpuThread::dispatch_pio_out(kvm::PioOut const& exit)
{
    if (m_dispatch.hooks && m_dispatch.hooks->is_hypercall_port(exit.port)) {
        dispatch_hypercall();
        return;
    }
    for (u32 i = 0; i < exit.count; ++i)
        m_dispatch.pio_bus.write(exit.port, exit.data.subspan(std::size_t { i } * exit.size, exit.size));
}

void VcpuThread::dispatch_hypercall()
{
    // KVM advances RIP past the OUT either before this exit or on the next KVM_RUN (fast PIO
    // completion checks RIP is unchanged); we write back the same RIP and only change RAX.
    auto regs = m_vcpu.get_regs();
    auto sregs = m_vcpu.get_sregs();
    if (!regs || !sregs) {
        log::error("vcpu", "vcpu {}: hypercall: {}", m_vcpu.index(), regs ? sregs.error() : regs.error());
        m_dispatch.request_stop(StopReason::Error);
        return;
    }
    // The port is reachable from guest user space through ioperm(): pass the CPL so user-mode
    // OUTs are not taken as hypercalls (guest-interface §3.1).
    u8 const cpl = static_cast<u8>(sregs->cs.selector & 3);
    m_dispatch.hooks->hypercall(m_vcpu.index(), cpl, *regs);
    if (auto written = m_vcpu.set_regs(*regs); !written) {
        log::error("vcpu", "vcpu {}: hypercall: {}", m_vcpu.index(), written.error());
        m_dispatch.request_stop(StopReason::Error);
    }
}

} // namespace vmm

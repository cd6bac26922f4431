// SPDX-License-Identifier: MIT
// Runner: the life of the VMM process around successive Machines. Boots a Machine, reacts to
// its stop reason on the event-loop thread (poweroff -> exit, reset -> fresh Machine or exit,
// signal -> exit) and tells observers about each boot and each guest reset.
//
// The seam: Runner is BasicRunner<Machine>, and it gets its Machines from a MachineFactory. The
// unit tests (tests/unit/vmm/runner_test.cpp) instantiate BasicRunner with a fake machine that
// satisfies RunnerMachine, so the stop/reset/signal logic, the joining and the observer order
// are tested without /dev/kvm. The member definitions are below the class for that reason;
// runner.cpp instantiates BasicRunner<Machine> once for the VMM.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <concepts>
#include <cstring>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "base/log.hpp"
#include "base/startup_trace.hpp"
#include "vmm/config.hpp"
#include "vmm/devices/uart16550.hpp"
#include "vmm/event_loop.hpp"
#include "vmm/kvm/kvm_system.hpp"
#include "vmm/machine.hpp"

namespace vmm {

// Process exit statuses (documented in configs/README.md).
inline constexpr int EXIT_GUEST_DONE = 0;     // Guest powered off (or reset with on_reboot = "exit").
inline constexpr int EXIT_FAILURE_HOST = 1;   // KVM unusable, VM setup failed, vCPU error.
inline constexpr int EXIT_CONFIG = 2;         // Bad configuration or command line.
inline constexpr int EXIT_SIGNAL_BASE = 128;  // + signal number: SIGINT -> 130, SIGTERM -> 143.

// What BasicRunner needs of one boot (vmm::Machine has it): start the vCPUs, stop them from
// any thread with a reason (the first reason reaches MachineCallbacks::on_stop once), join
// them on the loop thread; its layout for the log; the Hyper-V partition (for the SynIC
// re-kick: kick_pending_messages()) and the VMBus glue (set_message_hook()), each null when
// the machine has none.
template<typename M>
concept RunnerMachine = requires(M& machine, StopReason reason) {
    machine.start();
    machine.request_stop(reason);
    machine.join();
    { machine.layout() } -> std::convertible_to<MemoryLayout const&>;
    { machine.partition()->kick_pending_messages() } -> std::convertible_to<bool>;
    machine.vmbus()->set_message_hook(std::function<void()> {});
};

namespace runner_detail {
std::string_view reason_name(StopReason);
u64 elapsed_ms(std::chrono::steady_clock::time_point since);
} // namespace runner_detail

template<RunnerMachine M>
class BasicRunner {
public:
    // Builds one boot's machine (the VMM: Machine::create on the host's KVM). Called on the
    // loop thread, for the first boot and after each guest reset.
    using MachineFactory = std::function<Result<std::unique_ptr<M>>(Config const&, devices::ByteSink& serial, MachineCallbacks)>;

    BasicRunner(Config config, MachineFactory factory, EventLoop& loop, std::chrono::steady_clock::time_point process_start)
        : m_config(std::move(config))
        , m_factory(std::move(factory))
        , m_loop(loop)
        , m_process_start(process_start)
    {
    }
    BasicRunner(BasicRunner const&) = delete;
    BasicRunner& operator=(BasicRunner const&) = delete;
    ~BasicRunner() = default;

    // Observers, registered before run(). on_machine_created runs on the loop thread for each
    // boot after the Machine is built and before its vCPUs start, so devices (the DM device on
    // VMBus) exist before the guest can look for them; on_guest_reset runs on the loop thread
    // after the old Machine's vCPUs stopped and before it is destroyed (the DM device resets here).
    void on_machine_created(std::function<void(M&)> callback) { m_created.push_back(std::move(callback)); }
    void on_guest_reset(std::function<void(M&)> callback) { m_reset.push_back(std::move(callback)); }
    // Runs on the reporting vCPU's thread when the guest reports a crash (Hyper-V crash MSRs):
    // it must only publish or post.
    void on_guest_crash(std::function<void(hyperv::CrashReport const&)> callback) { m_crash.push_back(std::move(callback)); }
    // Runs on the loop thread once the event loop ended, before the last Machine is destroyed.
    void on_machine_exit(std::function<void(M&)> callback) { m_exit.push_back(std::move(callback)); }

    // The first SIGTERM is offered here (loop thread): return true if a graceful guest shutdown
    // started (the hook forces the stop itself later via stop_for_signal()); false stops at
    // once as before. A second SIGTERM, and SIGINT, always stop at once.
    void on_terminate_request(std::function<bool()> hook) { m_terminate_hook = std::move(hook); }
    // Runs once on the loop thread when run() has opened everything of its own (serial output,
    // signalfd, timers) and before the first boot: microvmm enters its sandbox here (main.cpp).
    void on_started(std::function<void()> callback) { m_started = std::move(callback); }
    // Loop thread: stops the guest as for the signal received (exit status 128 + signal).
    void stop_for_signal();

    // Boots, runs the event loop until the VMM should exit, returns the exit status.
    int run();

    M* machine() { return m_machine.get(); }
    u64 boot_count() const { return m_boot_count; }

private:
    Result<void> boot();
    void handle_stop(StopReason);
    void finish(int exit_status);
    void arm_synic_kick(); // Any thread.

    // 1 s: re-raises SynIC message slots the guest left occupied (Partition::kick_pending_messages).
    static constexpr std::chrono::seconds SYNIC_KICK_PERIOD { 1 };

    Config m_config;
    MachineFactory m_factory;
    EventLoop& m_loop;
    std::chrono::steady_clock::time_point m_process_start;
    std::unique_ptr<devices::ByteSink> m_serial;
    std::vector<std::function<void(M&)>> m_created;
    std::vector<std::function<void(M&)>> m_reset;
    std::vector<std::function<void(M&)>> m_exit;
    std::vector<std::function<void(hyperv::CrashReport const&)>> m_crash;
    EventLoop::Registration m_signals;
    EventLoop::Timer m_synic_kick; // One-shot, armed only after a SynIC message post (see run()).
    std::atomic<bool> m_synic_kick_armed { false };
    int m_signal { 0 };
    int m_graceful_signal { 0 }; // SIGTERM handed to the terminate hook (graceful shutdown running).
    std::function<bool()> m_terminate_hook;
    std::function<void()> m_started;
    int m_exit_status { EXIT_GUEST_DONE };
    u64 m_boot_count { 0 };
    std::unique_ptr<M> m_machine; // Last: its vCPU threads post to the members above.
};

using Runner = BasicRunner<Machine>;
// The VMM's factory: Machine::create on `kvm` (which must outlive the Runner).
// `disks`: the [[disk]] images main() opened, shared by every boot (outlive the Runner).
Runner::MachineFactory machine_factory(kvm::KvmSystem const& kvm, DiskImages const& disks = {});
extern template class BasicRunner<Machine>; // Instantiated in runner.cpp.

template<RunnerMachine M>
int BasicRunner<M>::run()
{
    if (m_config.serial.output_file) {
        auto const& path = *m_config.serial.output_file;
        int raw = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (raw < 0) {
            log::error("serial", "serial.output: cannot open {}: {}", path.string(), std::strerror(errno));
            return EXIT_FAILURE_HOST;
        }
        m_serial = std::make_unique<devices::FdSink>(raw, Fd { raw });
    } else {
        m_serial = std::make_unique<devices::FdSink>(STDOUT_FILENO);
    }
    auto signals = m_loop.watch_signals([this](int signal) {
        if (signal == SIGTERM && m_graceful_signal == 0 && m_machine && m_terminate_hook) {
            m_graceful_signal = signal;
            if (m_terminate_hook()) {
                log::info("vmm", "SIGTERM received: guest asked to shut down (a second SIGTERM stops at once)");
                return;
            }
        }
        log::info("vmm", "{} received, stopping", signal == SIGTERM ? "SIGTERM" : "SIGINT");
        m_signal = signal;
        if (m_machine)
            m_machine->request_stop(StopReason::Signal);
        else
            finish(EXIT_SIGNAL_BASE + signal);
    });
    if (!signals) {
        log::error("vmm", "watching SIGTERM/SIGINT: {}", signals.error());
        return EXIT_FAILURE_HOST;
    }
    m_signals = std::move(*signals);
    // Linux leaves a SynIC message in its slot without EOM when it cannot allocate memory for
    // it and looks again only on the next interrupt (guest-interface §4.4 step 6; vmbus_drv.c:1084-1087):
    // without a retry the VMBus host's queue to that guest would wait forever. A spurious
    // interrupt is harmless (the guest re-checks the slot). Idle means idle: the timer is armed
    // (once, 1 s ahead) only when the VMBus host posts a message, and re-armed only while a slot
    // is still occupied. Runs on the loop thread, which also owns m_machine.
    auto kick = m_loop.create_timer([this] {
        m_synic_kick_armed.store(false, std::memory_order_release); // A post from now on re-arms.
        if (m_machine)
            if (auto* partition = m_machine->partition(); partition && partition->kick_pending_messages())
                arm_synic_kick();
    });
    if (!kick) {
        log::error("vmm", "creating the SynIC re-kick timer: {}", kick.error());
        return EXIT_FAILURE_HOST;
    }
    m_synic_kick = std::move(*kick);
    if (m_started)
        m_started();
    if (auto booted = boot(); !booted) {
        log::error("vmm", "starting the guest: {}", booted.error());
        return EXIT_FAILURE_HOST;
    }
    if (auto ran = m_loop.run_until_stopped(); !ran) {
        log::error("vmm", "event loop: {}", ran.error());
        return EXIT_FAILURE_HOST;
    }
    if (m_machine)
        for (auto& callback : m_exit)
            callback(*m_machine);
    m_machine.reset();
    return m_exit_status;
}

template<RunnerMachine M>
void BasicRunner<M>::arm_synic_kick()
{
    if (m_synic_kick_armed.exchange(true, std::memory_order_acq_rel))
        return;
    if (auto armed = m_synic_kick.arm(SYNIC_KICK_PERIOD); !armed) {
        m_synic_kick_armed.store(false, std::memory_order_release);
        log::warn("vmm", "SynIC kick timer: {}", armed.error());
    }
}

template<RunnerMachine M>
Result<void> BasicRunner<M>::boot()
{
    MachineCallbacks callbacks;
    callbacks.on_stop = [this](StopReason reason) {
        // Runs on a vCPU thread: hand over to the loop thread, which owns the Machine.
        if (!m_loop.post([this, reason] { handle_stop(reason); }))
            m_loop.stop(); // Queue full: still leave, as an error.
    };
    callbacks.on_first_run = [this, boot = m_boot_count + 1] {
        startup::mark(startup::Phase::FirstRun);
        log::info("vmm", "boot {}: first KVM_RUN {} ms after start", boot, runner_detail::elapsed_ms(m_process_start));
        if (boot == 1)
            log::debug("vmm", "startup trace: {}", startup::report()); // Parsed by bench/startup.py.
    };
    callbacks.on_guest_crash = [this](hyperv::CrashReport const& report) {
        for (auto& callback : m_crash)
            callback(report);
    };
    m_machine = VMM_TRY(m_factory(m_config, *m_serial, std::move(callbacks)));
    ++m_boot_count;
    log::info("vmm", "boot {}: {} vCPU(s), {} MiB RAM, hot-add window {} MiB at {:#x}", m_boot_count,
        m_config.machine.vcpus, m_config.machine.memory_mib, m_machine->layout().hot_add_size_bytes / MIB,
        m_machine->layout().hot_add_base_gpa);
    if (auto* vmbus = m_machine->vmbus())
        vmbus->set_message_hook([this] { arm_synic_kick(); });
    for (auto& callback : m_created)
        callback(*m_machine);
    startup::mark(startup::Phase::MachineReady);
    m_machine->start();
    return {};
}

template<RunnerMachine M>
void BasicRunner<M>::handle_stop(StopReason reason)
{
    if (!m_machine)
        return;
    m_machine->join();
    log::info("vmm", "guest stopped: {}", runner_detail::reason_name(reason));
    // A signal that raced with a guest reset (the machine had already recorded its reason)
    // still ends the VMM: never reboot after SIGTERM/SIGINT.
    if (m_signal == 0 && m_graceful_signal != 0 && reason != StopReason::Error)
        m_signal = m_graceful_signal; // SIGTERM's graceful path ended: same status as a plain SIGTERM.
    if (m_signal != 0 && reason != StopReason::Error)
        reason = StopReason::Signal;
    switch (reason) {
    case StopReason::Poweroff: finish(EXIT_GUEST_DONE); return;
    case StopReason::Signal: finish(EXIT_SIGNAL_BASE + m_signal); return;
    case StopReason::Error: finish(EXIT_FAILURE_HOST); return;
    case StopReason::Reset: break;
    }
    if (m_config.machine.on_reboot == OnReboot::Exit) {
        log::info("vmm", "guest reboot requested; machine.on_reboot = \"exit\": exiting");
        finish(EXIT_GUEST_DONE);
        return;
    }
    for (auto& callback : m_reset)
        callback(*m_machine);
    m_machine.reset(); // Fresh VM, fresh RAM: nothing of the old boot survives.
    if (auto booted = boot(); !booted) {
        log::error("vmm", "reboot failed: {}", booted.error());
        finish(EXIT_FAILURE_HOST);
    }
}

template<RunnerMachine M>
void BasicRunner<M>::stop_for_signal()
{
    m_signal = m_graceful_signal != 0 ? m_graceful_signal : SIGTERM;
    if (m_machine)
        m_machine->request_stop(StopReason::Signal);
    else
        finish(EXIT_SIGNAL_BASE + m_signal);
}

template<RunnerMachine M>
void BasicRunner<M>::finish(int exit_status)
{
    m_exit_status = exit_status;
    m_loop.stop();
}

} // namespace vmm

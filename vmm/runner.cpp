// SPDX-License-Identifier: MIT
#include "vmm/runner.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>

#include "base/log.hpp"
#include "base/startup_trace.hpp"

namespace vmm {

namespace {
std::string_view reason_name(StopReason reason)
{
    switch (reason) {
    case StopReason::Poweroff: return "poweroff";
    case StopReason::Reset: return "reset";
    case StopReason::Signal: return "signal";
    case StopReason::Error: return "error";
    }
    return "?";
}

u64 elapsed_ms(std::chrono::steady_clock::time_point since)
{
    return static_cast<u64>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - since).count());
}
constexpr std::chrono::seconds SYNIC_KICK_PERIOD { 1 };
} // namespace

Runner::Runner(Config config, kvm::KvmSystem& kvm, EventLoop& loop, std::chrono::steady_clock::time_point process_start)
    : m_config(std::move(config))
    , m_kvm(kvm)
    , m_loop(loop)
    , m_process_start(process_start)
{
}

Runner::~Runner() = default;

int Runner::run()
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

void Runner::arm_synic_kick()
{
    if (m_synic_kick_armed.exchange(true, std::memory_order_acq_rel))
        return;
    if (auto armed = m_synic_kick.arm(SYNIC_KICK_PERIOD); !armed) {
        m_synic_kick_armed.store(false, std::memory_order_release);
        log::warn("vmm", "SynIC kick timer: {}", armed.error());
    }
}

Result<void> Runner::boot()
{
    MachineCallbacks callbacks;
    callbacks.on_stop = [this](StopReason reason) {
        // Runs on a vCPU thread: hand over to the loop thread, which owns the Machine.
        if (!m_loop.post([this, reason] { handle_stop(reason); }))
            m_loop.stop(); // Queue full: still leave, as an error.
    };
    callbacks.on_first_run = [this, boot = m_boot_count + 1] {
        startup::mark(startup::Phase::FirstRun);
        log::info("vmm", "boot {}: first KVM_RUN {} ms after start", boot, elapsed_ms(m_process_start));
        if (boot == 1)
            log::debug("vmm", "startup trace: {}", startup::report()); // Parsed by bench/startup.py.
    };
    callbacks.on_guest_crash = [this](hyperv::CrashReport const& report) {
        for (auto& callback : m_crash)
            callback(report);
    };
    m_machine = VMM_TRY(Machine::create(m_config, m_kvm, *m_serial, std::move(callbacks)));
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

void Runner::handle_stop(StopReason reason)
{
    if (!m_machine)
        return;
    m_machine->join();
    log::info("vmm", "guest stopped: {}", reason_name(reason));
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

void Runner::stop_for_signal()
{
    m_signal = m_graceful_signal != 0 ? m_graceful_signal : SIGTERM;
    if (m_machine)
        m_machine->request_stop(StopReason::Signal);
    else
        finish(EXIT_SIGNAL_BASE + m_signal);
}

void Runner::finish(int exit_status)
{
    m_exit_status = exit_status;
    m_loop.stop();
}

} // namespace vmm

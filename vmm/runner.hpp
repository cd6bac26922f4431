// SPDX-License-Identifier: MIT
// Runner: the life of the VMM process around successive Machines. Boots a Machine, reacts to
// its stop reason on the event-loop thread (poweroff -> exit, reset -> fresh Machine or exit,
// signal -> exit) and tells observers about each boot and each guest reset.
#pragma once

#include <atomic>

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "base/error.hpp"
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

class Runner {
public:
    Runner(Config config, kvm::KvmSystem& kvm, EventLoop& loop, std::chrono::steady_clock::time_point process_start);
    Runner(Runner const&) = delete;
    Runner& operator=(Runner const&) = delete;
    ~Runner();

    // Observers, registered before run(). on_machine_created runs on the loop thread for each
    // boot after the Machine is built and before its vCPUs start, so devices (the DM device on
    // VMBus) exist before the guest can look for them; on_guest_reset runs on the loop thread
    // after the old Machine's vCPUs stopped and before it is destroyed (the DM device resets here).
    void on_machine_created(std::function<void(Machine&)> callback) { m_created.push_back(std::move(callback)); }
    void on_guest_reset(std::function<void(Machine&)> callback) { m_reset.push_back(std::move(callback)); }
    // Runs on the reporting vCPU's thread when the guest reports a crash (Hyper-V crash MSRs):
    // it must only publish or post.
    void on_guest_crash(std::function<void(hyperv::CrashReport const&)> callback) { m_crash.push_back(std::move(callback)); }
    // Runs on the loop thread once the event loop ended, before the last Machine is destroyed.
    void on_machine_exit(std::function<void(Machine&)> callback) { m_exit.push_back(std::move(callback)); }

    // The first SIGTERM is offered here (loop thread): return true if a graceful guest shutdown
    // started (the hook forces the stop itself later via stop_for_signal()); false stops at
    // once as before. A second SIGTERM, and SIGINT, always stop at once.
    void on_terminate_request(std::function<bool()> hook) { m_terminate_hook = std::move(hook); }
    // Loop thread: stops the guest as for the signal received (exit status 128 + signal).
    void stop_for_signal();

    // Boots, runs the event loop until the VMM should exit, returns the exit status.
    int run();

    Machine* machine() { return m_machine.get(); }
    u64 boot_count() const { return m_boot_count; }

private:
    Result<void> boot();
    void handle_stop(StopReason);
    void finish(int exit_status);

    Config m_config;
    kvm::KvmSystem& m_kvm;
    EventLoop& m_loop;
    std::chrono::steady_clock::time_point m_process_start;
    std::unique_ptr<devices::ByteSink> m_serial;
    std::vector<std::function<void(Machine&)>> m_created;
    std::vector<std::function<void(Machine&)>> m_reset;
    std::vector<std::function<void(Machine&)>> m_exit;
    std::vector<std::function<void(hyperv::CrashReport const&)>> m_crash;
    EventLoop::Registration m_signals;
    // 1 s: re-raises SynIC message slots the guest left occupied (Partition::kick_pending_messages).
    EventLoop::Timer m_synic_kick; // One-shot, armed only after a SynIC message post (see run()).
    std::atomic<bool> m_synic_kick_armed { false };
    void arm_synic_kick(); // Any thread.
    int m_signal { 0 };
    int m_graceful_signal { 0 }; // SIGTERM handed to the terminate hook (graceful shutdown running).
    std::function<bool()> m_terminate_hook;
    int m_exit_status { EXIT_GUEST_DONE };
    u64 m_boot_count { 0 };
    std::unique_ptr<Machine> m_machine; // Last: its vCPU threads post to the members above.
};

} // namespace vmm

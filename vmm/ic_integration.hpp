// SPDX-License-Identifier: MIT
// IcIntegration: wires the integration services (devices/ic/: shutdown, heartbeat, time sync,
// KVP) into each
// Machine's VMBus host, arms ONE timer for their earliest real deadline (no periodic wake-up
// while nothing is due), runs the graceful shutdown (PUT /api/v1/vm/shutdown, SIGTERM) with
// its forced stop after the timeout, and decorates the REST backend: VM and metrics calls gain
// the guest's health, everything else goes to the inner backend (the DM integration).
//
// Threads and locks: the IC engines live under the VMBus host lock (VmbusGlue) like every
// VMBus device: vCPU threads call them through the host, the loop thread (timers) and the API
// thread (status, shutdown) through with_host(). m_lock guards m_current and is taken before
// the VMBus host lock, never after it (rank IcServices, ARCHITECTURE.md lock order). Engine callbacks (run with
// the host lock held) only publish events and post to the loop.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>

#include "base/ranked_mutex.hpp"
#include "devices/ic/heartbeat_ic.hpp"
#include "devices/ic/kvp_ic.hpp"
#include "devices/ic/shutdown_ic.hpp"
#include "devices/ic/timesync_ic.hpp"
#include "vmm/api/api_backend.hpp"
#include "vmm/api/event_hub.hpp"
#include "vmm/config.hpp"
#include "vmm/deadline_gate.hpp"
#include "vmm/event_loop.hpp"
#include "vmm/machine.hpp"

namespace vmm {

class IcIntegration final : public api::ForwardingApiBackend {
public:
    IcIntegration(Config const& config, EventLoop& loop, api::EventHub& hub, api::ApiBackend& inner);
    ~IcIntegration() override;

    // Loop thread, per boot before the vCPUs start: offers the ICs on the machine's VMBus.
    void attach(Machine& machine);
    // Loop thread, before the Machine goes (reset or exit): rescinds and drops them.
    void detach(Machine& machine);

    // SIGTERM (loop thread): starts the graceful path with [integration] shutdown_timeout_ms,
    // forcing through `force` when it runs out. False when the guest's shutdown service cannot
    // be asked (then the caller stops at once).
    bool request_shutdown_for_signal(std::function<void()> force);

    // api::ApiBackend: VM view and shutdown here, memory calls forwarded.
    api::VmInfo vm_info() override;
    std::string extra_metrics() override;
    std::expected<api::ShutdownStarted, std::string> shutdown(api::ShutdownRequest const& request) override;

private:
    struct PerMachine {
        Machine* machine = nullptr;
        std::unique_ptr<ic::ShutdownIc> shutdown;
        std::unique_ptr<ic::HeartbeatIc> heartbeat;
        std::unique_ptr<ic::TimeSyncIc> timesync; // Null when not offered.
        std::unique_ptr<ic::KvpIc> kvp;           // Null when not offered.
        std::vector<ic::IcChannel*> channels() const;
        EventLoop::Timer deadline;    // The ICs' earliest deadline (one-shot, re-armed).
        EventLoop::Timer force;       // Forced stop of a graceful shutdown.
        std::function<void()> force_action;
        std::optional<std::string> shutdown_phase; // "requested" | "forced"
    };
    Result<void> build(PerMachine& per, Machine& machine);
    // Loop thread: re-arms `deadline` for the ICs' earliest deadline (or disarms it).
    void rearm();
    void on_deadline();
    void post_rearm(); // Any thread (engine callbacks): rearm() on the loop thread, coalesced.
    // m_lock held. Starts a graceful shutdown, or returns the reason it cannot.
    std::optional<std::string> start_graceful(PerMachine& per, bool reboot, u64 timeout_ms, std::function<void()> force);
    api::GuestHealth health(PerMachine& per);
    static u64 now_ns();

    Config const& m_config;
    EventLoop& m_loop;
    api::EventHub& m_hub;
    RankedMutex<LockRank::IcServices> m_lock; // Guards m_current (API vs loop thread); before VmbusGlue.
    std::unique_ptr<PerMachine> m_current;
    std::atomic<bool> m_rearm_posted { false };
    DeadlineGate m_deadline_gate; // What `deadline` is armed for: hooks post only for an earlier one.
};

} // namespace vmm

// SPDX-License-Identifier: MIT
// TimerThread: the one host timer source behind every VP's synthetic timers. It sleeps on a
// condition variable until the earliest armed expiration (CLOCK_MONOTONIC through
// std::chrono::steady_clock, so no busy loop and no per-timer host timer), delivers what
// expired, and recomputes. MSR writes wake it through rearm().
//
// Why a thread of its own and KVM_SIGNAL_MSI: an expiry must reach a vCPU that may be halted
// inside KVM_RUN. KVM_SIGNAL_MSI (fixed delivery, physical destination = the VP's APIC id) sets
// the vector in the in-kernel LAPIC and kicks the vCPU out of its halt, from any thread, without
// touching the vCPU thread (KVM kvm_set_msi -> kvm_irq_delivery_to_apic -> kvm_vcpu_kick). A
// vCPU-thread timer (e.g. via immediate_exit) would need a signal per expiry and a userspace
// KVM_INTERRUPT, which does not exist with an in-kernel irqchip. The event loop is not used:
// a 100 ms DM tick or an API burst there must not delay a guest's clock tick.
#pragma once

#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "base/types.hpp"

namespace vmm::hyperv {

class ReferenceClock;
class SyntheticTimers;

class TimerThread {
public:
    TimerThread(SyntheticTimers&, ReferenceClock const&);
    ~TimerThread(); // Stops and joins.
    TimerThread(TimerThread const&) = delete;
    TimerThread& operator=(TimerThread const&) = delete;

    void start();
    void stop();  // Idempotent; joins.
    // Any thread: the earliest expiration may have moved; `earliest` is it (reference time),
    // when known. The thread is woken only if that comes before the expiration it already
    // sleeps until: Linux writes STIMER0_COUNT for every clock event it programs
    // (drivers/clocksource/hyperv_timer.c hv_ce_set_next_event), mostly further out than the
    // expiration pending, and an idle guest's timer thread then wakes once per expiry instead
    // of twice. A later or cancelled expiration is found at the old wake-up (one recompute).
    void rearm(std::optional<u64> earliest = std::nullopt);

    u64 wakeups() const; // Loop iterations (for tests: no busy loop).

private:
    void run();

    SyntheticTimers& m_timers;
    ReferenceClock const& m_clock;
    mutable std::mutex m_mutex; // Leaf lock: nothing is called while it is held.
    std::condition_variable m_cv;
    bool m_dirty { true };
    u64 m_sleep_until { 0 }; // Reference time the thread sleeps until; 0: not asleep, ~0: no deadline.
    bool m_stop { false };
    u64 m_wakeups { 0 };
    std::thread m_thread;
};

} // namespace vmm::hyperv

// SPDX-License-Identifier: MIT
// TimerThread: the one host timer source behind every VP's synthetic timers. It blocks in
// read() on one timerfd (CLOCK_MONOTONIC) armed for the earliest STIMER expiration of any VP,
// delivers what expired, re-arms the timerfd for the next one, and blocks again: no busy loop
// and no per-timer host timer.
//
// Why a thread of its own and KVM_SIGNAL_MSI: an expiry must reach a vCPU that may be halted
// inside KVM_RUN. KVM_SIGNAL_MSI (fixed delivery, physical destination = the VP's APIC id) sets
// the vector in the in-kernel LAPIC and kicks the vCPU out of its halt, from any thread, without
// touching the vCPU thread (KVM kvm_set_msi -> kvm_irq_delivery_to_apic -> kvm_vcpu_kick). A
// vCPU-thread timer (e.g. via immediate_exit) would need a signal per expiry and a userspace
// KVM_INTERRUPT, which does not exist with an in-kernel irqchip. The event loop is not used:
// a DM deadline or an API burst there must not delay a guest's clock tick.
//
// Why a timerfd rather than a condition variable: Linux writes STIMER0_COUNT for every clock
// event it programs (drivers/clocksource/hyperv_timer.c hv_ce_set_next_event), and an idle
// guest's one-shot timer is usually disarmed when it programs the next. With a condition
// variable the sleeping thread had to wake to learn each earlier expiration (two host wake-ups
// per guest clock event: BENCHMARKS.md §5, idle); the vCPU thread that wrote the MSR now re-arms
// the timerfd itself, so the timer thread wakes once per expiry and never for a programming.
#pragma once

#include <mutex>
#include <optional>
#include <thread>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/types.hpp"

namespace vmm::hyperv {

class ReferenceClock;
class SyntheticTimers;

class TimerThread {
public:
    static Result<std::unique_ptr<TimerThread>> create(SyntheticTimers&, ReferenceClock const&);
    ~TimerThread(); // Stops and joins.
    TimerThread(TimerThread const&) = delete;
    TimerThread& operator=(TimerThread const&) = delete;

    void start();
    void stop(); // Idempotent; joins.
    // Any thread: the earliest expiration may have moved; `earliest` is it (reference time;
    // nullopt: no timer armed). An earlier one than the timerfd is armed for re-arms it from
    // the calling thread; a later or cancelled one is found when the timerfd fires (one
    // recompute). While the thread is delivering, it is told to recompute before it blocks.
    void rearm(std::optional<u64> earliest);

    u64 wakeups() const; // Loop iterations (for tests: one per expiry, none per programming).

private:
    TimerThread(SyntheticTimers&, ReferenceClock const&, Fd timerfd);
    void run();
    // m_mutex held: arms the timerfd for `expiration` (reference time), or disarms it.
    void arm_locked(std::optional<u64> expiration, u64 now);

    SyntheticTimers& m_timers;
    ReferenceClock const& m_clock;
    Fd m_timerfd;
    mutable std::mutex m_mutex; // Leaf lock: only the timerfd syscall runs under it.
    bool m_delivering { true };  // The thread is between a wake-up and its next arm.
    bool m_dirty { false };      // A rearm() came while delivering: recompute before blocking.
    u64 m_armed_at { 0 };        // Reference time the timerfd fires at; 0: disarmed.
    bool m_stop { false };
    u64 m_wakeups { 0 };
    std::thread m_thread;
};

} // namespace vmm::hyperv

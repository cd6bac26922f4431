// SPDX-License-Identifier: MIT
// SyntheticTimers: STIMER0-3 of every VP (TLFS 12.4 "Synthetic Timers"; guest side
// drivers/clocksource/hyperv_timer.c:78-150). Pure engine: MSR reads/writes from vCPU threads,
// run_expired() from the one host timer thread (vmm/hyperv/timer_thread.*), slot_freed() when
// the SynIC reports a message slot that may have room again.
//
// Semantics (TLFS 12.4; KVM arch/x86/kvm/hyperv.c:620-727 behaves the same unless noted):
// - CONFIG: enable, periodic, lazy, auto_enable, apic_vector, direct_mode, sintx. Reserved bits,
//   direct mode when not advertised, and a direct vector below 16 are refused (#GP).
// - COUNT: one-shot = absolute expiration in reference time; periodic = period. Writing 0
//   disables the timer; a non-zero write with auto_enable set enables it ("lazy" programming:
//   the guest writes CONFIG once and then only COUNT, hyperv_timer.c:78-87, 99-125).
// - Message mode with sintx 0 disables the timer (KVM stimer_set_config, hyperv.c:693-696).
// - Expiry: direct mode injects apic_vector into the VP's local APIC; message mode writes
//   HVMSG_TIMER_EXPIRED (expiration and delivery time) into the SINT's slot. A message that
//   cannot be written (slot busy, SynIC/SINT off) stays pending and is re-posted when the slot
//   frees; the timer does not run again until then (KVM: msg_pending).
// - One-shot timers clear `enable` after delivery. Periodic timers are always lazy: if the host
//   woke late by more than a period, the late expiration is delivered once and the next one
//   stays on the period grid (KVM stimer_start, hyperv.c:629-641).
// - Periods below MIN_PERIOD are raised to it: a guest must not make the host timer thread
//   spin (the TLFS leaves the minimum to the implementation).
//
// Lock order (ARCHITECTURE.md): SyntheticTimers, then Synic (post_message is called under ours).
// Never called back into by Synic or the InterruptSink.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "base/ranked_mutex.hpp"
#include "base/types.hpp"
#include "vmm/hyperv/hvdef.hpp"

namespace vmm::hyperv {

class InterruptSink;
class ReferenceClock;
class Synic;

class SyntheticTimers {
public:
    static constexpr u64 MIN_PERIOD = 1000; // 100 us in 100 ns units: at most 10 kHz per timer.

    SyntheticTimers(ReferenceClock const&, Synic&, InterruptSink&, u32 vcpu_count, bool direct_mode_available);

    static constexpr bool owns_msr(u32 msr) { return msr >= HV_X64_MSR_STIMER0_CONFIG && msr <= HV_X64_MSR_STIMER3_COUNT; }
    std::optional<u64> read_msr(u32 vp, u32 msr) const; // nullopt -> #GP
    bool write_msr(u32 vp, u32 msr, u64 value);         // false -> #GP

    // Delivers every timer whose expiration is <= now; returns the earliest armed expiration
    // (reference time), nullopt when no timer is armed.
    std::optional<u64> run_expired(u64 now);
    // The SynIC says (vp, sint)'s message slot may be free: re-post pending timer messages.
    void slot_freed(u32 vp, u8 sint, u64 now);
    // Called (without our lock held) whenever a write may have moved the earliest expiration,
    // with the earliest armed expiration now (nullopt: none armed), so the timer thread need
    // only wake when it comes sooner than its current sleep (TimerThread::rearm).
    void set_rearm(std::function<void(std::optional<u64> earliest)> rearm);
    void reset();

    u64 expirations() const { return m_expirations.load(std::memory_order_relaxed); }
    // MSR writes that left a timer armed: the clock events the guest programmed (Linux: one
    // STIMER0_COUNT write per hv_ce_set_next_event).
    u64 programmed() const { return m_programmed.load(std::memory_order_relaxed); }
    u64 late_coalesced() const { return m_coalesced.load(std::memory_order_relaxed); }

private:
    struct Timer {
        u64 config { 0 };
        u64 count { 0 };
        bool armed { false };
        u64 deadline { 0 };           // Valid when armed.
        bool message_pending { false }; // Expired, message not yet written.
        u64 pending_expiration { 0 };
    };
    using VpTimers = std::array<Timer, HV_SYNIC_STIMER_COUNT>;

    void start(Timer&, u64 now);
    // Delivers one expiration; false when the message could not be written (now pending).
    bool deliver(u32 vp, u32 index, Timer&, u64 expiration, u64 now);
    void after_delivery(Timer&, u64 expiration, u64 now);
    bool write_config(Timer&, u64 value, u64 now);
    void write_count(Timer&, u64 value, u64 now);
    void notify_rearm();

    ReferenceClock const& m_clock;
    Synic& m_synic;
    InterruptSink& m_interrupts;
    bool const m_direct_mode_available;
    mutable RankedMutex<LockRank::SyntheticTimers> m_mutex;
    std::vector<VpTimers> m_vps;
    std::function<void(std::optional<u64>)> m_rearm; // Set before the vCPUs start.
    std::atomic<u64> m_expirations { 0 };
    std::atomic<u64> m_coalesced { 0 };
    std::atomic<u64> m_programmed { 0 };
};

} // namespace vmm::hyperv

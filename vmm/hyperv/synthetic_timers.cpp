// SPDX-License-Identifier: MIT
// STIMER0-3 per VP (TLFS 12.4; semantics and sources in synthetic_timers.hpp).
#include "vmm/hyperv/synthetic_timers.hpp"

#include <limits>

#include "base/log.hpp"
#include "vmm/hyperv/partition.hpp"
#include "vmm/hyperv/reference_time.hpp"
#include "vmm/hyperv/synic.hpp"
#include "base/wire.hpp"

namespace vmm::hyperv {
namespace {

constexpr bool enabled(u64 config) { return (config & HV_STIMER_ENABLE) != 0; }
constexpr bool periodic(u64 config) { return (config & HV_STIMER_PERIODIC) != 0; }
constexpr bool direct(u64 config) { return (config & HV_STIMER_DIRECT_MODE) != 0; }
constexpr u8 vector(u64 config) { return static_cast<u8>(config >> HV_STIMER_VECTOR_SHIFT); }
constexpr u8 sintx(u64 config) { return static_cast<u8>((config >> HV_STIMER_SINT_SHIFT) & 0xF); }

constexpr u64 saturating_add(u64 a, u64 b)
{
    return a > std::numeric_limits<u64>::max() - b ? std::numeric_limits<u64>::max() : a + b;
}

struct TimerMsr {
    u32 index;
    bool is_count;
};
constexpr TimerMsr decode(u32 msr)
{
    u32 const offset = msr - HV_X64_MSR_STIMER0_CONFIG;
    return TimerMsr { offset / 2, (offset & 1) != 0 };
}

} // namespace

SyntheticTimers::SyntheticTimers(ReferenceClock const& clock, Synic& synic, InterruptSink& interrupts,
    u32 vcpu_count, bool direct_mode_available)
    : m_clock(clock)
    , m_synic(synic)
    , m_interrupts(interrupts)
    , m_direct_mode_available(direct_mode_available)
    , m_vps(vcpu_count)
{
}

void SyntheticTimers::set_rearm(std::function<void(std::optional<u64>)> rearm)
{
    std::lock_guard lock { m_mutex };
    m_rearm = std::move(rearm);
}

void SyntheticTimers::notify_rearm()
{
    std::function<void(std::optional<u64>)> rearm;
    std::optional<u64> earliest;
    {
        std::lock_guard lock { m_mutex };
        rearm = m_rearm;
        for (auto const& vp : m_vps)
            for (Timer const& timer : vp)
                if (timer.armed && (!earliest || timer.deadline < *earliest))
                    earliest = timer.deadline;
    }
    if (rearm)
        rearm(earliest);
}

void SyntheticTimers::reset()
{
    {
        std::lock_guard lock { m_mutex };
        for (auto& vp : m_vps)
            vp = VpTimers {};
    }
    notify_rearm();
}

std::optional<u64> SyntheticTimers::read_msr(u32 vp, u32 msr) const
{
    VMM_ASSERT(vp < m_vps.size() && owns_msr(msr));
    auto const [index, is_count] = decode(msr);
    std::lock_guard lock { m_mutex };
    Timer const& timer = m_vps[vp][index];
    return is_count ? timer.count : timer.config;
}

bool SyntheticTimers::write_msr(u32 vp, u32 msr, u64 value)
{
    VMM_ASSERT(vp < m_vps.size() && owns_msr(msr));
    auto const [index, is_count] = decode(msr);
    u64 const now = m_clock.now();
    bool ok = true;
    {
        std::lock_guard lock { m_mutex };
        Timer& timer = m_vps[vp][index];
        if (is_count)
            write_count(timer, value, now);
        else
            ok = write_config(timer, value, now);
        if (ok && timer.armed)
            m_programmed.fetch_add(1, std::memory_order_relaxed);
    }
    if (!ok) {
        VMM_GUEST_WARN("hyperv", "vp {}: STIMER{}_CONFIG = {:#x} refused", vp, index, value);
        return false;
    }
    notify_rearm();
    return true;
}

bool SyntheticTimers::write_config(Timer& timer, u64 value, u64 now)
{
    if ((value & HV_STIMER_RESERVED_MASK) != 0)
        return false;
    if (direct(value) && !m_direct_mode_available) // KVM refuses it the same way (hyperv.c:685-688).
        return false;
    // An exception vector, as for SINTs (synic.cpp write_sint), refused whenever the timer can
    // fire with it: enabled now, or later by a COUNT write through auto-enable (found by
    // fuzz_hyperv_time: a direct, auto-enable, vector-0 config armed by COUNT injected vector 0).
    if (direct(value) && (value & (HV_STIMER_ENABLE | HV_STIMER_AUTO_ENABLE)) != 0
        && vector(value) < HV_SYNIC_FIRST_VALID_VECTOR)
        return false;
    // Any config write stops the timer and forgets a pending expiration (KVM stimer_cleanup).
    timer.armed = false;
    timer.message_pending = false;
    if (!direct(value) && sintx(value) == 0)
        value &= ~HV_STIMER_ENABLE;
    timer.config = value;
    start(timer, now);
    return true;
}

void SyntheticTimers::write_count(Timer& timer, u64 value, u64 now)
{
    timer.armed = false;
    timer.message_pending = false;
    timer.count = value;
    if (value == 0)
        timer.config &= ~HV_STIMER_ENABLE;
    else if ((timer.config & HV_STIMER_AUTO_ENABLE) != 0
        && (direct(timer.config) || sintx(timer.config) != 0))
        timer.config |= HV_STIMER_ENABLE;
    start(timer, now);
}

void SyntheticTimers::start(Timer& timer, u64 now)
{
    if (!enabled(timer.config) || timer.count == 0) {
        timer.armed = false;
        return;
    }
    timer.armed = true;
    timer.deadline = periodic(timer.config) ? saturating_add(now, std::max(timer.count, MIN_PERIOD)) : timer.count;
}

bool SyntheticTimers::deliver(u32 vp, u32 index, Timer& timer, u64 expiration, u64 now)
{
    if (direct(timer.config)) {
        m_interrupts.inject(vp, vector(timer.config));
        m_expirations.fetch_add(1, std::memory_order_relaxed);
        return true;
    }
    HvTimerMessagePayload const payload { index, 0, expiration, now };
    if (!m_synic.post_message(vp, sintx(timer.config), HVMSG_TIMER_EXPIRED, wire_bytes(payload)))
        return false;
    m_expirations.fetch_add(1, std::memory_order_relaxed);
    return true;
}

void SyntheticTimers::after_delivery(Timer& timer, u64 expiration, u64 now)
{
    if (!periodic(timer.config)) {
        timer.config &= ~HV_STIMER_ENABLE; // One-shot: disabled once delivered (TLFS 12.4).
        timer.armed = false;
        return;
    }
    u64 const period = std::max(timer.count, MIN_PERIOD);
    u64 next = saturating_add(expiration, period);
    if (next <= now) {
        // Woke (or delivered) late by more than a period: stay on the grid, one delivery.
        u64 const missed = (now - expiration) / period;
        m_coalesced.fetch_add(missed, std::memory_order_relaxed);
        next = saturating_add(expiration, saturating_add(period, missed * period));
        if (next <= now)
            next = saturating_add(next, period);
    }
    timer.armed = true;
    timer.deadline = next;
}

std::optional<u64> SyntheticTimers::run_expired(u64 now)
{
    std::optional<u64> earliest;
    std::lock_guard lock { m_mutex };
    for (u32 vp = 0; vp < m_vps.size(); ++vp) {
        for (u32 index = 0; index < HV_SYNIC_STIMER_COUNT; ++index) {
            Timer& timer = m_vps[vp][index];
            if (timer.armed && timer.deadline <= now) {
                u64 const expiration = timer.deadline;
                timer.armed = false;
                if (deliver(vp, index, timer, expiration, now)) {
                    after_delivery(timer, expiration, now);
                } else {
                    timer.message_pending = true; // Re-posted by slot_freed().
                    timer.pending_expiration = expiration;
                }
            }
            if (timer.armed && (!earliest || timer.deadline < *earliest))
                earliest = timer.deadline;
        }
    }
    return earliest;
}

void SyntheticTimers::slot_freed(u32 vp, u8 sint, u64 now)
{
    if (vp >= m_vps.size())
        return;
    bool rearmed = false;
    {
        std::lock_guard lock { m_mutex };
        for (u32 index = 0; index < HV_SYNIC_STIMER_COUNT; ++index) {
            Timer& timer = m_vps[vp][index];
            if (!timer.message_pending || direct(timer.config) || sintx(timer.config) != sint)
                continue;
            if (deliver(vp, index, timer, timer.pending_expiration, now)) {
                timer.message_pending = false;
                after_delivery(timer, timer.pending_expiration, now);
                rearmed = rearmed || timer.armed;
            }
        }
    }
    if (rearmed)
        notify_rearm();
}

} // namespace vmm::hyperv

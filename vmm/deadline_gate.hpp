// SPDX-License-Identifier: MIT
// DeadlineGate: lets a thread that just moved ONE of several deadlines tell whether the owner's
// single one-shot timer must be re-armed now, or already fires early enough. The owner (e.g.
// IcIntegration, whose integration services each have a deadline and share one timerfd on the
// loop thread) records what it armed; a guest reply that only pushes its channel's deadline
// later (a heartbeat answered: the next one is due at the send period anyway) then costs no
// cross-thread post and no event-loop wake-up (issue 18: idle means idle). A skipped move is
// picked up when the armed timer fires: the owner recomputes every deadline then, so at worst
// that one wake-up finds nothing due, which is what the post would have cost.
//
// Protocol (owner): begin() before computing the earliest deadline, armed(fire time) or
// disarmed() after arming the timer; begin() again whenever the timer is gone or an arm failed.
// A mover that runs while the owner computes either reads UNKNOWN (and posts), or made its move
// before the owner's computation, which the caller serialises (IcIntegration: both under the
// VMBus host lock), so the computation sees it.
#pragma once

#include <algorithm>
#include <atomic>
#include <optional>

#include "base/types.hpp"

namespace vmm {

class DeadlineGate {
public:
    void begin() { m_armed_at.store(UNKNOWN, std::memory_order_release); }
    // The timer now fires at `fire_at` (absolute, the owner's clock): the deadline it was armed
    // for, after any minimum delay, from the same clock reading the delay was computed with. A
    // later reading would exceed the deadline by microseconds and make a channel whose deadline
    // IS the armed one look earlier (2026-12-05: every heartbeat answer still woke the loop).
    void armed(u64 fire_at) { m_armed_at.store(std::max<u64>(fire_at, 1), std::memory_order_release); }
    void disarmed() { m_armed_at.store(NONE, std::memory_order_release); }

    // Any thread: one deadline moved to `moved_to` (nullopt: it has none now). True when the
    // owner must recompute: it does not know what is armed, or the new deadline comes first.
    bool must_rearm(std::optional<u64> moved_to) const
    {
        u64 const armed_at = m_armed_at.load(std::memory_order_acquire);
        if (armed_at == UNKNOWN)
            return true;
        return moved_to && *moved_to < armed_at;
    }

private:
    static constexpr u64 UNKNOWN = 0;
    static constexpr u64 NONE = ~u64 { 0 }; // Disarmed: any deadline comes first.
    std::atomic<u64> m_armed_at { UNKNOWN };
};

} // namespace vmm

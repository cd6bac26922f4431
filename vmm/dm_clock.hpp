// SPDX-License-Identifier: MIT
// DmClock: gives the DM engine the time without a periodic tick. It stands between the VMBus
// host and the engine (a ChannelDevice that forwards): before each input it feeds the engine the
// current time (so timestamps and new deadlines are right), after each input it arms the one
// timer for engine.next_deadline(), or disarms it when nothing is pending. An idle VM therefore
// gets no DM wake-ups at all (BENCHMARKS.md, idle wake-ups). Every call arrives with the VMBus
// host lock held (VmbusGlue: guest input on vCPU threads; timer and REST API via
// DmIntegration::with_engine on the loop thread), which serialises the engine and the timer.
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>

#include "base/log.hpp"
#include "devices/hv_balloon/dynamic_memory.hpp"
#include "vmm/event_loop.hpp"

namespace vmm {

class DmClock final : public vmbus::ChannelDevice {
public:
    using Clock = std::chrono::steady_clock;

    DmClock(hv_balloon::DynamicMemory& engine, EventLoop::Timer& timer)
        : m_engine(engine)
        , m_timer(timer)
    {
    }

    // Before and after any engine call made outside the VMBus host (timer, REST API).
    void tick() { m_engine.on_tick(Clock::now()); }
    void rearm()
    {
        auto const deadline = m_engine.next_deadline();
        if (deadline == m_armed)
            return;
        m_armed = deadline;
        auto armed = deadline ? m_timer.arm(std::max<Clock::duration>(*deadline - Clock::now(), std::chrono::nanoseconds { 1 }))
                              : m_timer.disarm();
        if (!armed) {
            m_armed.reset(); // Try again on the next input.
            log::warn("dm", "timer: {}", armed.error());
        }
    }
    // The timer fired: it is one-shot, so it is disarmed now.
    void expired()
    {
        m_armed.reset();
        tick();
        rearm();
    }

    // vmbus::ChannelDevice, forwarded with the time around each call.
    vmbus::OfferParams offer() const override { return m_engine.offer(); }
    void on_open(vmbus::ChannelPort& port) override
    {
        tick();
        m_engine.on_open(port);
        rearm();
    }
    void on_packet(vmbus::InboundPacket const& packet) override
    {
        tick();
        m_engine.on_packet(packet);
        rearm();
    }
    void on_ring_space() override
    {
        tick();
        m_engine.on_ring_space();
        rearm();
    }
    void on_close() override
    {
        tick();
        m_engine.on_close();
        rearm();
    }

private:
    hv_balloon::DynamicMemory& m_engine;
    EventLoop::Timer& m_timer;
    std::optional<Clock::time_point> m_armed; // What the timer is set for (nullopt: disarmed).
};

} // namespace vmm

// SPDX-License-Identifier: MIT
// DmClock: no timer while the DM engine has nothing pending; one timer at its deadline, which
// times the wait out through the event loop (no periodic tick, BENCHMARKS.md idle wake-ups).
#include "vmm/dm_clock.hpp" // Header under test first.

#include <gtest/gtest.h>

#include "tests/support/dm_rig.hpp"

namespace vmm {
namespace {

using hv_balloon::State;
using mem::PageCount;

// Runs the loop for `duration` (a one-shot stop timer).
void run_for(EventLoop& loop, std::chrono::milliseconds duration)
{
    auto stop = loop.create_timer([&loop] { loop.stop(); }).value();
    ASSERT_TRUE(stop.arm(duration));
    ASSERT_TRUE(loop.run_until_stopped());
}

// One loop run per phase (a stopped EventLoop stays stopped): a fresh loop, timer and clock.
struct Phase {
    std::unique_ptr<EventLoop> loop = EventLoop::create().value();
    int fired = 0;
    bool stop_on_fire = false;
    EventLoop::Timer timer;
    std::unique_ptr<DmClock> clock;

    explicit Phase(hv_balloon::DynamicMemory& engine)
    {
        timer = loop->create_timer([this] {
            ++fired;
            clock->expired();
            if (stop_on_fire)
                loop->stop();
        }).value();
        clock = std::make_unique<DmClock>(engine, timer);
    }
};

TEST(DmClock, IdleEngineArmsNothingAndAWaitTimesOutThroughTheTimer)
{
    auto config = hv_balloon::DmConfig::linux_profile();
    config.balloon_reply_timeout = std::chrono::milliseconds { 30 };
    test::DmRig rig { config };
    // DmClock arms the loop's timer from the engine's deadline against the real steady clock,
    // so the rig's fake time (1000 s, ahead of a host booted minutes ago) starts at real now.
    rig.now = DmClock::Clock::now();

    rig.connect();
    Phase idle { rig.engine };
    idle.clock->tick();
    idle.clock->rearm();
    ASSERT_EQ(rig.engine.state(), State::Idle);
    run_for(*idle.loop, std::chrono::milliseconds { 60 });
    EXPECT_EQ(idle.fired, 0); // Idle: no deadline, no wake-up.

    Phase waiting { rig.engine };
    rig.guest.options.ignore_balloon = true;
    waiting.clock->tick();
    rig.target(rig.boot() - PageCount { 4096 });
    waiting.clock->rearm();
    ASSERT_EQ(rig.engine.state(), State::BalloonWaitReply);
    waiting.stop_on_fire = true;
    run_for(*waiting.loop, std::chrono::seconds { 10 }); // Ends at the DM deadline (30 ms) in practice.
    EXPECT_EQ(waiting.fired, 1); // Exactly one wake-up, at the deadline.
    EXPECT_EQ(rig.engine.state(), State::Idle);
    EXPECT_EQ(rig.status().counters.timeouts, 1u);
    EXPECT_EQ(rig.engine.next_deadline(), std::nullopt);
}

} // namespace
} // namespace vmm

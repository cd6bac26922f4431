// SPDX-License-Identifier: MIT
// STIMER0-3: one-shot, periodic, lazy/auto-enable programming, direct and message mode, the
// re-post of a refused timer message, and every bad value (TLFS 12.4; Linux
// drivers/clocksource/hyperv_timer.c:78-125). The host clock is the fake TSC; run_expired()
// stands in for the timer thread.
#include "vmm/hyperv/synthetic_timers.hpp" // Header under test first.

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "tests/unit/hyperv/hyperv_fakes.hpp"
#include "vmm/hyperv/timer_thread.hpp"

namespace vmm::hyperv::test {
namespace {

constexpr std::uint32_t STIMER0_CONFIG = 0x4000'00B0;
constexpr std::uint32_t STIMER0_COUNT = 0x4000'00B1;
constexpr std::uint8_t STIMER_VECTOR = 0xED; // HYPERV_STIMER0_VECTOR (arch/x86/include/asm/irq_vectors.h)
constexpr std::uint64_t SIMP_GPA = 0x8000;
constexpr std::uint64_t SIEFP_GPA = 0x9000;
constexpr std::uint8_t TIMER_SINT = 3;
constexpr std::uint8_t TIMER_SINT_VECTOR = 0xF4;

// What Linux writes in direct mode (hyperv_timer.c:103-112).
constexpr std::uint64_t LINUX_DIRECT_CONFIG = HV_STIMER_ENABLE | HV_STIMER_AUTO_ENABLE | HV_STIMER_DIRECT_MODE
    | (std::uint64_t { STIMER_VECTOR } << HV_STIMER_VECTOR_SHIFT);
constexpr std::uint64_t message_config(std::uint8_t sint, bool periodic = false)
{
    return HV_STIMER_ENABLE | HV_STIMER_AUTO_ENABLE | (periodic ? HV_STIMER_PERIODIC : 0)
        | (std::uint64_t { sint } << HV_STIMER_SINT_SHIFT);
}

class StimerTest : public PartitionTest {
protected:
    SyntheticTimers& timers() { return *partition.synthetic_timers(); }
    std::uint64_t now() { return *partition.read_msr(0, HV_X64_MSR_TIME_REF_COUNT); }
    void advance(std::uint64_t ticks) { tsc.advance_100ns(ticks, TSC_HZ); }
    std::optional<std::uint64_t> run() { return timers().run_expired(now()); }
    std::uint32_t slot_type(std::uint8_t sint)
    {
        return ram.read<std::uint32_t>(SIMP_GPA + sint * HV_MESSAGE_SIZE);
    }
    HvTimerMessagePayload slot_payload(std::uint8_t sint)
    {
        return ram.read<HvTimerMessagePayload>(SIMP_GPA + sint * HV_MESSAGE_SIZE + sizeof(HvMessageHeader));
    }
    // The guest consumes the slot: message_type = 0, then EOM if msg_pending (mshyperv.h:119-151).
    void consume(std::uint32_t vp, std::uint8_t sint)
    {
        ram.write<std::uint32_t>(SIMP_GPA + sint * HV_MESSAGE_SIZE, 0);
        ASSERT_TRUE(partition.write_msr(vp, HV_X64_MSR_EOM, 0));
    }
};

TEST_F(StimerTest, DirectOneShotFiresOnceAtItsAbsoluteCountAndThenDisablesItself)
{
    ASSERT_TRUE(partition.write_msr(0, STIMER0_CONFIG, LINUX_DIRECT_CONFIG));
    std::uint64_t const deadline = now() + 1000;
    ASSERT_TRUE(partition.write_msr(0, STIMER0_COUNT, deadline)); // hv_ce_set_next_event()
    EXPECT_EQ(run(), deadline);
    EXPECT_TRUE(interrupts.injected.empty());
    advance(999);
    EXPECT_EQ(run(), deadline);
    EXPECT_TRUE(interrupts.injected.empty());
    advance(2);
    EXPECT_EQ(run(), std::nullopt);
    EXPECT_EQ(interrupts.injected, (std::vector<Injection> { { 0, STIMER_VECTOR } }));
    EXPECT_EQ(*partition.read_msr(0, STIMER0_CONFIG) & HV_STIMER_ENABLE, 0u); // One-shot: disabled.
    EXPECT_EQ(partition.read_msr(0, STIMER0_COUNT), deadline);
    advance(100'000);
    EXPECT_EQ(run(), std::nullopt);
    EXPECT_EQ(interrupts.injected.size(), 1u);
}

TEST_F(StimerTest, AutoEnableReArmsOnEveryCountWriteLikeLinuxsSetNextEvent)
{
    ASSERT_TRUE(partition.write_msr(0, STIMER0_CONFIG, LINUX_DIRECT_CONFIG));
    for (int tick = 0; tick < 5; ++tick) {
        ASSERT_TRUE(partition.write_msr(0, STIMER0_COUNT, now() + 500));
        EXPECT_NE(*partition.read_msr(0, STIMER0_CONFIG) & HV_STIMER_ENABLE, 0u);
        advance(500);
        run();
    }
    EXPECT_EQ(interrupts.injected.size(), 5u);
    // The guest's timer rate (bench/startup.py idle figures, /metrics): 5 clock events asked
    // for (the CONFIG write with COUNT still 0 armed nothing), 5 delivered.
    EXPECT_EQ(timers().programmed(), 5u);
    EXPECT_EQ(timers().expirations(), 5u);
    EXPECT_EQ(partition.stats().stimer_programmed, 5u);
    EXPECT_EQ(partition.stats().stimer_expirations, 5u);
}

TEST_F(StimerTest, ConfigWithoutEnableStaysIdleUntilTheCountWriteWhenAutoEnableIsSet)
{
    // "Lazy" programming: CONFIG first (not enabled), COUNT later enables it.
    ASSERT_TRUE(partition.write_msr(0, STIMER0_CONFIG, LINUX_DIRECT_CONFIG & ~HV_STIMER_ENABLE));
    advance(10'000);
    EXPECT_EQ(run(), std::nullopt);
    ASSERT_TRUE(partition.write_msr(0, STIMER0_COUNT, now() + 10));
    EXPECT_NE(*partition.read_msr(0, STIMER0_CONFIG) & HV_STIMER_ENABLE, 0u);
    advance(10);
    run();
    EXPECT_EQ(interrupts.injected.size(), 1u);
    // Without auto_enable a COUNT write does not enable.
    ASSERT_TRUE(partition.write_msr(0, STIMER0_CONFIG, HV_STIMER_DIRECT_MODE | (0x40 << HV_STIMER_VECTOR_SHIFT)));
    ASSERT_TRUE(partition.write_msr(0, STIMER0_COUNT, now() + 10));
    advance(100);
    EXPECT_EQ(run(), std::nullopt);
    EXPECT_EQ(interrupts.injected.size(), 1u);
    EXPECT_EQ(timers().programmed(), 1u); // Only the auto-enabled COUNT write armed a timer.
}

TEST_F(StimerTest, CountZeroDisablesAndAConfigWriteCancelsAnArmedTimer)
{
    ASSERT_TRUE(partition.write_msr(0, STIMER0_CONFIG, LINUX_DIRECT_CONFIG));
    ASSERT_TRUE(partition.write_msr(0, STIMER0_COUNT, now() + 10));
    ASSERT_TRUE(partition.write_msr(0, STIMER0_COUNT, 0)); // hv_ce_shutdown()
    EXPECT_EQ(*partition.read_msr(0, STIMER0_CONFIG) & HV_STIMER_ENABLE, 0u);
    ASSERT_TRUE(partition.write_msr(0, STIMER0_CONFIG, 0));
    advance(100);
    EXPECT_EQ(run(), std::nullopt);
    EXPECT_TRUE(interrupts.injected.empty());
}

TEST_F(StimerTest, OneShotInThePastFiresAtTheNextRun)
{
    advance(5000);
    ASSERT_TRUE(partition.write_msr(0, STIMER0_CONFIG, LINUX_DIRECT_CONFIG));
    ASSERT_TRUE(partition.write_msr(0, STIMER0_COUNT, 1));
    run();
    EXPECT_EQ(interrupts.injected.size(), 1u);
}

TEST_F(StimerTest, PeriodicFiresEveryPeriodAndALateWakeupDeliversOnceThenStaysOnTheGrid)
{
    constexpr std::uint64_t period = 10'000; // 1 ms
    std::uint64_t const start = now();
    ASSERT_TRUE(partition.write_msr(1, STIMER0_COUNT + 2, period)); // STIMER1_COUNT
    ASSERT_TRUE(partition.write_msr(1, STIMER0_CONFIG + 2, LINUX_DIRECT_CONFIG | HV_STIMER_PERIODIC));
    EXPECT_EQ(run(), start + period);
    advance(period);
    EXPECT_EQ(run(), start + 2 * period);
    EXPECT_EQ(interrupts.injected, (std::vector<Injection> { { 1, STIMER_VECTOR } }));
    advance(period * 7 / 2); // The host thread woke 3.5 periods late.
    auto const next = run();
    EXPECT_EQ(interrupts.injected.size(), 2u); // Delivered late, not dropped; not 4 at once.
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ((*next - start) % period, 0u); // Still on the period grid...
    EXPECT_GT(*next, now());                 // ... and in the future.
    EXPECT_EQ(timers().late_coalesced(), 2u);
    EXPECT_NE(*partition.read_msr(1, STIMER0_CONFIG + 2) & HV_STIMER_ENABLE, 0u); // Periodic stays on.
}

TEST_F(StimerTest, TinyPeriodsAreRaisedToTheMinimumAndAbsurdOnesNeverOverflow)
{
    ASSERT_TRUE(partition.write_msr(0, STIMER0_COUNT, 1)); // 100 ns
    ASSERT_TRUE(partition.write_msr(0, STIMER0_CONFIG, LINUX_DIRECT_CONFIG | HV_STIMER_PERIODIC));
    EXPECT_EQ(run(), now() + SyntheticTimers::MIN_PERIOD);
    advance(SyntheticTimers::MIN_PERIOD * 10);
    run();
    EXPECT_EQ(interrupts.injected.size(), 1u); // 10 periods late: one delivery, no storm.

    ASSERT_TRUE(partition.write_msr(0, STIMER0_COUNT + 2, ~std::uint64_t { 0 })); // Absurd period.
    ASSERT_TRUE(partition.write_msr(0, STIMER0_CONFIG + 2, LINUX_DIRECT_CONFIG | HV_STIMER_PERIODIC));
    ASSERT_TRUE(partition.write_msr(0, STIMER0_COUNT + 4, ~std::uint64_t { 0 })); // Absurd one-shot.
    ASSERT_TRUE(partition.write_msr(0, STIMER0_CONFIG + 4, LINUX_DIRECT_CONFIG));
    advance(HV_CLOCK_HZ * 3600);
    run();
    EXPECT_EQ(std::ranges::count(interrupts.injected, Injection { 0, STIMER_VECTOR }), 2); // Only STIMER0 again.
}

TEST_F(StimerTest, ReservedBitsExceptionVectorsAndBadSintsAreRefusedOrDisabled)
{
    auto const faults = partition.stats().msr_faults;
    for (std::uint64_t bad : { LINUX_DIRECT_CONFIG | (1u << 13), LINUX_DIRECT_CONFIG | (1u << 15),
             LINUX_DIRECT_CONFIG | (std::uint64_t { 1 } << 20), LINUX_DIRECT_CONFIG | (std::uint64_t { 1 } << 63),
             HV_STIMER_ENABLE | HV_STIMER_DIRECT_MODE | (0x0F << HV_STIMER_VECTOR_SHIFT),     // Vector 15.
             HV_STIMER_AUTO_ENABLE | HV_STIMER_DIRECT_MODE | (0x0F << HV_STIMER_VECTOR_SHIFT) }) // Armed by COUNT.
        EXPECT_FALSE(partition.write_msr(0, STIMER0_CONFIG, bad)) << std::hex << bad;
    EXPECT_EQ(partition.stats().msr_faults, faults + 6);
    EXPECT_EQ(partition.read_msr(0, STIMER0_CONFIG), 0u);
    // A direct config that can never fire may name any vector (Linux's shutdown writes 0).
    ASSERT_TRUE(partition.write_msr(0, STIMER0_CONFIG, HV_STIMER_DIRECT_MODE));
    ASSERT_TRUE(partition.write_msr(0, STIMER0_COUNT, now() + 1));
    advance(10);
    run();
    EXPECT_TRUE(interrupts.injected.empty());
    ASSERT_TRUE(partition.write_msr(0, STIMER0_CONFIG, 0));
    // Message mode on SINT 0 disables the timer (KVM stimer_set_config, hyperv.c:693-696).
    ASSERT_TRUE(partition.write_msr(0, STIMER0_CONFIG, message_config(0)));
    EXPECT_EQ(*partition.read_msr(0, STIMER0_CONFIG) & HV_STIMER_ENABLE, 0u);
    ASSERT_TRUE(partition.write_msr(0, STIMER0_COUNT, now() + 1)); // Auto-enable must not revive it.
    EXPECT_EQ(*partition.read_msr(0, STIMER0_CONFIG) & HV_STIMER_ENABLE, 0u);
}

TEST_F(StimerTest, MessageModeWritesTimerExpiredWithExpirationAndDeliveryTimes)
{
    enable_synic(0, SIMP_GPA, SIEFP_GPA, TIMER_SINT, TIMER_SINT_VECTOR);
    ASSERT_TRUE(partition.write_msr(0, STIMER0_CONFIG + 4, message_config(TIMER_SINT))); // STIMER2
    std::uint64_t const deadline = now() + 300;
    ASSERT_TRUE(partition.write_msr(0, STIMER0_COUNT + 4, deadline));
    advance(450);
    run();
    EXPECT_EQ(slot_type(TIMER_SINT), HVMSG_TIMER_EXPIRED);
    auto const payload = slot_payload(TIMER_SINT);
    EXPECT_EQ(payload.timer_index, 2u);
    EXPECT_EQ(payload.expiration_time, deadline);
    EXPECT_GE(payload.delivery_time, deadline + 149); // Delivered at "now", 150 units late.
    EXPECT_LE(payload.delivery_time, now());
    EXPECT_EQ(interrupts.injected, (std::vector<Injection> { { 0, TIMER_SINT_VECTOR } }));
}

TEST_F(StimerTest, ABusySlotHoldsThePeriodicExpirationUntilEomThenRepostsIt)
{
    enable_synic(0, SIMP_GPA, SIEFP_GPA, TIMER_SINT, TIMER_SINT_VECTOR);
    constexpr std::uint64_t period = 1000;
    std::uint64_t const start = now();
    ASSERT_TRUE(partition.write_msr(0, STIMER0_COUNT, period));
    ASSERT_TRUE(partition.write_msr(0, STIMER0_CONFIG, message_config(TIMER_SINT, true)));
    advance(period);
    run(); // First message lands; the guest does not read it yet.
    advance(period);
    EXPECT_EQ(run(), std::nullopt); // Second refused: pending, timer stopped until the slot frees.
    EXPECT_EQ(interrupts.injected.size(), 1u);
    EXPECT_EQ(slot_payload(TIMER_SINT).expiration_time, start + period);
    advance(period * 5); // Still busy: nothing piles up.
    EXPECT_EQ(run(), std::nullopt);
    consume(0, TIMER_SINT); // EOM -> slot freed -> re-posted at once.
    EXPECT_EQ(slot_type(TIMER_SINT), HVMSG_TIMER_EXPIRED);
    EXPECT_EQ(slot_payload(TIMER_SINT).expiration_time, start + 2 * period); // The held expiration.
    EXPECT_EQ(interrupts.injected.size(), 2u);
    auto const next = run();
    ASSERT_TRUE(next.has_value()); // Running again on the grid.
    EXPECT_EQ((*next - start) % period, 0u);
}

TEST_F(StimerTest, TimersOnAMaskedSintOrBeforeTheSynicIsOnWaitAndDeliverOnceEnabled)
{
    // Armed before the guest enabled anything (writes before the SynIC is on are accepted).
    ASSERT_TRUE(partition.write_msr(1, STIMER0_CONFIG, message_config(TIMER_SINT)));
    ASSERT_TRUE(partition.write_msr(1, STIMER0_COUNT, now() + 100));
    advance(200);
    EXPECT_EQ(run(), std::nullopt);
    EXPECT_TRUE(interrupts.injected.empty());
    // SynIC on with the timer's SINT still masked: keeps waiting.
    ASSERT_TRUE(partition.write_msr(1, HV_X64_MSR_SIMP, SIMP_GPA | 1));
    ASSERT_TRUE(partition.write_msr(1, HV_X64_MSR_SCONTROL, 1));
    EXPECT_EQ(slot_type(TIMER_SINT), 0u);
    // Unmasking the SINT delivers the held expiration.
    ASSERT_TRUE(partition.write_msr(1, HV_X64_MSR_SINT0 + TIMER_SINT, TIMER_SINT_VECTOR));
    EXPECT_EQ(slot_type(TIMER_SINT), HVMSG_TIMER_EXPIRED);
    EXPECT_EQ(interrupts.injected, (std::vector<Injection> { { 1, TIMER_SINT_VECTOR } }));
}

TEST_F(StimerTest, ResetForgetsEveryTimer)
{
    ASSERT_TRUE(partition.write_msr(0, STIMER0_CONFIG, LINUX_DIRECT_CONFIG));
    ASSERT_TRUE(partition.write_msr(0, STIMER0_COUNT, now() + 10));
    partition.reset();
    EXPECT_EQ(partition.read_msr(0, STIMER0_CONFIG), 0u);
    advance(100);
    EXPECT_EQ(run(), std::nullopt);
    EXPECT_TRUE(interrupts.injected.empty());
}

// The host timer thread on a real clock: TSC = steady_clock nanoseconds at 1 GHz.
class LockedInterrupts final : public InterruptSink {
public:
    void inject(std::uint32_t vp, std::uint8_t vector) override
    {
        std::lock_guard lock { m_mutex };
        m_times.push_back(std::chrono::steady_clock::now());
        (void)vp;
        (void)vector;
    }
    std::vector<std::chrono::steady_clock::time_point> times()
    {
        std::lock_guard lock { m_mutex };
        return m_times;
    }

private:
    std::mutex m_mutex;
    std::vector<std::chrono::steady_clock::time_point> m_times;
};

TEST(TimerThreadTest, DeliversOnTimeFromOneSleepingThreadWithoutBusyLooping)
{
    FakeGuestMemory ram { { 0, 0x1'0000 } };
    LockedInterrupts interrupts;
    PartitionConfig config { 2, 1'000'000'000, APIC_HZ };
    config.read_guest_tsc = [] {
        return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    };
    Partition partition { ram.memory(), interrupts, config };
    auto created = TimerThread::create(*partition.synthetic_timers(), *partition.reference_clock());
    ASSERT_TRUE(created.has_value());
    TimerThread& thread = **created;
    partition.synthetic_timers()->set_rearm([&](std::optional<std::uint64_t> earliest) { thread.rearm(earliest); });
    thread.start();
    auto const start = std::chrono::steady_clock::now();
    std::uint64_t const now = *partition.read_msr(0, HV_X64_MSR_TIME_REF_COUNT);
    ASSERT_TRUE(partition.write_msr(0, STIMER0_CONFIG, LINUX_DIRECT_CONFIG));
    ASSERT_TRUE(partition.write_msr(0, STIMER0_COUNT, now + 200'000)); // 20 ms, VP 0
    ASSERT_TRUE(partition.write_msr(1, STIMER0_COUNT, 100'000));       // 10 ms period, VP 1
    ASSERT_TRUE(partition.write_msr(1, STIMER0_CONFIG, LINUX_DIRECT_CONFIG | HV_STIMER_PERIODIC));
    std::this_thread::sleep_for(std::chrono::milliseconds { 205 });
    ASSERT_TRUE(partition.write_msr(1, STIMER0_CONFIG, 0));
    auto const times = interrupts.times();
    thread.stop();
    // 1 one-shot + ~20 periodic ticks; a loaded CI host may lose a few to lateness (coalesced).
    EXPECT_GE(times.size(), 15u);
    EXPECT_LE(times.size(), 22u);
    EXPECT_GE(times.front() - start, std::chrono::milliseconds { 10 }); // Nothing fires early.
    // Sleeps between expirations: a handful of wake-ups per delivery, never thousands.
    EXPECT_LE(thread.wakeups(), 4 * times.size() + 10);
}

} // namespace
} // namespace vmm::hyperv::test

namespace vmm::hyperv::test {
namespace {

// Linux reprograms its clock event (STIMER0_COUNT) for every event; no write, earlier or later,
// may wake the timer thread, which wakes once per expiry only (an idle guest's host cost).
TEST(TimerThreadTest, ReprogrammingNeverWakesTheSleepingThreadOnlyExpiriesDo)
{
    FakeGuestMemory ram { { 0, 0x1'0000 } };
    LockedInterrupts interrupts;
    PartitionConfig config { 2, 1'000'000'000, APIC_HZ };
    config.read_guest_tsc = [] {
        return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    };
    Partition partition { ram.memory(), interrupts, config };
    auto created = TimerThread::create(*partition.synthetic_timers(), *partition.reference_clock());
    ASSERT_TRUE(created.has_value());
    TimerThread& thread = **created;
    partition.synthetic_timers()->set_rearm([&](std::optional<std::uint64_t> earliest) { thread.rearm(earliest); });
    thread.start();
    std::uint64_t const now = *partition.read_msr(0, HV_X64_MSR_TIME_REF_COUNT);
    ASSERT_TRUE(partition.write_msr(0, STIMER0_CONFIG, LINUX_DIRECT_CONFIG));
    ASSERT_TRUE(partition.write_msr(0, STIMER0_COUNT, now + 10'000'000)); // 1 s out.
    ASSERT_TRUE(partition.write_msr(1, STIMER0_CONFIG, LINUX_DIRECT_CONFIG));
    std::this_thread::sleep_for(std::chrono::milliseconds { 20 }); // Asleep until VP 0's expiry.
    std::uint64_t const before = thread.wakeups();
    for (std::uint64_t i = 1; i <= 100; ++i)
        ASSERT_TRUE(partition.write_msr(1, STIMER0_COUNT, now + 20'000'000 + i)); // 2 s out: later.
    std::this_thread::sleep_for(std::chrono::milliseconds { 20 });
    EXPECT_EQ(thread.wakeups(), before); // Was 100 (one per write) before the later-only check.
    // Earlier and earlier expirations (all still ~0.5 s out) move the timerfd from this thread:
    // the timer thread stays asleep (was one wake-up per write with a condition variable).
    for (std::uint64_t i = 1; i <= 100; ++i)
        ASSERT_TRUE(partition.write_msr(1, STIMER0_COUNT, now + 6'000'000 - i * 1'000));
    std::this_thread::sleep_for(std::chrono::milliseconds { 20 });
    EXPECT_EQ(thread.wakeups(), before);
    // An earlier expiration fires on time, with one wake-up of the timer thread.
    auto const start = std::chrono::steady_clock::now();
    ASSERT_TRUE(partition.write_msr(1, STIMER0_COUNT, *partition.read_msr(1, HV_X64_MSR_TIME_REF_COUNT) + 100'000));
    std::this_thread::sleep_for(std::chrono::milliseconds { 60 });
    auto const woken = thread.wakeups() - before;
    thread.stop();
    auto const times = interrupts.times();
    ASSERT_EQ(times.size(), 1u);
    EXPECT_GE(times.front() - start, std::chrono::milliseconds { 9 });
    EXPECT_EQ(woken, 1u);
}

} // namespace
} // namespace vmm::hyperv::test

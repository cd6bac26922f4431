// SPDX-License-Identifier: MIT
#include "vmm/hyperv/timer_thread.hpp"

#include <pthread.h>

#include <chrono>

#include "vmm/hyperv/hvdef.hpp"
#include "vmm/hyperv/reference_time.hpp"
#include "vmm/hyperv/synthetic_timers.hpp"
#include "vmm/sandbox/thread_sandbox.hpp"

namespace vmm::hyperv {
namespace {

// A far expiration is re-checked at least this often (bounds chrono arithmetic; costs nothing).
constexpr u64 MAX_SLEEP_100NS = 3600 * HV_CLOCK_HZ;

} // namespace

TimerThread::TimerThread(SyntheticTimers& timers, ReferenceClock const& clock)
    : m_timers(timers)
    , m_clock(clock)
{
}

TimerThread::~TimerThread() { stop(); }

void TimerThread::start()
{
    VMM_ASSERT(!m_thread.joinable());
    m_thread = std::thread([this] {
        // Named by itself (see VcpuThread::run_loop), then filtered before its first expiry.
        ::pthread_setname_np(::pthread_self(), "hv-timers");
        sandbox::enter_thread(sandbox::ThreadKind::HvTimers);
        run();
    });
}

void TimerThread::stop()
{
    {
        std::lock_guard lock { m_mutex };
        m_stop = true;
    }
    m_cv.notify_one();
    if (m_thread.joinable())
        m_thread.join();
}

void TimerThread::rearm(std::optional<u64> earliest)
{
    {
        std::lock_guard lock { m_mutex };
        // Asleep until an expiration no later than the new earliest: it wakes in time anyway.
        if (!m_dirty && m_sleep_until != 0 && earliest && *earliest >= m_sleep_until)
            return;
        m_dirty = true;
    }
    m_cv.notify_one();
}

u64 TimerThread::wakeups() const
{
    std::lock_guard lock { m_mutex };
    return m_wakeups;
}

void TimerThread::run()
{
    std::unique_lock lock { m_mutex };
    while (!m_stop) {
        ++m_wakeups;
        m_dirty = false;
        lock.unlock();
        // Delivery happens here, without our lock: SyntheticTimers may call rearm() back.
        auto const next = m_timers.run_expired(m_clock.now());
        u64 const now = m_clock.now();
        lock.lock();
        if (m_stop || m_dirty)
            continue;
        auto const woken = [this] { return m_stop || m_dirty; };
        if (!next) {
            m_sleep_until = ~u64 { 0 };
            m_cv.wait(lock, woken);
        } else if (*next > now) {
            u64 const wait_100ns = std::min(*next - now, MAX_SLEEP_100NS);
            m_sleep_until = now + wait_100ns;
            auto const sleep = std::chrono::nanoseconds { wait_100ns * 100 };
            m_cv.wait_until(lock, std::chrono::steady_clock::now() + sleep, woken);
        }
        m_sleep_until = 0;
    }
}

} // namespace vmm::hyperv

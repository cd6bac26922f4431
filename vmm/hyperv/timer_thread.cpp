// SPDX-License-Identifier: MIT
#include "vmm/hyperv/timer_thread.hpp"

#include <pthread.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/log.hpp"
#include "vmm/hyperv/hvdef.hpp"
#include "vmm/hyperv/reference_time.hpp"
#include "vmm/hyperv/synthetic_timers.hpp"
#include "vmm/sandbox/thread_sandbox.hpp"

namespace vmm::hyperv {
namespace {

// A far expiration is re-checked at least this often (bounds the arithmetic; costs nothing).
constexpr u64 MAX_SLEEP_100NS = 3600 * HV_CLOCK_HZ;

itimerspec relative(u64 delay_100ns)
{
    // A zero it_value disarms: an expiration due now fires after 1 ns.
    u64 const ns = std::max<u64>(delay_100ns * 100, 1);
    itimerspec spec {};
    spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    return spec;
}

} // namespace

Result<std::unique_ptr<TimerThread>> TimerThread::create(SyntheticTimers& timers, ReferenceClock const& clock)
{
    Fd timerfd { ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC) };
    if (!timerfd.is_open())
        return fail_errno("timerfd_create for the synthetic timers");
    return std::unique_ptr<TimerThread>(new TimerThread(timers, clock, std::move(timerfd)));
}

TimerThread::TimerThread(SyntheticTimers& timers, ReferenceClock const& clock, Fd timerfd)
    : m_timers(timers)
    , m_clock(clock)
    , m_timerfd(std::move(timerfd))
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
        arm_locked(0, 0); // Fires at once: the blocked read() returns and sees m_stop.
    }
    if (m_thread.joinable())
        m_thread.join();
}

void TimerThread::arm_locked(std::optional<u64> expiration, u64 now)
{
    itimerspec spec {};
    if (expiration)
        spec = relative(*expiration > now ? std::min(*expiration - now, MAX_SLEEP_100NS) : 0);
    // Only EINVAL/EFAULT can fail here, i.e. a host bug (the fd is ours, the values bounded).
    int const set = ::timerfd_settime(m_timerfd.get(), 0, &spec, nullptr);
    VMM_ASSERT(set == 0);
    m_armed_at = expiration ? std::max<u64>(std::min(*expiration, now + MAX_SLEEP_100NS), 1) : 0;
}

void TimerThread::rearm(std::optional<u64> earliest)
{
    std::lock_guard lock { m_mutex };
    if (m_stop)
        return;
    if (m_delivering) {
        m_dirty = true; // The thread recomputes before it blocks again.
        return;
    }
    // Blocked until m_armed_at: only an earlier expiration needs the timerfd moved.
    if (!earliest || (m_armed_at != 0 && *earliest >= m_armed_at))
        return;
    arm_locked(earliest, m_clock.now());
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
        m_delivering = true;
        m_dirty = false;
        lock.unlock();
        // Delivery happens here, without our lock: SyntheticTimers may call rearm() back.
        auto const next = m_timers.run_expired(m_clock.now());
        lock.lock();
        if (m_stop)
            break;
        if (m_dirty)
            continue; // A timer moved meanwhile: `next` may be stale.
        arm_locked(next, m_clock.now());
        m_delivering = false;
        lock.unlock();
        u64 expirations = 0;
        ssize_t const got = ::read(m_timerfd.get(), &expirations, sizeof(expirations));
        // EINTR (a signal) or EAGAIN-like races just mean "recompute now".
        if (got < 0 && errno != EINTR)
            log::warn("hyperv", "synthetic timer read: errno {}", errno);
        lock.lock();
    }
}

} // namespace vmm::hyperv

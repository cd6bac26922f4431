// SPDX-License-Identifier: MIT
#include "vmm/event_loop.hpp"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "base/log.hpp"

namespace vmm {

namespace {
constexpr int MAX_EVENTS = 16;
constexpr u64 WAKE_ID = 0; // epoll data of the internal eventfd; watch() ids start at 1.

timespec to_timespec(std::chrono::nanoseconds ns)
{
    auto const seconds = std::chrono::duration_cast<std::chrono::seconds>(ns);
    return timespec { static_cast<time_t>(seconds.count()), static_cast<long>((ns - seconds).count()) };
}
} // namespace

Result<void> block_termination_signals()
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (int err = pthread_sigmask(SIG_BLOCK, &set, nullptr); err != 0)
        return fail_errno("pthread_sigmask", err);
    return {};
}

EventLoop::Registration& EventLoop::Registration::operator=(Registration&& other) noexcept
{
    if (this != &other) {
        reset();
        m_loop = std::exchange(other.m_loop, nullptr);
        m_id = other.m_id;
    }
    return *this;
}

void EventLoop::Registration::reset()
{
    if (m_loop)
        std::exchange(m_loop, nullptr)->unwatch(m_id);
}

Result<void> EventLoop::Timer::arm(std::chrono::nanoseconds delay, std::chrono::nanoseconds period)
{
    // A zero it_value disarms, so a zero delay becomes the shortest real one.
    itimerspec spec { to_timespec(period), to_timespec(delay.count() > 0 ? delay : std::chrono::nanoseconds { 1 }) };
    if (::timerfd_settime(m_fd.get(), 0, &spec, nullptr) < 0)
        return fail_errno("timerfd_settime");
    return {};
}

Result<void> EventLoop::Timer::disarm()
{
    itimerspec spec {};
    if (::timerfd_settime(m_fd.get(), 0, &spec, nullptr) < 0)
        return fail_errno("timerfd_settime");
    return {};
}

Result<std::unique_ptr<EventLoop>> EventLoop::create()
{
    Fd epoll { ::epoll_create1(EPOLL_CLOEXEC) };
    if (!epoll.is_open())
        return fail_errno("epoll_create1");
    Fd wake { ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) };
    if (!wake.is_open())
        return fail_errno("eventfd");
    epoll_event event {};
    event.events = EPOLLIN;
    event.data.u64 = WAKE_ID;
    if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake.get(), &event) < 0)
        return fail_errno("epoll_ctl add eventfd");
    return std::unique_ptr<EventLoop>(new EventLoop(std::move(epoll), std::move(wake))); // Private constructor.
}

EventLoop::EventLoop(Fd epoll, Fd wake)
    : m_epoll(std::move(epoll))
    , m_wake(std::move(wake))
{
}

EventLoop::~EventLoop() = default;

Result<EventLoop::Registration> EventLoop::watch(int fd, u32 epoll_events, Handler handler)
{
    u64 const id = m_next_id++;
    epoll_event event {};
    event.events = epoll_events;
    event.data.u64 = id;
    if (::epoll_ctl(m_epoll.get(), EPOLL_CTL_ADD, fd, &event) < 0)
        return fail_errno("epoll_ctl add");
    m_entries.emplace(id, Entry { fd, std::make_shared<Handler>(std::move(handler)) });
    return Registration { this, id };
}

void EventLoop::unwatch(u64 id)
{
    auto it = m_entries.find(id);
    if (it == m_entries.end())
        return;
    // Every owner leaves epoll before closing its fd (Registration, Timer), so this names an fd
    // that is still the one registered; an error would mean it was closed early.
    ::epoll_ctl(m_epoll.get(), EPOLL_CTL_DEL, it->second.fd, nullptr);
    m_entries.erase(it);
}

Result<EventLoop::Timer> EventLoop::create_timer(Task on_expiry)
{
    Timer timer;
    timer.m_fd = Fd { ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK) };
    if (!timer.m_fd.is_open())
        return fail_errno("timerfd_create");
    int const raw = timer.m_fd.get();
    timer.m_registration = VMM_TRY(watch(raw, EPOLLIN, [raw, task = std::move(on_expiry)](u32) mutable {
        u64 expirations = 0;
        // Non-blocking: EAGAIN means a disarm raced with the wakeup; nothing expired.
        if (::read(raw, &expirations, sizeof expirations) == sizeof expirations && expirations > 0)
            task();
    }));
    return timer;
}

Result<EventLoop::Registration> EventLoop::watch_signals(std::move_only_function<void(int)> on_signal)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    m_signal_fd = Fd { ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK) };
    if (!m_signal_fd.is_open())
        return fail_errno("signalfd");
    int const raw = m_signal_fd.get();
    return watch(raw, EPOLLIN, [raw, callback = std::move(on_signal)](u32) mutable {
        signalfd_siginfo info {};
        while (::read(raw, &info, sizeof info) == sizeof info)
            callback(static_cast<int>(info.ssi_signo));
    });
}

void EventLoop::stop()
{
    m_stop.store(true, std::memory_order_release);
    u64 one = 1;
    // The eventfd counter cannot overflow from this; a failed write still leaves m_stop set.
    [[maybe_unused]] auto written = ::write(m_wake.get(), &one, sizeof one);
}

bool EventLoop::post(Task task)
{
    {
        std::lock_guard guard { m_posted_lock };
        if (m_posted.size() >= MAX_POSTED_TASKS)
            return false;
        m_posted.push_back(std::move(task));
    }
    u64 one = 1;
    [[maybe_unused]] auto written = ::write(m_wake.get(), &one, sizeof one);
    return true;
}

void EventLoop::drain_posted()
{
    u64 count = 0;
    [[maybe_unused]] auto drained = ::read(m_wake.get(), &count, sizeof count);
    std::deque<Task> tasks;
    {
        std::lock_guard guard { m_posted_lock };
        tasks.swap(m_posted);
    }
    for (auto& task : tasks)
        task();
}

Result<void> EventLoop::run_until_stopped()
{
    std::array<epoll_event, MAX_EVENTS> events {};
    while (!m_stop.load(std::memory_order_acquire)) {
        int ready = ::epoll_wait(m_epoll.get(), events.data(), MAX_EVENTS, -1);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            return fail_errno("epoll_wait");
        }
        for (int i = 0; i < ready; ++i) {
            u64 const id = events[static_cast<std::size_t>(i)].data.u64;
            if (id == WAKE_ID) {
                drain_posted();
                continue;
            }
            auto it = m_entries.find(id);
            if (it == m_entries.end())
                continue; // Unwatched by an earlier handler in this batch.
            auto handler = it->second.handler; // Keeps the handler alive if it unwatches itself.
            (*handler)(events[static_cast<std::size_t>(i)].events);
        }
    }
    return {};
}

} // namespace vmm

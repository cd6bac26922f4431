// SPDX-License-Identifier: MIT
// EventLoop: the main thread's epoll loop for timers (the DM tick, the SynIC kick), signals and
// machine stop/reset (vmm/runner.*). epoll + eventfd for cross-thread posts + timerfd + signalfd.
// Handlers run on the loop thread only, never block and never re-enter run_until_stopped().
// VMBus and DM work also runs on vCPU and API threads (under the VMBus glue lock), and the REST
// socket has its own thread: ARCHITECTURE.md "Threads and locks" has the whole picture.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "base/ranked_mutex.hpp"
#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/types.hpp"

namespace vmm {

class EventLoop {
public:
    using Handler = std::move_only_function<void(u32 epoll_events)>;
    using Task = std::move_only_function<void()>;

    // Removes its fd from the loop on destruction; destroy it before closing the fd.
    class Registration {
    public:
        Registration() = default;
        Registration(EventLoop* loop, u64 id)
            : m_loop(loop)
            , m_id(id)
        {
        }
        Registration(Registration&& other) noexcept
            : m_loop(std::exchange(other.m_loop, nullptr))
            , m_id(other.m_id)
        {
        }
        Registration& operator=(Registration&& other) noexcept;
        ~Registration() { reset(); }
        void reset();

    private:
        EventLoop* m_loop { nullptr };
        u64 m_id { 0 };
    };

    // A timerfd owned together with its registration. Destroying it cancels the timer.
    class Timer {
    public:
        Timer() = default;
        Timer(Timer&&) noexcept = default;
        // Not the member-wise default: that would close m_fd before m_registration leaves
        // epoll, so the EPOLL_CTL_DEL named an fd number another thread may already have been
        // given again (ThreadSanitizer saw the API thread's accept() reuse it, e2e-stress).
        Timer& operator=(Timer&& other) noexcept
        {
            if (this != &other) {
                m_registration.reset();
                m_fd = std::move(other.m_fd);
                m_registration = std::move(other.m_registration);
            }
            return *this;
        }
        // Re-arms: fires once after `delay`, then every `period` if non-zero.
        Result<void> arm(std::chrono::nanoseconds delay, std::chrono::nanoseconds period = {});
        Result<void> disarm();

    private:
        friend class EventLoop;
        Fd m_fd;
        Registration m_registration; // Declared last: leaves epoll before m_fd closes.
    };

    static constexpr std::size_t MAX_POSTED_TASKS = 1024;

    static Result<std::unique_ptr<EventLoop>> create(); // Non-movable: registrations point at it.
    EventLoop(EventLoop const&) = delete;
    EventLoop& operator=(EventLoop const&) = delete;
    ~EventLoop();

    [[nodiscard]] Result<Registration> watch(int fd, u32 epoll_events, Handler handler);
    // The callback runs on the loop thread each time the timer expires.
    [[nodiscard]] Result<Timer> create_timer(Task on_expiry);
    // SIGTERM/SIGINT (blocked by the caller in every thread) delivered through a signalfd.
    [[nodiscard]] Result<Registration> watch_signals(std::move_only_function<void(int signal)> on_signal);

    Result<void> run_until_stopped();
    // Any thread. Idempotent.
    void stop();
    // Any thread: runs `task` on the loop thread. Returns false when the queue is full.
    bool post(Task task);

private:
    EventLoop(Fd epoll, Fd wake);
    void unwatch(u64 id);
    void drain_posted();

    struct Entry {
        int fd;
        std::shared_ptr<Handler> handler; // Shared so a handler may unwatch itself while running.
    };

    Fd m_epoll;
    Fd m_wake; // eventfd: post() and stop() write it.
    std::map<u64, Entry> m_entries;
    u64 m_next_id { 1 };
    RankedMutex<LockRank::EventLoopQueue> m_posted_lock;
    std::deque<Task> m_posted;
    std::atomic<bool> m_stop { false };
    Fd m_signal_fd; // Owned here so watch_signals() callers only keep a Registration.
};

// Blocks SIGTERM, SIGINT in the calling thread; call first in main() so every thread inherits it.
Result<void> block_termination_signals();

} // namespace vmm

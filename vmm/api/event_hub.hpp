// SPDX-License-Identifier: MIT
// EventHub: fan-out of JSON events from any thread to the GET /api/v1/events streams. Each
// subscriber has a bounded queue; when it is full the oldest event is dropped and counted, so a
// slow client never blocks the publisher (a vCPU or device thread) nor the other clients.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/ranked_mutex.hpp"

namespace vmm::api {

class EventHub;

class EventSubscription {
public:
    struct Batch {
        std::vector<std::shared_ptr<std::string const>> lines; // One serialized event each, no '\n'.
        std::uint64_t dropped = 0; // Events lost to overflow since the previous take().
    };
    // Everything queued since the previous take(); re-arms the wake callback.
    Batch take();
    // Stops delivery: after it returns the wake callback is never called again.
    void cancel();
    ~EventSubscription() { cancel(); }

    // Only EventHub can make the token, so only EventHub::subscribe() constructs subscriptions.
    class Token {
        friend class EventHub;
        Token() = default;
    };
    struct HubState;
    EventSubscription(Token, std::weak_ptr<HubState>, std::function<void()> wake, std::size_t capacity);
    EventSubscription(EventSubscription const&) = delete;
    EventSubscription& operator=(EventSubscription const&) = delete;

private:
    friend class EventHub;
    void push(std::shared_ptr<std::string const> const&); // Called with the hub lock held.

    std::weak_ptr<HubState> m_hub;
    std::function<void()> m_wake; // Guarded by the hub lock (publish calls it under that lock).
    std::size_t m_capacity;
    RankedMutex<LockRank::EventHubClient> m_mutex;
    std::deque<std::shared_ptr<std::string const>> m_queue;
    std::size_t m_queued_bytes = 0; // Sum of m_queue's line sizes.
    std::uint64_t m_dropped = 0;
    bool m_wake_pending = false;
};

class EventHub {
public:
    static constexpr std::size_t DEFAULT_QUEUE_CAPACITY = 1024;
    // Bytes a subscriber's queue holds at most (events are shared, so this also bounds all
    // queues together: each holds a suffix of the same sequence). Event sizes are guest-driven
    // (a guest_crashed message is up to 4 KiB of guest text, 6x that JSON-escaped, and a guest
    // can crash and reboot in a loop): 1024 of those would be ~24 MiB per stream otherwise.
    // An event larger than this is still delivered alone.
    static constexpr std::size_t MAX_QUEUED_BYTES = 1 << 20;
    explicit EventHub(std::size_t queue_capacity = DEFAULT_QUEUE_CAPACITY);
    ~EventHub();
    EventHub(EventHub const&) = delete;
    EventHub& operator=(EventHub const&) = delete;

    // Thread-safe and non-blocking beyond two short mutexes. `fields` must be a JSON object (or
    // null); the hub adds "event": type and "ts_ms" (Unix epoch milliseconds). Anything else in
    // `fields` is stored under "data".
    void publish(std::string_view type, nlohmann::json const& fields);
    void publish(std::string_view type);

    // `wake` is called (from the publishing thread, so it must only post/notify) when the queue
    // goes from empty-and-taken to non-empty. Keep the returned subscription alive to receive.
    std::shared_ptr<EventSubscription> subscribe(std::function<void()> wake);

    std::uint64_t published() const;
    std::uint64_t dropped() const; // Sum over all subscribers, ever.
    std::size_t subscribers() const;

    static std::uint64_t now_ms();

private:
    std::shared_ptr<EventSubscription::HubState> m_state;
};

} // namespace vmm::api


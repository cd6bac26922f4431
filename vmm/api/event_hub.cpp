// SPDX-License-Identifier: MIT
// EventHub implementation: one serialization per event, shared by every subscriber's queue.
#include "vmm/api/event_hub.hpp"

#include <algorithm>
#include <chrono>

#include <nlohmann/json.hpp>

namespace vmm::api {

struct EventSubscription::HubState {
    mutable RankedMutex<LockRank::EventHub> mutex;
    std::vector<EventSubscription*> subscribers; // Non-owning; each removes itself in cancel().
    std::size_t capacity = 0;
    std::uint64_t published = 0;
    std::uint64_t dropped = 0;
};

EventSubscription::EventSubscription(Token, std::weak_ptr<HubState> hub, std::function<void()> wake,
    std::size_t capacity)
    : m_hub(std::move(hub))
    , m_wake(std::move(wake))
    , m_capacity(capacity)
{
}

void EventSubscription::push(std::shared_ptr<std::string const> const& line)
{
    bool wake = false;
    {
        std::lock_guard lock(m_mutex);
        while (!m_queue.empty()
            && (m_queue.size() >= m_capacity || m_queued_bytes + line->size() > EventHub::MAX_QUEUED_BYTES)) {
            m_queued_bytes -= m_queue.front()->size();
            m_queue.pop_front(); // Lose the oldest: the newest state is what a client needs.
            ++m_dropped;
            if (auto hub = m_hub.lock())
                ++hub->dropped; // Hub lock is held by publish().
        }
        m_queue.push_back(line);
        m_queued_bytes += line->size();
        wake = !std::exchange(m_wake_pending, true);
    }
    if (wake && m_wake)
        m_wake();
}

EventSubscription::Batch EventSubscription::take()
{
    Batch batch;
    std::lock_guard lock(m_mutex);
    batch.lines.assign(std::make_move_iterator(m_queue.begin()), std::make_move_iterator(m_queue.end()));
    m_queue.clear();
    m_queued_bytes = 0;
    batch.dropped = std::exchange(m_dropped, 0);
    m_wake_pending = false;
    return batch;
}

void EventSubscription::cancel()
{
    auto hub = m_hub.lock();
    if (!hub)
        return;
    std::lock_guard lock(hub->mutex);
    std::erase(hub->subscribers, this);
    m_wake = nullptr;
    m_hub.reset();
}

EventHub::EventHub(std::size_t queue_capacity)
    : m_state(std::make_shared<EventSubscription::HubState>())
{
    m_state->capacity = std::max<std::size_t>(queue_capacity, 1);
}

EventHub::~EventHub()
{
    std::lock_guard lock(m_state->mutex);
    for (auto* subscriber : m_state->subscribers)
        subscriber->m_wake = nullptr;
    m_state->subscribers.clear();
}

std::uint64_t EventHub::now_ms()
{
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

void EventHub::publish(std::string_view type, nlohmann::json const& fields)
{
    std::shared_ptr<std::string const> line;
    try {
        // "event" and "ts_ms" come first so the lines read well in a terminal; the fields follow
        // (nlohmann sorts them). Fields cannot override the two.
        nlohmann::json rest = nlohmann::json::object();
        if (fields.is_object()) {
            rest = fields;
            rest.erase("event");
            rest.erase("ts_ms");
        } else if (!fields.is_null()) {
            rest["data"] = fields;
        }
        auto const dump = [](nlohmann::json const& value) {
            // Replace invalid UTF-8 instead of throwing: events may quote device-provided text.
            return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        };
        std::string text = "{\"event\":" + dump(nlohmann::json(type)) + ",\"ts_ms\":" + std::to_string(now_ms());
        if (!rest.empty())
            text += "," + dump(rest).substr(1); // Drop the object's "{" and splice its members in.
        else
            text += "}";
        line = std::make_shared<std::string const>(std::move(text));
    } catch (std::exception const&) {
        return; // Only std::bad_alloc can get here; an event is not worth dying for.
    }
    std::lock_guard lock(m_state->mutex);
    ++m_state->published;
    for (auto* subscriber : m_state->subscribers)
        subscriber->push(line);
}

void EventHub::publish(std::string_view type)
{
    publish(type, nlohmann::json());
}

std::shared_ptr<EventSubscription> EventHub::subscribe(std::function<void()> wake)
{
    auto subscription = std::make_shared<EventSubscription>(
        EventSubscription::Token {}, m_state, std::move(wake), m_state->capacity);
    std::lock_guard lock(m_state->mutex);
    m_state->subscribers.push_back(subscription.get());
    return subscription;
}

std::uint64_t EventHub::published() const
{
    std::lock_guard lock(m_state->mutex);
    return m_state->published;
}

std::uint64_t EventHub::dropped() const
{
    std::lock_guard lock(m_state->mutex);
    return m_state->dropped;
}

std::size_t EventHub::subscribers() const
{
    std::lock_guard lock(m_state->mutex);
    return m_state->subscribers.size();
}

} // namespace vmm::api

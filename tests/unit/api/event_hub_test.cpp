// SPDX-License-Identifier: MIT
// EventHub: bounded per-subscriber queues, drop-oldest with a count, wake coalescing, lifetimes.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include <nlohmann/json.hpp>

#include "vmm/api/event_hub.hpp"

namespace vmm::api {
namespace {

TEST(EventHub, PublishAddsEventTypeAndTimestamp)
{
    EventHub hub;
    auto subscription = hub.subscribe([] {});
    hub.publish("status_report", { { "available_mib", 100 }, { "event", "spoofed" } });
    auto batch = subscription->take();
    ASSERT_EQ(batch.lines.size(), 1u);
    auto event = nlohmann::json::parse(*batch.lines[0]);
    EXPECT_EQ(event["event"], "status_report") << "a field cannot override the type";
    EXPECT_EQ(event["available_mib"], 100);
    EXPECT_GT(event["ts_ms"].get<std::uint64_t>(), 1'600'000'000'000u);
    EXPECT_EQ(hub.published(), 1u);
    EXPECT_TRUE(batch.lines[0]->starts_with(R"({"event":"status_report","ts_ms":)")) << *batch.lines[0];
}

TEST(EventHub, NonObjectFieldsGoUnderData)
{
    EventHub hub;
    auto subscription = hub.subscribe([] {});
    hub.publish("guest_reboot", nlohmann::json::array({ 1, 2 }));
    hub.publish("dm_connected");
    auto batch = subscription->take();
    ASSERT_EQ(batch.lines.size(), 2u);
    EXPECT_EQ(nlohmann::json::parse(*batch.lines[0])["data"], nlohmann::json::array({ 1, 2 }));
    EXPECT_FALSE(nlohmann::json::parse(*batch.lines[1]).contains("data"));
}

TEST(EventHub, FullQueueDropsOldestAndCounts)
{
    EventHub hub(4);
    auto subscription = hub.subscribe([] {});
    for (int i = 0; i < 10; ++i)
        hub.publish("operation_progress", { { "n", i } });
    auto batch = subscription->take();
    ASSERT_EQ(batch.lines.size(), 4u);
    EXPECT_EQ(batch.dropped, 6u);
    EXPECT_EQ(nlohmann::json::parse(*batch.lines.front())["n"], 6) << "the newest events survive";
    EXPECT_EQ(nlohmann::json::parse(*batch.lines.back())["n"], 9);
    EXPECT_EQ(hub.dropped(), 6u);
    EXPECT_EQ(subscription->take().dropped, 0u) << "the count resets once reported";
}

TEST(EventHub, QueueBytesAreBoundedWhateverTheEventSizes)
{
    // Guest-driven event sizes (a 4 KiB crash message, JSON-escaped 6x): a client that does not
    // read holds at most MAX_QUEUED_BYTES, not 1024 times the largest event.
    EventHub hub;
    auto subscription = hub.subscribe([] {});
    std::string const message(24 * 1024, '\x01'); // Escaped as \u0001: 6 bytes each.
    for (int i = 0; i < 1000; ++i)
        hub.publish("guest_crashed", { { "message", message }, { "n", i } });
    auto batch = subscription->take();
    std::size_t bytes = 0;
    for (auto const& line : batch.lines)
        bytes += line->size();
    EXPECT_LE(bytes, EventHub::MAX_QUEUED_BYTES);
    ASSERT_FALSE(batch.lines.empty());
    EXPECT_GT(batch.lines.front()->size(), message.size() * 6);
    EXPECT_EQ(batch.dropped + batch.lines.size(), 1000u);
    EXPECT_EQ(hub.dropped(), batch.dropped);
    EXPECT_EQ(nlohmann::json::parse(*batch.lines.back())["n"], 999) << "the newest events are kept";
    // An event above the byte limit on its own is still delivered (alone).
    std::string const huge(EventHub::MAX_QUEUED_BYTES + 1, 'x');
    hub.publish("small");
    hub.publish("big", { { "message", huge } });
    batch = subscription->take();
    ASSERT_EQ(batch.lines.size(), 1u);
    EXPECT_GT(batch.lines[0]->size(), EventHub::MAX_QUEUED_BYTES);
    EXPECT_EQ(batch.dropped, 1u);
}

TEST(EventHub, WakeIsCalledOncePerTake)
{
    EventHub hub;
    int wakes = 0;
    auto subscription = hub.subscribe([&] { ++wakes; });
    hub.publish("a");
    hub.publish("b");
    EXPECT_EQ(wakes, 1);
    subscription->take();
    hub.publish("c");
    EXPECT_EQ(wakes, 2);
}

TEST(EventHub, CancelledSubscriptionGetsNothing)
{
    EventHub hub;
    int wakes = 0;
    auto subscription = hub.subscribe([&] { ++wakes; });
    EXPECT_EQ(hub.subscribers(), 1u);
    subscription->cancel();
    hub.publish("a");
    EXPECT_EQ(wakes, 0);
    EXPECT_TRUE(subscription->take().lines.empty());
    EXPECT_EQ(hub.subscribers(), 0u);
}

TEST(EventHub, SubscriptionMayOutliveTheHub)
{
    std::shared_ptr<EventSubscription> subscription;
    {
        EventHub hub;
        subscription = hub.subscribe([] {});
        hub.publish("a");
    }
    EXPECT_EQ(subscription->take().lines.size(), 1u);
    subscription->cancel();
}

TEST(EventHub, ConcurrentPublishersAndSubscribersAgree)
{
    EventHub hub(100'000);
    auto subscription = hub.subscribe([] {});
    std::vector<std::thread> publishers;
    for (int t = 0; t < 4; ++t)
        publishers.emplace_back([&] {
            for (int i = 0; i < 2000; ++i)
                hub.publish("operation_progress");
        });
    std::size_t received = 0;
    for (int i = 0; i < 50; ++i)
        received += subscription->take().lines.size();
    for (auto& publisher : publishers)
        publisher.join();
    received += subscription->take().lines.size();
    EXPECT_EQ(received, 8000u);
}

} // namespace
} // namespace vmm::api

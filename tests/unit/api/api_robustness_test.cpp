// SPDX-License-Identifier: MIT
// Hostile and clumsy clients: garbage bytes, half-sent requests, floods of connections, slow
// event readers. After each, the server must still answer the next good request promptly.
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/unit/api/api_test_fixture.hpp"

namespace vmm::api::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

void expect_alive(std::string const& path)
{
    auto response = roundtrip(path, http_request("GET", "/api/v1/vm"));
    ASSERT_TRUE(response.has_value()) << "the server stopped answering";
    EXPECT_EQ(response->status, 200);
}

TEST_F(ApiServerTest, GarbageBytesGet400AndTheConnectionIsClosed)
{
    start();
    for (std::string garbage : { std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15),
             std::string("GARBAGE GARBAGE GARBAGE\r\n\r\n"), std::string("GET /api/v1/vm HTTP/9.9\r\n\r\n"),
             std::string("GET /api/v1/vm HTTP/1.1\r\nBad Header Line\r\n\r\n"),
             std::string("GET /api/v1/vm HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
             std::string(1000, '\0') }) {
        Fd fd = raw_connect(m_path);
        ASSERT_TRUE(send_all(fd.get(), garbage));
        std::string pending;
        auto response = read_response(fd.get(), pending, 2s);
        ASSERT_TRUE(response.has_value()) << "no answer to " << json(garbage).dump(-1, ' ', true,
                                                   json::error_handler_t::replace);
        EXPECT_EQ(response->status, 400);
        EXPECT_TRUE(json::parse(response->body)["fault_message"].get<std::string>().starts_with("malformed HTTP request"));
        EXPECT_TRUE(closed_within(fd.get(), 2s));
    }
    expect_alive(m_path);
}

TEST_F(ApiServerTest, ChunkedBodiesGet411AndTheConnectionIsClosed)
{
    start();
    // The last one is what fuzz_api_request found: a final chunk split across two reads made
    // Boost 1.74's chunk parser assert (vmm/api/api_http.hpp refuse_after_header).
    std::vector<std::vector<std::string>> const requests {
        { "PUT /api/v1/memory/target HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
          "13\r\n{\"target_mib\": 256}\r\n0\r\n\r\n" },
        { "GET /api/v1/vm HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" },
        { "PUT /api/v1/memory/target HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", "\r", "\n" },
    };
    for (auto const& parts : requests) {
        Fd fd = raw_connect(m_path);
        ASSERT_TRUE(send_all(fd.get(), parts.front()));
        for (std::size_t i = 1; i < parts.size(); ++i) {
            std::this_thread::sleep_for(20ms); // Separate reads on the server side.
            (void)send_all(fd.get(), parts[i]); // May fail: the server answers after the header.
        }
        std::string pending;
        auto response = read_response(fd.get(), pending, 2s);
        ASSERT_TRUE(response.has_value()) << "no answer to " << parts.front();
        EXPECT_EQ(response->status, 411);
        EXPECT_TRUE(json::parse(response->body)["fault_message"].get<std::string>().starts_with("chunked request bodies"));
        EXPECT_TRUE(closed_within(fd.get(), 2s));
    }
    expect_alive(m_path);
}

TEST_F(ApiServerTest, RandomBytesNeverKillTheServer)
{
    start();
    std::uint64_t state = 0x9e3779b97f4a7c15;
    for (int round = 0; round < 50; ++round) {
        std::string bytes;
        for (int i = 0; i < 300; ++i) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes += static_cast<char>(state & 0xff);
        }
        if (round % 2)
            bytes = "PUT /api/v1/memory/target HTTP/1.1\r\n" + bytes;
        Fd fd = raw_connect(m_path);
        send_all(fd.get(), bytes);
    }
    expect_alive(m_path);
}

TEST_F(ApiServerTest, HalfSentRequestIsClosedAfterTheRequestTimeout)
{
    start(); // request_timeout = 400 ms
    Fd headers_only = raw_connect(m_path);
    ASSERT_TRUE(send_all(headers_only.get(), "GET /api/v1/vm HTTP/1.1\r\nHost: x\r\n"));
    Fd half_body = raw_connect(m_path);
    ASSERT_TRUE(send_all(half_body.get(),
        "PUT /api/v1/memory/target HTTP/1.1\r\nContent-Length: 40\r\n\r\n{\"target_mib\""));
    Fd silent = raw_connect(m_path);
    expect_alive(m_path); // Others are served while those three hang.
    auto begin = std::chrono::steady_clock::now();
    EXPECT_TRUE(closed_within(headers_only.get(), 3s));
    EXPECT_TRUE(closed_within(half_body.get(), 3s));
    EXPECT_TRUE(closed_within(silent.get(), 3s));
    EXPECT_LT(std::chrono::steady_clock::now() - begin, 2s);
    EXPECT_GE(m_server->stats().connections_timed_out.load(), 3u);
    EXPECT_EQ(m_fake.set_calls(), 0);
    expect_alive(m_path);
}

TEST_F(ApiServerTest, IdleKeepAliveConnectionIsClosedAfterTheRequestTimeout)
{
    start();
    Fd fd = raw_connect(m_path);
    std::string pending;
    ASSERT_TRUE(send_all(fd.get(), http_request("GET", "/api/v1/vm")));
    ASSERT_TRUE(read_response(fd.get(), pending).has_value());
    EXPECT_TRUE(closed_within(fd.get(), 3s));
}

TEST_F(ApiServerTest, HundredSimultaneousConnectionsAreAllAnswered)
{
    start();
    constexpr int COUNT = 100;
    std::vector<Fd> clients;
    // Open all first and leave each mid-request, so they are truly simultaneous.
    for (int i = 0; i < COUNT; ++i) {
        clients.push_back(raw_connect(m_path));
        ASSERT_TRUE(clients.back().is_open()) << i;
        ASSERT_TRUE(send_all(clients.back().get(), "GET /api/v1/memory HTTP/1.1\r\n"));
    }
    for (auto& client : clients)
        ASSERT_TRUE(send_all(client.get(), "Host: x\r\nConnection: close\r\n\r\n"));
    int answered = 0;
    for (auto& client : clients) {
        std::string pending;
        auto response = read_response(client.get(), pending, 5s);
        if (response && response->status == 200 && json::parse(response->body)["max_mib"] == 4096)
            ++answered;
    }
    EXPECT_EQ(answered, COUNT);
    EXPECT_EQ(m_server->stats().connections_rejected.load(), 0u);
    clients.clear();
    expect_alive(m_path);
}

TEST_F(ApiServerTest, ConnectionsOverTheLimitAreClosedAndServiceRecovers)
{
    auto limited = config();
    limited.max_connections = 4;
    limited.request_timeout = 5s;
    start(limited);
    std::vector<Fd> hogs;
    for (int i = 0; i < 4; ++i)
        hogs.push_back(raw_connect(m_path));
    // The server may not have accepted all four yet; wait until it has.
    for (int i = 0; i < 200 && m_server->stats().connections_open.load() < 4; ++i)
        std::this_thread::sleep_for(5ms);
    Fd extra = raw_connect(m_path);
    EXPECT_TRUE(closed_within(extra.get(), 2s));
    EXPECT_GE(m_server->stats().connections_rejected.load(), 1u);
    hogs.clear();
    for (int i = 0; i < 200 && m_server->stats().connections_open.load() > 0; ++i)
        std::this_thread::sleep_for(5ms);
    expect_alive(m_path);
}

TEST_F(ApiServerTest, EventStreamsAreCappedWith503)
{
    auto limited = config();
    limited.max_event_streams = 2;
    start(limited);
    std::vector<Fd> streams;
    for (int i = 0; i < 2; ++i) {
        streams.push_back(raw_connect(m_path));
        ASSERT_TRUE(send_all(streams.back().get(), http_request("GET", "/api/v1/events")));
        ASSERT_TRUE(recv_some(streams.back().get(), 2s).has_value());
    }
    auto refused = roundtrip(m_path, http_request("GET", "/api/v1/events"));
    ASSERT_TRUE(refused.has_value());
    EXPECT_EQ(refused->status, 503);
    EXPECT_EQ(json::parse(refused->body)["fault_message"], "too many event streams are open");
    streams.pop_back();
    for (int i = 0; i < 200 && m_server->stats().event_streams_open.load() > 1; ++i)
        std::this_thread::sleep_for(5ms);
    Fd again = raw_connect(m_path);
    ASSERT_TRUE(send_all(again.get(), http_request("GET", "/api/v1/events")));
    auto head = recv_some(again.get(), 2s);
    ASSERT_TRUE(head.has_value());
    EXPECT_TRUE(head->starts_with("HTTP/1.1 200 OK"));
}

TEST_F(ApiServerTest, SlowEventReaderNeitherBlocksPublishersNorOtherClients)
{
    auto slow_config = config();
    // If a publish waited for the stuck reader, it would wait until this timeout cuts it off:
    // longer than the whole publishing loop may take.
    slow_config.write_timeout = 3s;
    start(slow_config);
    Fd stuck = raw_connect(m_path); // Subscribes, then never reads a byte.
    ASSERT_TRUE(send_all(stuck.get(), http_request("GET", "/api/v1/events")));
    Fd reader = raw_connect(m_path);
    ASSERT_TRUE(send_all(reader.get(), http_request("GET", "/api/v1/events")));
    for (int i = 0; i < 400 && m_hub.subscribers() < 2; ++i)
        std::this_thread::sleep_for(5ms);
    ASSERT_EQ(m_hub.subscribers(), 2u);

    std::string const padding(2000, 'p');
    auto begin = std::chrono::steady_clock::now();
    for (int i = 0; i < 2000; ++i) // ~4 MB: far more than the socket buffer and the 64-event queue.
        m_hub.publish("status_report", { { "n", i }, { "padding", padding } });
    m_hub.publish("guest_reboot", { { "last", true } });
    EXPECT_LT(std::chrono::steady_clock::now() - begin, 2500ms) << "publishing must not wait for readers";

    // The live reader drains everything and ends with the last event, maybe after an
    // events_dropped notice.
    std::string received;
    bool saw_last = false;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!saw_last && std::chrono::steady_clock::now() < deadline) {
        auto chunk = recv_some(reader.get(), 5s);
        ASSERT_TRUE(chunk && !chunk->empty());
        received += *chunk;
        saw_last = received.find(R"("event":"guest_reboot")") != std::string::npos;
    }
    EXPECT_TRUE(saw_last);
    expect_alive(m_path);
    EXPECT_GT(m_hub.dropped(), 0u) << "the stuck reader lost events instead of holding them";
    // The stuck reader is cut off after the write timeout. Reading from it
    // would unstick it, so watch the server's gauge first.
    for (int i = 0; i < 800 && m_server->stats().event_streams_open.load() > 1; ++i)
        std::this_thread::sleep_for(10ms);
    EXPECT_EQ(m_server->stats().event_streams_open.load(), 1u);
    EXPECT_GE(m_server->stats().connections_timed_out.load(), 1u);
    EXPECT_TRUE(closed_within(stuck.get(), 5s));
}

TEST_F(ApiServerTest, StopClosesStreamsAndWaitsPromptly)
{
    start();
    Fd stream = raw_connect(m_path);
    ASSERT_TRUE(send_all(stream.get(), http_request("GET", "/api/v1/events")));
    Fd waiter = raw_connect(m_path);
    ASSERT_TRUE(send_all(waiter.get(), http_request("PUT", "/api/v1/memory/target",
                                           R"({"target_mib": 2048, "timeout_ms": 60000})")));
    Fd half = raw_connect(m_path);
    ASSERT_TRUE(send_all(half.get(), "GET /api"));
    std::this_thread::sleep_for(100ms);
    auto begin = std::chrono::steady_clock::now();
    m_server->stop();
    EXPECT_LT(std::chrono::steady_clock::now() - begin, 1s);
    EXPECT_TRUE(closed_within(stream.get(), 1s));
    EXPECT_TRUE(closed_within(waiter.get(), 1s));
    EXPECT_TRUE(closed_within(half.get(), 1s));
    EXPECT_FALSE(std::filesystem::exists(m_path)) << "stop() unlinks the socket";
    EXPECT_EQ(m_hub.subscribers(), 0u);
    m_hub.publish("guest_reboot"); // Nothing left to wake.
    m_server->stop();              // Idempotent.
}

} // namespace
} // namespace vmm::api::test

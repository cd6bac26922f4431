// SPDX-License-Identifier: MIT
// Black-box API tests against a running microvmm (guest-less or with a real guest): set
// MICROVMM_API_SOCKET to its socket. Without it every test is skipped (this binary is not in the
// `unit` suite). Tests that need the guest's DM driver skip unless it is connected; the last one
// changes a real guest's memory target through the socket and checks that it is reached.
#include <cstdlib>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/unit/api/raw_client.hpp"

namespace vmm::api::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class Blackbox : public ::testing::Test {
protected:
    void SetUp() override
    {
        char const* socket = std::getenv("MICROVMM_API_SOCKET");
        if (socket == nullptr || *socket == '\0')
            GTEST_SKIP() << "MICROVMM_API_SOCKET is not set";
        m_path = socket;
    }
    std::optional<RawResponse> request(std::string const& method, std::string const& target,
        std::string const& body = {})
    {
        return roundtrip(m_path, http_request(method, target, body));
    }
    json memory()
    {
        auto response = request("GET", "/api/v1/memory");
        if (!response || response->status != 200)
            return json();
        return json::parse(response->body, nullptr, false);
    }
    void expect_alive()
    {
        auto response = request("GET", "/api/v1/vm");
        ASSERT_TRUE(response.has_value()) << "the VMM stopped answering";
        EXPECT_EQ(response->status, 200);
    }
    void expect_fault(std::optional<RawResponse> const& response, int status)
    {
        ASSERT_TRUE(response.has_value());
        EXPECT_EQ(response->status, status) << response->body;
        auto body = json::parse(response->body, nullptr, false);
        EXPECT_TRUE(body.is_object() && body.contains("fault_message") && body["fault_message"].is_string())
            << response->body;
    }
    std::string m_path;
};

TEST_F(Blackbox, VmAndMemoryDescribeTheMachine)
{
    auto vm = json::parse(request("GET", "/api/v1/vm")->body);
    EXPECT_TRUE(vm["state"].is_string());
    EXPECT_GE(vm["vcpus"].get<int>(), 1);
    EXPECT_TRUE(vm["uptime_ms"].is_number_unsigned());
    auto mem = memory();
    for (char const* key : { "boot_mib", "max_mib", "floor_mib", "target_mib", "current_mib", "ballooned_mib",
             "hot_added_mib" })
        EXPECT_TRUE(mem[key].is_number_unsigned()) << key;
    EXPECT_TRUE(mem["dm"]["connected"].is_boolean());
    EXPECT_GE(mem["max_mib"].get<std::uint64_t>(), mem["boot_mib"].get<std::uint64_t>());
    EXPECT_TRUE(mem["guest_status"].is_null() || mem["guest_status"].is_object());
    EXPECT_TRUE(mem["operation"].is_null() || mem["operation"].is_object());
}

TEST_F(Blackbox, MalformedTargetRequestsAre400)
{
    for (char const* body : { "{nope", "[1]", R"({"target_mib": "1"})", R"({"target_mib": -1})",
             R"({"target_mib": 1.5})", R"({"target_mib": 1, "x": 1})", R"({})",
             R"({"target_mib": 1, "timeout_ms": 600001})" })
        expect_fault(request("PUT", "/api/v1/memory/target", body), 400);
}

TEST_F(Blackbox, TargetOutsideTheRangeIs400AndAValidTargetWithoutTheDriverIs503)
{
    // A target outside [floor, max] is a bad request whether or not the guest's driver is there;
    // a valid one can only wait for the driver (503 + Retry-After).
    auto mem = memory();
    bool const connected = mem["dm"]["connected"].get<bool>();
    expect_fault(request("PUT", "/api/v1/memory/target",
                     json { { "target_mib", mem["max_mib"].get<std::uint64_t>() + 1 } }.dump()),
        400);
    if (auto floor = mem["floor_mib"].get<std::uint64_t>(); floor > 0)
        expect_fault(request("PUT", "/api/v1/memory/target", json { { "target_mib", floor - 1 } }.dump()), 400);
    if (connected)
        return;
    auto valid = request("PUT", "/api/v1/memory/target", json { { "target_mib", mem["boot_mib"].get<std::uint64_t>() } }.dump());
    expect_fault(valid, 503);
    ASSERT_TRUE(valid.has_value());
    ASSERT_TRUE(valid->headers.contains("retry-after"));
    EXPECT_EQ(valid->headers.at("retry-after"), "1");
}

TEST_F(Blackbox, UnknownPathsWrongMethodsAndBigBodies)
{
    expect_fault(request("GET", "/api/v1/unknown"), 404);
    expect_fault(request("POST", "/api/v1/memory", "{}"), 405);
    expect_fault(request("GET", "/api/v1/memory/target"), 405);
    expect_fault(request("PUT", "/api/v1/memory/target", std::string(65 * 1024, ' ')), 413);
    expect_fault(roundtrip(m_path, "PUT /api/v1/memory/target HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n"), 413);
    // Beyond 64 bits and negative: not a length at all.
    for (char const* length : { "99999999999999999999999999", "-1", "12abc" }) {
        auto response = roundtrip(m_path,
            std::string("PUT /api/v1/memory/target HTTP/1.1\r\nContent-Length: ") + length + "\r\n\r\n");
        ASSERT_TRUE(response.has_value()) << length;
        EXPECT_TRUE(response->status == 400 || response->status == 413) << length << ": " << response->status;
    }
    expect_alive();
}

TEST_F(Blackbox, GarbageAndHalfSentRequestsLeaveTheVmRunning)
{
    for (std::string garbage : { std::string("\x16\x03\x01\x00\xff garbage\r\n\r\n"), std::string(4096, '\0'),
             std::string("GET / HTTP/7\r\n\r\n") }) {
        Fd fd = raw_connect(m_path);
        send_all(fd.get(), garbage);
        std::string pending;
        auto response = read_response(fd.get(), pending, 5s);
        ASSERT_TRUE(response.has_value());
        EXPECT_EQ(response->status, 400);
    }
    Fd half = raw_connect(m_path);
    ASSERT_TRUE(send_all(half.get(), "PUT /api/v1/memory/target HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"tar"));
    expect_alive(); // Served while the half request hangs.
    EXPECT_TRUE(closed_within(half.get(), 15s)) << "the server's request timeout is 10 s";
    expect_alive();
}

TEST_F(Blackbox, HundredSimultaneousConnectionsThenAGoodRequest)
{
    std::vector<Fd> clients;
    for (int i = 0; i < 100; ++i) {
        clients.push_back(raw_connect(m_path));
        ASSERT_TRUE(clients.back().is_open());
        ASSERT_TRUE(send_all(clients.back().get(), "GET /api/v1/vm HTTP/1.1\r\n"));
    }
    for (auto& client : clients)
        ASSERT_TRUE(send_all(client.get(), "Connection: close\r\n\r\n"));
    int ok = 0;
    for (auto& client : clients) {
        std::string pending;
        auto response = read_response(client.get(), pending, 10s);
        ok += response && response->status == 200;
    }
    EXPECT_EQ(ok, 100);
    clients.clear();
    expect_alive();
}

TEST_F(Blackbox, EventsAndMetricsAreServed)
{
    Fd fd = raw_connect(m_path);
    ASSERT_TRUE(send_all(fd.get(), http_request("GET", "/api/v1/events")));
    auto head = recv_some(fd.get(), 5s);
    ASSERT_TRUE(head.has_value());
    EXPECT_TRUE(head->starts_with("HTTP/1.1 200 OK\r\n"));
    EXPECT_NE(head->find("application/x-ndjson"), std::string::npos);
    auto metrics = request("GET", "/metrics");
    ASSERT_TRUE(metrics.has_value());
    EXPECT_EQ(metrics->status, 200);
    EXPECT_NE(metrics->body.find("# TYPE microvmm_memory_target_bytes gauge"), std::string::npos);
}

// End to end: a real guest's memory target set through the socket is reached.
TEST_F(Blackbox, RealGuestReachesATargetSetThroughTheSocket)
{
    auto mem = memory();
    for (int i = 0; i < 120 && !mem["dm"]["connected"].get<bool>(); ++i) {
        std::this_thread::sleep_for(1s);
        mem = memory();
    }
    if (!mem["dm"]["connected"].get<bool>())
        GTEST_SKIP() << "no DM driver connected (guest-less VMM?)";
    auto const boot = mem["current_mib"].get<std::uint64_t>();
    auto const floor = mem["floor_mib"].get<std::uint64_t>();
    // A booted guest has touched some of its RAM: the host holds part of the memfd.
    ASSERT_TRUE(mem["host"].is_object()) << mem.dump();
    EXPECT_GT(mem["host"]["boot_ram_resident_mib"].get<std::uint64_t>(), 0u);
    EXPECT_LE(mem["host"]["boot_ram_resident_mib"].get<std::uint64_t>(), mem["boot_mib"].get<std::uint64_t>());
    std::uint64_t const shrink = std::max(floor, boot - std::min<std::uint64_t>(boot / 4, 128));
    ASSERT_LT(shrink, boot) << "the guest is already at its floor";

    // Watch the event stream while the operation runs.
    Fd events = raw_connect(m_path);
    ASSERT_TRUE(send_all(events.get(), http_request("GET", "/api/v1/events")));
    ASSERT_TRUE(recv_some(events.get(), 5s).has_value());

    // The server holds the answer up to timeout_ms (120 s): read for a little longer.
    auto const wait = 130s;
    auto response = roundtrip(m_path,
        http_request("PUT", "/api/v1/memory/target", json { { "target_mib", shrink }, { "timeout_ms", 120000 } }.dump()),
        wait);
    ASSERT_TRUE(response.has_value());
    ASSERT_EQ(response->status, 200) << response->body;
    auto op = json::parse(response->body);
    EXPECT_EQ(op["state"], "done") << response->body;
    EXPECT_EQ(memory()["current_mib"].get<std::uint64_t>(), shrink);

    std::string stream;
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (stream.find("\"operation_done\"") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
        auto chunk = recv_some(events.get(), 1s);
        if (chunk)
            stream += *chunk;
    }
    EXPECT_NE(stream.find("\"operation_done\""), std::string::npos) << stream;

    response = roundtrip(m_path,
        http_request("PUT", "/api/v1/memory/target", json { { "target_mib", boot }, { "timeout_ms", 120000 } }.dump()),
        wait);
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 200) << response->body;
    EXPECT_EQ(memory()["current_mib"].get<std::uint64_t>(), boot);
}

} // namespace
} // namespace vmm::api::test

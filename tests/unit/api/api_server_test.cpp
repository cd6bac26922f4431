// SPDX-License-Identifier: MIT
// Every endpoint and status code of the REST API, spoken as raw HTTP over the real socket.
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/unit/api/api_test_fixture.hpp"
#include "vmm/api/api_events.hpp"

namespace vmm::api::test {
namespace {

using nlohmann::json;

void expect_fault(std::optional<RawResponse> const& response, int status, std::string const& message)
{
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, status);
    EXPECT_EQ(response->headers.at("content-type"), "application/json");
    auto body = json::parse(response->body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << response->body;
    EXPECT_EQ(body["fault_message"], message);
}

TEST_F(ApiServerTest, GetVmReturnsStateVcpusAndUptime)
{
    start();
    auto response = request("GET", "/api/v1/vm");
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 200);
    auto body = json::parse(response->body);
    EXPECT_EQ(body["state"], "running");
    EXPECT_EQ(body["vcpus"], 2);
    EXPECT_EQ(body["uptime_ms"], 12345);
    EXPECT_EQ(body["boot_count"], 1);
}

TEST_F(ApiServerTest, PutShutdownAnswers202ThenConflictAndChecksItsBody)
{
    start();
    expect_fault(request("GET", "/api/v1/vm/shutdown"), 405, "method not allowed; use PUT");
    expect_fault(request("PUT", "/api/v1/vm/shutdown", R"({"reboot": 1})"), 400, "field 'reboot' must be true or false");
    auto response = request("PUT", "/api/v1/vm/shutdown", R"({"timeout_ms": 1500})");
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 202);
    auto body = json::parse(response->body);
    EXPECT_EQ(body["method"], "guest");
    EXPECT_EQ(body["timeout_ms"], 1500);
    EXPECT_EQ(body["reboot"], false);
    expect_fault(request("PUT", "/api/v1/vm/shutdown", ""), 409, "a shutdown is already under way (requested)");
}

TEST_F(ApiServerTest, PutNetLinkSwitchesTheLinkAndChecksNicAndBody)
{
    start();
    auto response = request("PUT", "/api/v1/net/0/link", R"({"up": false})");
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 200);
    auto body = json::parse(response->body);
    EXPECT_EQ(body["link"], "down");
    EXPECT_EQ(body["tap"], "tap0");
    EXPECT_EQ(body["rx"]["dropped"], 3);
    EXPECT_EQ(body["rx"]["dropped_by"]["link_down"], 3);
    EXPECT_EQ(json::parse(request("PUT", "/api/v1/net/0/link", R"({"up": true})")->body)["link"], "up");
    expect_fault(request("GET", "/api/v1/net/0/link"), 405, "method not allowed; use PUT");
    expect_fault(request("PUT", "/api/v1/net/1/link", R"({"up": true})"), 404, "no NIC 1 (this VM has 1)");
    expect_fault(request("PUT", "/api/v1/net/x/link", R"({"up": true})"), 404, "no such NIC");
    expect_fault(request("PUT", "/api/v1/net//link", R"({"up": true})"), 404, "no such endpoint");
    expect_fault(request("PUT", "/api/v1/net/0/link", R"({"up": 1})"), 400, "field 'up' must be true or false");
    expect_fault(request("PUT", "/api/v1/net/0/link", R"({})"), 400, "missing field 'up'");
    expect_fault(request("PUT", "/api/v1/net/0/link", R"({"up": true, "speed": 1})"), 400, "unknown field 'speed'");
}

TEST_F(ApiServerTest, GetMemoryReturnsEveryFieldWithNullsWhenUnknown)
{
    start();
    auto body = json::parse(request("GET", "/api/v1/memory")->body);
    EXPECT_EQ(body["boot_mib"], 1024);
    EXPECT_EQ(body["max_mib"], 4096);
    EXPECT_EQ(body["target_mib"], 1024);
    EXPECT_EQ(body["current_mib"], 1024);
    EXPECT_EQ(body["ballooned_mib"], 0);
    EXPECT_EQ(body["hot_added_mib"], 0);
    EXPECT_EQ(body["floor_mib"], 256);
    EXPECT_EQ(body["dm"], json({ { "connected", true }, { "protocol_version", 0x20000 } }));
    EXPECT_TRUE(body["guest_status"].is_null());
    EXPECT_TRUE(body["operation"].is_null());

    m_fake.set_guest_status({ 300, 500, 800 });
    ASSERT_EQ(m_fake.set_target(512)->state, "running");
    body = json::parse(request("GET", "/api/v1/memory")->body);
    EXPECT_EQ(body["guest_status"], json({ { "available_mib", 300 }, { "committed_mib", 500 }, { "age_ms", 800 } }));
    EXPECT_EQ(body["operation"]["kind"], "balloon");
    EXPECT_EQ(body["operation"]["target_mib"], 512);
    EXPECT_EQ(body["target_mib"], 512);
}

TEST_F(ApiServerTest, PolicyEndpointSwitchesModeAndAutoRefusesManualTargets)
{
    start();
    auto body = json::parse(request("GET", "/api/v1/memory")->body);
    EXPECT_EQ(body["policy"]["mode"], "manual");
    EXPECT_TRUE(body["last_decision"].is_null());
    expect_fault(request("POST", "/api/v1/memory/policy", R"({"mode": "auto"})"), 405, "method not allowed; use GET, PUT");
    expect_fault(request("PUT", "/api/v1/memory/policy", R"({"mode": "automatic"})"), 400,
        "field 'mode' must be \"manual\" or \"auto\"");
    expect_fault(request("PUT", "/api/v1/memory/policy", R"({})"), 400, "request body names no policy field");
    expect_fault(request("PUT", "/api/v1/memory/policy", R"({"weight": 101})"), 400, "field 'weight' must be 0..100");
    auto response = request("PUT", "/api/v1/memory/policy", R"({"mode": "auto", "weight": 80})");
    ASSERT_EQ(response->status, 200u);
    EXPECT_EQ(json::parse(response->body)["mode"], "auto");
    EXPECT_EQ(json::parse(request("GET", "/api/v1/memory/policy")->body)["weight"], 80);
    expect_fault(request("PUT", "/api/v1/memory/target", R"({"target_mib": 512})"), 409,
        "the memory policy is \"auto\": it sets the target; PUT /api/v1/memory/policy {\"mode\": \"manual\"} first");
    ASSERT_EQ(request("PUT", "/api/v1/memory/policy", R"({"mode": "manual"})")->status, 200u);
    EXPECT_EQ(request("PUT", "/api/v1/memory/target", R"({"target_mib": 512})")->status, 202u);
}

TEST_F(ApiServerTest, CeilingEndpointSetsRenewsShowsAndClearsTheLease)
{
    start();
    expect_fault(request("GET", "/api/v1/memory/ceiling"), 404, "no host ceiling in force");
    expect_fault(request("POST", "/api/v1/memory/ceiling", R"({"mib": 1, "lease_ms": 1000})"), 405,
        "method not allowed; use GET, PUT, DELETE");
    expect_fault(request("PUT", "/api/v1/memory/ceiling", R"({"mib": 512})"), 400, "missing field 'lease_ms'");
    expect_fault(request("PUT", "/api/v1/memory/ceiling", R"({"lease_ms": 1000})"), 400, "missing field 'mib'");
    expect_fault(request("PUT", "/api/v1/memory/ceiling", R"({"mib": 0, "lease_ms": 1000})"), 400,
        "field 'mib' must be at least 1");
    expect_fault(request("PUT", "/api/v1/memory/ceiling", R"({"mib": -5, "lease_ms": 1000})"), 400,
        "field 'mib' must be an unsigned integer");
    expect_fault(request("PUT", "/api/v1/memory/ceiling", R"({"mib": 512, "lease_ms": 99})"), 400,
        "field 'lease_ms' must be 100..600000 (got 99)");
    expect_fault(request("PUT", "/api/v1/memory/ceiling", R"({"mib": 512, "lease_ms": 600001})"), 400,
        "field 'lease_ms' must be 100..600000 (got 600001)");
    expect_fault(request("PUT", "/api/v1/memory/ceiling", R"({"mib": 512, "lease_ms": 1000, "x": 1})"), 400,
        "unknown field 'x'");
    EXPECT_TRUE(json::parse(request("GET", "/api/v1/memory")->body)["ceiling"].is_null());

    // Manual mode keeps the ceiling but does not apply it.
    auto response = request("PUT", "/api/v1/memory/ceiling", R"({"mib": 768, "lease_ms": 3000})");
    ASSERT_EQ(response->status, 200);
    EXPECT_EQ(json::parse(response->body),
        json({ { "mib", 768 }, { "lease_ms", 3000 }, { "expires_in_ms", 3000 }, { "applied", false } }));
    ASSERT_EQ(request("PUT", "/api/v1/memory/policy", R"({"mode": "auto"})")->status, 200);
    response = request("PUT", "/api/v1/memory/ceiling", R"({"mib": 640, "lease_ms": 3000})");
    EXPECT_EQ(json::parse(response->body)["applied"], true);
    auto memory = json::parse(request("GET", "/api/v1/memory")->body);
    EXPECT_EQ(memory["ceiling"]["mib"], 640);
    EXPECT_EQ(json::parse(request("GET", "/api/v1/memory/ceiling")->body)["mib"], 640);
    auto metrics = request("GET", "/metrics")->body;
    EXPECT_NE(metrics.find("microvmm_memory_ceiling_bytes 671088640\n"), std::string::npos);
    EXPECT_NE(metrics.find("microvmm_memory_ceiling_changes_total 2\n"), std::string::npos);
    EXPECT_NE(metrics.find("microvmm_memory_ceiling_expiries_total 0\n"), std::string::npos);

    // DELETE: the arbiter lets go.
    response = request("DELETE", "/api/v1/memory/ceiling");
    EXPECT_EQ(response->status, 204);
    EXPECT_TRUE(response->body.empty());
    EXPECT_TRUE(json::parse(request("GET", "/api/v1/memory")->body)["ceiling"].is_null());
    EXPECT_NE(request("GET", "/metrics")->body.find("microvmm_memory_ceiling_bytes 0\n"), std::string::npos);
}

TEST_F(ApiServerTest, PutTargetAnswers202WithTheRunningOperation)
{
    start();
    auto response = request("PUT", "/api/v1/memory/target", R"({"target_mib": 512})");
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 202);
    auto body = json::parse(response->body);
    EXPECT_EQ(body["state"], "running");
    EXPECT_EQ(body["kind"], "balloon");
    EXPECT_EQ(body["from_mib"], 1024);
    EXPECT_EQ(body["target_mib"], 512);
    EXPECT_EQ(body["remaining_mib"], 512);
    EXPECT_EQ(response->headers.at("location"), "/api/v1/memory/operations/" + std::to_string(body["id"].get<int>()));
    EXPECT_EQ(m_fake.last()->target_mib, 512u);
}

TEST_F(ApiServerTest, PutTargetAlreadyReachedAnswers200)
{
    start();
    auto response = request("PUT", "/api/v1/memory/target", R"({"target_mib": 1024})");
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(json::parse(response->body)["state"], "done");
}

TEST_F(ApiServerTest, PutTargetWithTimeoutAnswers200WhenTheOperationFinishesInTime)
{
    start();
    std::thread guest([&] {
        while (!m_fake.last())
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        m_fake.finish();
    });
    auto begin = std::chrono::steady_clock::now();
    auto response = request("PUT", "/api/v1/memory/target", R"({"target_mib": 2048, "timeout_ms": 4000})");
    guest.join();
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(json::parse(response->body)["state"], "done");
    EXPECT_EQ(json::parse(response->body)["kind"], "hot_add");
    EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(3));
}

TEST_F(ApiServerTest, PutTargetWithTimeoutAnswers202WhenTheOperationIsStillRunning)
{
    start();
    auto begin = std::chrono::steady_clock::now();
    auto response = request("PUT", "/api/v1/memory/target", R"({"target_mib": 2048, "timeout_ms": 150})");
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 202);
    EXPECT_EQ(json::parse(response->body)["state"], "running");
    EXPECT_GE(std::chrono::steady_clock::now() - begin, std::chrono::milliseconds(150));
}

TEST_F(ApiServerTest, WaitingRequestDoesNotStallOtherClients)
{
    start();
    Fd waiter = raw_connect(m_path);
    ASSERT_TRUE(send_all(waiter.get(), http_request("PUT", "/api/v1/memory/target",
                                           R"({"target_mib": 2048, "timeout_ms": 3000})")));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto begin = std::chrono::steady_clock::now();
    auto other = request("GET", "/api/v1/vm");
    ASSERT_TRUE(other.has_value());
    EXPECT_EQ(other->status, 200);
    EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::milliseconds(500));
    m_fake.finish();
    std::string pending;
    auto waited = read_response(waiter.get(), pending);
    ASSERT_TRUE(waited.has_value());
    EXPECT_EQ(waited->status, 200);
}

TEST_F(ApiServerTest, PutTargetRejectsMalformedBodiesWith400)
{
    start();
    expect_fault(request("PUT", "/api/v1/memory/target", "{not json"), 400, "request body is not valid JSON");
    expect_fault(request("PUT", "/api/v1/memory/target", ""), 400, "request body is not valid JSON");
    expect_fault(request("PUT", "/api/v1/memory/target", "[512]"), 400, "request body must be a JSON object");
    expect_fault(request("PUT", "/api/v1/memory/target", R"({"target_mib": "512"})"), 400,
        "field 'target_mib' must be an unsigned integer");
    expect_fault(request("PUT", "/api/v1/memory/target", R"({"target_mib": -5})"), 400,
        "field 'target_mib' must be an unsigned integer");
    expect_fault(request("PUT", "/api/v1/memory/target", R"({"target_mib": 512, "force": true})"), 400,
        "unknown field 'force'");
    expect_fault(request("PUT", "/api/v1/memory/target", R"({"target_mib": 512, "timeout_ms": 1e9})"), 400,
        "field 'timeout_ms' must be an unsigned integer");
    EXPECT_EQ(m_fake.set_calls(), 0) << "invalid requests never reach the backend";
}

TEST_F(ApiServerTest, PutTargetOutsideTheAllowedRangeIs400)
{
    start();
    expect_fault(request("PUT", "/api/v1/memory/target", R"({"target_mib": 4097})"), 400,
        "target_mib 4097 is above max_memory_mib 4096");
    expect_fault(request("PUT", "/api/v1/memory/target", R"({"target_mib": 255})"), 400,
        "target_mib 255 is below the safe floor of 256 MiB");
    EXPECT_EQ(request("PUT", "/api/v1/memory/target", R"({"target_mib": 4096})")->status, 202);
    EXPECT_EQ(request("PUT", "/api/v1/memory/target", R"({"target_mib": 256})")->status, 202);
}

TEST_F(ApiServerTest, PutTargetWhileTheDmDriverIsNotConnectedIs503WithRetryAfter)
{
    m_fake.set_connected(false);
    start();
    auto response = request("PUT", "/api/v1/memory/target", R"({"target_mib": 512})");
    expect_fault(response, 503, "the guest's Dynamic Memory driver is not connected yet");
    EXPECT_EQ(response->headers.at("retry-after"), "1");
}

TEST_F(ApiServerTest, GetOperationById)
{
    start();
    auto id = json::parse(request("PUT", "/api/v1/memory/target", R"({"target_mib": 512})")->body)["id"].get<int>();
    m_fake.advance(100);
    auto response = request("GET", "/api/v1/memory/operations/" + std::to_string(id));
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(json::parse(response->body)["done_mib"], 100);
    expect_fault(request("GET", "/api/v1/memory/operations/999"), 404, "no operation 999");
    expect_fault(request("GET", "/api/v1/memory/operations/x1"), 404, "no such operation");
}

TEST_F(ApiServerTest, UnknownPathIs404AndWrongMethodIs405WithAllow)
{
    start();
    expect_fault(request("GET", "/api/v1/nope"), 404, "no such endpoint");
    expect_fault(request("GET", "/"), 404, "no such endpoint");
    auto response = request("POST", "/api/v1/memory", "{}");
    expect_fault(response, 405, "method not allowed; use GET");
    EXPECT_EQ(response->headers.at("allow"), "GET");
    response = request("GET", "/api/v1/memory/target");
    expect_fault(response, 405, "method not allowed; use PUT");
    EXPECT_EQ(response->headers.at("allow"), "PUT");
    EXPECT_EQ(request("DELETE", "/api/v1/vm")->status, 405);
    EXPECT_EQ(request("PUT", "/metrics", "{}")->status, 405);
    EXPECT_EQ(request("GET", "/api/v1/vm?verbose=1")->status, 200) << "the query string is ignored";
}

TEST_F(ApiServerTest, BodyOver64KiBIs413)
{
    start();
    std::string body = R"({"target_mib": 512, "pad": ")" + std::string(70 * 1024, 'x') + "\"}";
    expect_fault(request("PUT", "/api/v1/memory/target", body), 413, "request body exceeds 65536 bytes");
    std::string just_fits = R"({"target_mib": 512 )" + std::string(64 * 1024 - 20, ' ') + "}";
    ASSERT_EQ(just_fits.size(), 64u * 1024);
    EXPECT_EQ(request("PUT", "/api/v1/memory/target", just_fits)->status, 202);
}

TEST_F(ApiServerTest, AbsurdContentLengthIs413WithoutWaitingForTheBody)
{
    start();
    auto response = roundtrip(m_path,
        "PUT /api/v1/memory/target HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{\"target_mib\": 1}");
    expect_fault(response, 413, "request body exceeds 65536 bytes");
    response = roundtrip(m_path,
        "PUT /api/v1/memory/target HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999999999999999999\r\n\r\n");
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 400) << "a Content-Length that overflows is malformed";
}

TEST_F(ApiServerTest, ExpectContinueGetsAnInterimResponseBeforeTheBody)
{
    start();
    Fd fd = raw_connect(m_path);
    std::string const body = R"({"target_mib": 512})";
    ASSERT_TRUE(send_all(fd.get(), "PUT /api/v1/memory/target HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                   "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n"));
    std::string pending;
    auto interim = read_response(fd.get(), pending);
    ASSERT_TRUE(interim.has_value());
    EXPECT_EQ(interim->status, 100);
    ASSERT_TRUE(send_all(fd.get(), body));
    auto response = read_response(fd.get(), pending);
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 202);
}

TEST_F(ApiServerTest, HugeHeaderSectionIs431)
{
    start();
    auto response = roundtrip(m_path, "GET /api/v1/vm HTTP/1.1\r\nX-Pad: " + std::string(20 * 1024, 'h') + "\r\n\r\n");
    expect_fault(response, 431, "request header section too large");
    EXPECT_EQ(request("GET", "/api/v1/vm")->status, 200);
}

TEST_F(ApiServerTest, KeepAliveServesSeveralRequestsOnOneConnection)
{
    start();
    Fd fd = raw_connect(m_path);
    std::string pending;
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(send_all(fd.get(), http_request("GET", "/api/v1/vm")));
        auto response = read_response(fd.get(), pending);
        ASSERT_TRUE(response.has_value());
        EXPECT_EQ(response->status, 200);
    }
    // Pipelined: two requests in one write.
    ASSERT_TRUE(send_all(fd.get(), http_request("GET", "/api/v1/vm") + http_request("GET", "/api/v1/memory")));
    EXPECT_EQ(read_response(fd.get(), pending)->status, 200);
    EXPECT_TRUE(json::parse(read_response(fd.get(), pending)->body).contains("max_mib"));
}

TEST_F(ApiServerTest, MetricsArePrometheusText)
{
    start();
    m_fake.set_guest_status({ 300, 500, 800 });
    m_fake.count_rejected_range();
    request("PUT", "/api/v1/memory/target", R"({"target_mib": 512})");
    auto response = request("GET", "/metrics");
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->headers.at("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    auto const& text = response->body;
    EXPECT_NE(text.find("# HELP microvmm_memory_target_bytes "), std::string::npos);
    EXPECT_NE(text.find("# TYPE microvmm_memory_target_bytes gauge\nmicrovmm_memory_target_bytes 536870912\n"),
        std::string::npos);
    EXPECT_NE(text.find("microvmm_memory_current_bytes 1073741824\n"), std::string::npos);
    EXPECT_NE(text.find("microvmm_guest_committed_bytes 524288000\n"), std::string::npos);
    EXPECT_NE(text.find("# TYPE microvmm_memory_operations_started_total counter\n"
                        "microvmm_memory_operations_started_total 1\n"),
        std::string::npos);
    EXPECT_NE(text.find("microvmm_dm_rejected_guest_ranges_total 1\n"), std::string::npos);
    EXPECT_NE(text.find("microvmm_memory_operations_finished_total{result=\"done\"} 0\n"), std::string::npos);
    EXPECT_NE(text.find("microvmm_dm_connected 1\n"), std::string::npos);
    EXPECT_NE(text.find("# TYPE microvmm_host_resident_bytes gauge\n"
                        "microvmm_host_resident_bytes{region=\"boot_ram\"} 314572805\n"
                        "microvmm_host_resident_bytes{region=\"hot_add\"} 7340032\n"),
        std::string::npos);
    EXPECT_NE(text.find("fake_extra 7\n"), std::string::npos) << "backend extras are appended";
    // Every sample line belongs to a metric announced by HELP and TYPE lines.
    std::istringstream lines(text);
    std::string line;
    std::set<std::string> typed;
    while (std::getline(lines, line)) {
        if (line.starts_with("# TYPE ")) {
            typed.insert(line.substr(7, line.find(' ', 7) - 7));
        } else if (!line.starts_with("#")) {
            EXPECT_TRUE(typed.contains(line.substr(0, line.find_first_of(" {")))) << line;
        }
    }
}

TEST_F(ApiServerTest, EventStreamDeliversPublishedEventsAsJsonLines)
{
    start();
    Fd fd = raw_connect(m_path);
    ASSERT_TRUE(send_all(fd.get(), http_request("GET", "/api/v1/events")));
    std::string received;
    while (received.find("\r\n\r\n") == std::string::npos) {
        auto chunk = recv_some(fd.get(), std::chrono::seconds(2));
        ASSERT_TRUE(chunk && !chunk->empty());
        received += *chunk;
    }
    EXPECT_TRUE(received.starts_with("HTTP/1.1 200 OK\r\n"));
    EXPECT_NE(received.find("Content-Type: application/x-ndjson\r\n"), std::string::npos);
    received.erase(0, received.find("\r\n\r\n") + 4);

    publish_dm_connected(m_hub, true, 0x20000);
    publish_status_report(m_hub, { 300, 500, 0 });
    ASSERT_EQ(m_fake.set_target(512)->state, "running");
    m_fake.advance(128);
    m_fake.finish();
    publish_rejected_guest_range(m_hub, "not ballooned", 0x1000, 2);
    publish_guest_reboot(m_hub, 2);
    std::vector<json> events;
    while (events.size() < 6) {
        auto newline = received.find('\n');
        if (newline == std::string::npos) {
            auto chunk = recv_some(fd.get(), std::chrono::seconds(2));
            ASSERT_TRUE(chunk && !chunk->empty()) << "got only " << events.size() << " events";
            received += *chunk;
            continue;
        }
        events.push_back(json::parse(received.substr(0, newline)));
        received.erase(0, newline + 1);
    }
    std::vector<std::string> types;
    for (auto const& event : events) {
        types.push_back(event["event"]);
        EXPECT_TRUE(event["ts_ms"].is_number_unsigned());
    }
    EXPECT_EQ(types, (std::vector<std::string> { "dm_connected", "status_report", "operation_progress",
                         "operation_done", "rejected_guest_range", "guest_reboot" }));
    EXPECT_EQ(events[0]["connected"], true);
    EXPECT_EQ(events[0]["protocol_version"], 0x20000);
    EXPECT_EQ(events[1]["available_mib"], 300);
    EXPECT_EQ(events[1]["committed_mib"], 500);
    EXPECT_EQ(events[2]["done_mib"], 128);
    EXPECT_EQ(events[2]["state"], "running");
    EXPECT_EQ(events[2]["target_mib"], 512);
    EXPECT_EQ(events[3]["state"], "done");
    EXPECT_EQ(events[3]["remaining_mib"], 0);
    EXPECT_EQ(events[4], json({ { "event", "rejected_guest_range" }, { "ts_ms", events[4]["ts_ms"] },
                             { "reason", "not ballooned" }, { "start_pfn", 0x1000 }, { "page_count", 2 } }));
    EXPECT_EQ(events[5]["boot_count"], 2);
    EXPECT_EQ(m_server->stats().event_streams_open.load(), 1u);
}

TEST_F(ApiServerTest, ClosedEventStreamUnsubscribes)
{
    start();
    {
        Fd fd = raw_connect(m_path);
        ASSERT_TRUE(send_all(fd.get(), http_request("GET", "/api/v1/events")));
        ASSERT_TRUE(recv_some(fd.get(), std::chrono::seconds(2)).has_value());
        EXPECT_EQ(m_hub.subscribers(), 1u);
    }
    for (int i = 0; i < 200 && m_hub.subscribers() != 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(m_hub.subscribers(), 0u);
    EXPECT_EQ(m_server->stats().event_streams_open.load(), 0u);
}

} // namespace
} // namespace vmm::api::test

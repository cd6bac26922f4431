// SPDX-License-Identifier: MIT
// ApiRouter: maps one parsed HTTP request to a response, an event stream or a wait for an
// operation. Independent of the transport (Beast lives only in api_server.cpp).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "vmm/api/api_backend.hpp"

namespace vmm::api {

class EventHub;

// Counters the server keeps about itself, rendered by GET /metrics.
struct ServerStats {
    std::atomic<std::uint64_t> requests { 0 };
    std::atomic<std::uint64_t> responses_4xx { 0 };
    std::atomic<std::uint64_t> responses_5xx { 0 };
    std::atomic<std::uint64_t> connections_accepted { 0 };
    std::atomic<std::uint64_t> connections_rejected { 0 }; // Over the connection limit.
    std::atomic<std::uint64_t> connections_timed_out { 0 };
    std::atomic<std::uint64_t> connections_open { 0 };
    std::atomic<std::uint64_t> event_streams_open { 0 };
};

struct HttpRequest {
    std::string method; // "GET", "PUT"...
    std::string target; // "/api/v1/memory?x" (query ignored)
    std::string body;
};

struct HttpResponse {
    unsigned status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers; // Extra: Allow, Location, Retry-After.
};

struct StreamEvents { };
struct WaitForOperation {
    Operation operation; // As set_target() returned it (state "running").
    std::chrono::milliseconds timeout;
};
using RouteResult = std::variant<HttpResponse, StreamEvents, WaitForOperation>;

HttpResponse error_response(unsigned status, std::string_view message);
// 200 with the operation once it is no longer running, 202 (+ Location) while it is.
HttpResponse operation_response(Operation const&);

class ApiRouter {
public:
    ApiRouter(ApiBackend& backend, EventHub& hub, ServerStats const& stats)
        : m_backend(backend)
        , m_hub(hub)
        , m_stats(stats)
    {
    }
    RouteResult route(HttpRequest const&);

private:
    HttpResponse set_target(std::string const& body, RouteResult& result);
    ApiBackend& m_backend;
    EventHub& m_hub;
    ServerStats const& m_stats;
};

} // namespace vmm::api

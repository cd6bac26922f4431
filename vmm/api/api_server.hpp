// SPDX-License-Identifier: MIT
// ApiServer: HTTP/1.1 (Boost.Beast) on a Unix socket, served by one Asio thread of its own.
// Nothing it does can block a vCPU: it only calls the thread-safe ApiBackend and reads EventHub
// queues; a slow, stuck or hostile client is bounded by limits and timeouts.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "base/error.hpp"
#include "vmm/api/api_backend.hpp"
#include "vmm/api/api_router.hpp"
#include "vmm/api/event_hub.hpp"

namespace vmm::api {

struct ApiServerConfig {
    std::string socket_path;
    // A request (headers and body) must arrive within this, counted from the first byte we wait
    // for; an idle keep-alive connection is closed after it too. Tests shorten it.
    std::chrono::milliseconds request_timeout { 10'000 };
    // A response or event write must complete within this; a client that stops reading is closed.
    std::chrono::milliseconds write_timeout { 10'000 };
    // How often a PUT .../target with timeout_ms re-checks its operation.
    std::chrono::milliseconds wait_poll_interval { 25 };
    std::size_t max_connections = 256; // Further connections are accepted and closed at once.
    // Event streams live long; capping them keeps connection slots for requests: 503 past it.
    std::size_t max_event_streams = 64;
    std::size_t body_limit = 64 * 1024;  // Larger bodies: 413.
    std::size_t header_limit = 16 * 1024; // Larger header sections: 431.
};

class ApiServer {
public:
    // Binds the socket (see listen_unix_socket()) and starts the I/O thread. `backend` and `hub`
    // must outlive the server.
    static Result<std::unique_ptr<ApiServer>> start(ApiBackend& backend, EventHub& hub, ApiServerConfig config);
    ~ApiServer(); // stop()

    // Closes the listener and every connection, joins the I/O thread and unlinks the socket.
    // Idempotent; call from any thread except the server's own.
    void stop();

    ServerStats const& stats() const;
    std::string const& socket_path() const;

    struct Impl;
    explicit ApiServer(std::unique_ptr<Impl>);

private:
    std::unique_ptr<Impl> m_impl;
};

} // namespace vmm::api

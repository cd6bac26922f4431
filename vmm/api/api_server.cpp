// SPDX-License-Identifier: MIT
// The Beast/Asio half of the API server: accept loop, per-connection HTTP state machine with
// timeouts, NDJSON event streams and asynchronous waits for operations. Everything runs on the
// server's one I/O thread; other threads only reach it through asio::post (EventHub wakes, stop).
// One file on purpose (past 400 lines): each Beast translation unit costs ~30 s on a 2-core host.
#include <utility> // Boost 1.74 asio/awaitable.hpp uses std::exchange without including it.

#include "vmm/api/api_server.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "base/log.hpp"
#include "vmm/api/api_http.hpp"
#include "vmm/api/api_json.hpp"
#include "vmm/api/api_socket.hpp"
#include "vmm/sandbox/thread_sandbox.hpp"

namespace vmm::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using local_socket = asio::local::stream_protocol::socket;
using error_code = boost::system::error_code;

class Connection;

struct ApiServer::Impl {
    Impl(ApiBackend& backend, EventHub& hub, ApiServerConfig config)
        : config(std::move(config))
        , backend(backend)
        , hub(hub)
        , router(backend, hub, stats)
    {
    }
    void accept();
    void shutdown(); // On the I/O thread.

    ApiServerConfig config;
    ApiBackend& backend;
    EventHub& hub;
    ServerStats stats;
    ApiRouter router;
    std::unordered_set<Connection*> connections; // I/O thread only (and stop() after the join).
    bool stopping = false;
    std::once_flag stop_once;
    // Declared after what connections reference: ~io_context destroys pending handlers and with
    // them the connections they keep alive.
    asio::io_context io { 1 };
    asio::local::stream_protocol::acceptor acceptor { io };
    asio::steady_timer accept_retry { io };
    std::thread thread;
    ino_t socket_inode = 0; // stop() unlinks the path only if it is still our socket.
    dev_t socket_device = 0;
};

namespace {

std::string const STREAM_HEADER = "HTTP/1.1 200 OK\r\n"
                                  "Server: microvmm\r\n"
                                  "Content-Type: application/x-ndjson\r\n"
                                  "Cache-Control: no-cache\r\n"
                                  "Connection: close\r\n"
                                  "\r\n";

} // namespace

class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(ApiServer::Impl& server, local_socket socket)
        : m_server(server)
        , m_socket(std::move(socket))
        , m_deadline(server.io)
        , m_poll(server.io)
    {
        m_server.connections.insert(this);
        ++m_server.stats.connections_open;
    }
    ~Connection()
    {
        if (m_subscription)
            m_subscription->cancel();
        if (m_streaming)
            --m_server.stats.event_streams_open;
        m_server.connections.erase(this);
        --m_server.stats.connections_open;
    }

    void start() { read_request(); }

    // Stop everything; pending handlers finish with errors and drop their references.
    void close()
    {
        if (m_subscription)
            m_subscription->cancel(); // No wake is posted after this returns.
        error_code ignored;
        m_socket.shutdown(local_socket::shutdown_both, ignored);
        m_socket.close(ignored);
        m_deadline.cancel();
        m_poll.cancel();
    }

private:
    // One timer bounds whatever the connection waits for (request bytes, a write); when it fires
    // the socket is closed, which aborts the pending operation.
    void arm(std::chrono::milliseconds timeout)
    {
        m_deadline.expires_after(timeout);
        m_deadline.async_wait([self = shared_from_this()](error_code ec) {
            if (ec)
                return; // Re-armed or disarmed.
            ++self->m_server.stats.connections_timed_out;
            self->close();
        });
    }
    void disarm() { m_deadline.cancel(); }

    void read_request()
    {
        reset_parser(m_parser, limits());
        arm(m_server.config.request_timeout); // Covers header and body together.
        http::async_read_header(m_socket, m_buffer, *m_parser,
            [self = shared_from_this()](error_code ec, std::size_t) { self->on_header(ec); });
    }

    void on_header(error_code ec)
    {
        if (ec || m_parser->is_done())
            return on_request(ec);
        if (auto refusal = refuse_after_header(*m_parser)) {
            disarm();
            m_keep_alive = false;
            return respond(std::move(*refusal));
        }
        auto read_body = [this] {
            http::async_read(m_socket, m_buffer, *m_parser,
                [self = shared_from_this()](error_code read_ec, std::size_t) { self->on_request(read_ec); });
        };
        // RFC 9110 §10.1.1: a client sending "Expect: 100-continue" may wait for an interim
        // response before the body (curl does, for a second).
        auto expect = m_parser->get()[http::field::expect];
        if (!beast::iequals(expect, "100-continue"))
            return read_body();
        static constexpr std::string_view CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n";
        asio::async_write(m_socket, asio::buffer(CONTINUE.data(), CONTINUE.size()),
            [self = shared_from_this(), read_body](error_code write_ec, std::size_t) {
                if (write_ec)
                    return self->on_request(write_ec);
                read_body();
            });
    }

    void on_request(error_code ec)
    {
        disarm();
        if (ec) {
            if (auto response = read_error_response(ec, limits())) {
                m_keep_alive = false; // The parser's state is unknown: never read another request.
                return respond(std::move(*response));
            }
            return close(); // Peer closed, half-sent request timed out, or socket error.
        }
        ++m_server.stats.requests;
        auto& message = m_parser->get();
        m_keep_alive = message.keep_alive();
        HttpRequest request = to_request(message);
        auto result = m_server.router.route(request);
        if (auto* response = std::get_if<HttpResponse>(&result))
            return respond(std::move(*response));
        if (std::holds_alternative<StreamEvents>(result)) {
            if (m_server.stats.event_streams_open.load() >= m_server.config.max_event_streams) {
                auto busy = error_response(503, "too many event streams are open");
                busy.headers.emplace_back("Retry-After", "1");
                return respond(std::move(busy));
            }
            return start_stream();
        }
        auto& wait = std::get<WaitForOperation>(result);
        m_waiting = wait.operation;
        m_wait_until = std::chrono::steady_clock::now() + wait.timeout;
        poll_operation();
    }

    HttpLimits limits() const { return { m_server.config.body_limit, m_server.config.header_limit }; }

    void respond(HttpResponse response)
    {
        if (response.status >= 500)
            ++m_server.stats.responses_5xx;
        else if (response.status >= 400)
            ++m_server.stats.responses_4xx;
        m_response.emplace(to_wire(std::move(response), m_keep_alive));
        arm(m_server.config.write_timeout);
        http::async_write(m_socket, *m_response, [self = shared_from_this()](error_code ec, std::size_t) {
            self->disarm();
            if (ec || !self->m_keep_alive || self->m_server.stopping) {
                error_code ignored;
                self->m_socket.shutdown(local_socket::shutdown_send, ignored);
                return self->close();
            }
            self->read_request();
        });
    }

    // PUT .../target with timeout_ms: re-check the operation on a timer, never block the thread.
    void poll_operation()
    {
        if (auto op = m_server.backend.operation(m_waiting.id))
            m_waiting = *op;
        bool const expired = std::chrono::steady_clock::now() >= m_wait_until;
        if (!m_waiting.running() || expired || m_server.stopping)
            return respond(operation_response(m_waiting));
        if (peer_closed())
            return close();
        m_poll.expires_after(std::min<std::chrono::steady_clock::duration>(
            m_server.config.wait_poll_interval, m_wait_until - std::chrono::steady_clock::now()));
        m_poll.async_wait([self = shared_from_this()](error_code ec) {
            if (!ec)
                self->poll_operation();
        });
    }

    // True when the client has hung up (recv() of a peeked byte returns 0 at EOF).
    bool peer_closed()
    {
        char byte;
        ssize_t n = ::recv(m_socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    }

    void start_stream()
    {
        m_streaming = true;
        ++m_server.stats.event_streams_open;
        // Subscribe before the header goes out, so a client that saw the header sees every
        // later event (`ctl memory set --wait` relies on this).
        std::weak_ptr<Connection> weak = weak_from_this();
        auto executor = m_server.io.get_executor();
        m_subscription = m_server.hub.subscribe([weak, executor] {
            asio::post(executor, [weak] {
                if (auto self = weak.lock())
                    self->drain_events();
            });
        });
        m_out = STREAM_HEADER;
        write_stream();
        watch_for_hangup();
    }

    // Anything the client sends on a stream is discarded; EOF or an error ends the stream.
    void watch_for_hangup()
    {
        m_socket.async_read_some(asio::buffer(m_discard), [self = shared_from_this()](error_code ec, std::size_t) {
            if (ec)
                return self->close();
            self->watch_for_hangup();
        });
    }

    void drain_events()
    {
        if (m_writing || !m_socket.is_open() || !m_subscription)
            return;
        auto batch = m_subscription->take();
        if (batch.lines.empty() && batch.dropped == 0)
            return;
        m_out.clear();
        if (batch.dropped > 0) {
            m_out += fmt::format(R"({{"event":"events_dropped","ts_ms":{},"count":{}}})", EventHub::now_ms(),
                batch.dropped);
            m_out += '\n';
        }
        for (auto const& line : batch.lines) {
            m_out += *line;
            m_out += '\n';
        }
        write_stream();
    }

    void write_stream()
    {
        m_writing = true;
        arm(m_server.config.write_timeout);
        asio::async_write(m_socket, asio::buffer(m_out), [self = shared_from_this()](error_code ec, std::size_t) {
            self->disarm();
            self->m_writing = false;
            if (ec)
                return self->close();
            self->drain_events();
        });
    }

    ApiServer::Impl& m_server;
    local_socket m_socket;
    asio::steady_timer m_deadline;
    asio::steady_timer m_poll;
    beast::flat_buffer m_buffer;
    std::optional<http::request_parser<http::string_body>> m_parser;
    std::optional<http::response<http::string_body>> m_response;
    bool m_keep_alive = false;
    Operation m_waiting;
    std::chrono::steady_clock::time_point m_wait_until;
    bool m_streaming = false;
    bool m_writing = false;
    std::shared_ptr<EventSubscription> m_subscription;
    std::string m_out;
    std::array<char, 512> m_discard {};
};

void ApiServer::Impl::accept()
{
    acceptor.async_accept([this](error_code ec, local_socket socket) {
        if (stopping)
            return;
        if (ec) {
            if (ec == asio::error::operation_aborted)
                return;
            // EMFILE/ENFILE/ENOBUFS: back off instead of spinning on the same error.
            VMM_GUEST_WARN("api", "accept on {}: {}", config.socket_path, ec.message());
            accept_retry.expires_after(std::chrono::milliseconds(100));
            accept_retry.async_wait([this](error_code wait_ec) {
                if (!wait_ec && !stopping)
                    accept();
            });
            return;
        }
        // Asio accepts with accept(2), not accept4(SOCK_CLOEXEC): every fd of microvmm is
        // close-on-exec (SECURITY.md). microvmm never execs, so no other thread can race this.
        ::fcntl(socket.native_handle(), F_SETFD, FD_CLOEXEC);
        if (connections.size() >= config.max_connections) {
            ++stats.connections_rejected;
            error_code ignored;
            socket.close(ignored);
        } else {
            ++stats.connections_accepted;
            std::make_shared<Connection>(*this, std::move(socket))->start();
        }
        accept();
    });
}

void ApiServer::Impl::shutdown()
{
    stopping = true;
    error_code ignored;
    acceptor.close(ignored);
    accept_retry.cancel();
    // Copy: close() does not destroy, but be robust against handlers running later.
    std::vector<Connection*> open(connections.begin(), connections.end());
    for (auto* connection : open)
        connection->close();
    io.stop();
}

ApiServer::ApiServer(std::unique_ptr<Impl> impl)
    : m_impl(std::move(impl))
{
}

Result<std::unique_ptr<ApiServer>> ApiServer::start(ApiBackend& backend, EventHub& hub, ApiServerConfig config)
{
    auto fd = VMM_TRY(listen_unix_socket(config.socket_path));
    auto impl = std::make_unique<Impl>(backend, hub, std::move(config));
    error_code ec;
    impl->acceptor.assign(asio::local::stream_protocol(), fd.get(), ec);
    if (ec) {
        ::unlink(impl->config.socket_path.c_str());
        return fail(Errc::Syscall, fmt::format("api acceptor: {}", ec.message()));
    }
    (void)fd.release(); // The acceptor owns it now.
    struct stat st {};
    if (::lstat(impl->config.socket_path.c_str(), &st) == 0) {
        impl->socket_inode = st.st_ino;
        impl->socket_device = st.st_dev;
    }
    impl->accept();
    auto* raw = impl.get();
    try {
        impl->thread = std::thread([raw] {
            ::pthread_setname_np(::pthread_self(), "api");
            // Before the first client is accepted (SECURITY.md).
            sandbox::enter_thread(sandbox::ThreadKind::Api);
            for (;;) {
                try {
                    raw->io.run();
                    return;
                } catch (std::exception const& e) {
                    // Only bad_alloc can escape a handler; log and keep serving.
                    log::error("api", "I/O thread: {}", e.what());
                }
            }
        });
    } catch (std::system_error const& e) {
        ::unlink(impl->config.socket_path.c_str());
        return fail(Errc::Syscall, fmt::format("api thread: {}", e.what()));
    }
    log::info("api", "listening on {}", impl->config.socket_path);
    return std::make_unique<ApiServer>(std::move(impl));
}

void ApiServer::stop()
{
    std::call_once(m_impl->stop_once, [this] {
        auto* impl = m_impl.get();
        asio::post(impl->io, [impl] { impl->shutdown(); });
        if (impl->thread.joinable())
            impl->thread.join();
        struct stat st {};
        if (::lstat(impl->config.socket_path.c_str(), &st) == 0 && st.st_ino == impl->socket_inode
            && st.st_dev == impl->socket_device)
            ::unlink(impl->config.socket_path.c_str());
    });
}

ApiServer::~ApiServer()
{
    if (m_impl)
        stop();
}

ServerStats const& ApiServer::stats() const
{
    return m_impl->stats;
}

std::string const& ApiServer::socket_path() const
{
    return m_impl->config.socket_path;
}

} // namespace vmm::api

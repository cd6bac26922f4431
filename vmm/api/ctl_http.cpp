// SPDX-License-Identifier: MIT
// Synchronous Beast client over a plain fd with poll()-based timeouts (Asio's own synchronous
// socket calls ignore SO_RCVTIMEO and would wait forever on a stuck server).
#include <utility> // Boost 1.74 asio/awaitable.hpp uses std::exchange without including it.

#include "vmm/api/ctl_http.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "base/fd.hpp"
#include "vmm/api/api_socket.hpp"

namespace vmm::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using error_code = boost::system::error_code;

namespace {

// A SyncReadStream/SyncWriteStream over an fd. Deadline < 0 means wait forever.
class FdStream {
public:
    explicit FdStream(int fd)
        : m_fd(fd)
    {
    }
    void set_timeout(std::optional<std::chrono::milliseconds> timeout) { m_timeout = timeout; }

    template<typename MutableBuffers>
    std::size_t read_some(MutableBuffers const& buffers, error_code& ec)
    {
        for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it) {
            asio::mutable_buffer buffer = *it;
            if (buffer.size() == 0)
                continue;
            if (!wait(POLLIN, ec))
                return 0;
            ssize_t n;
            do {
                n = ::recv(m_fd, buffer.data(), buffer.size(), 0);
            } while (n < 0 && errno == EINTR);
            if (n < 0) {
                ec.assign(errno, boost::system::system_category());
                return 0;
            }
            if (n == 0)
                ec = asio::error::eof;
            else
                ec = {};
            return static_cast<std::size_t>(n);
        }
        ec = {};
        return 0;
    }
    template<typename ConstBuffers>
    std::size_t write_some(ConstBuffers const& buffers, error_code& ec)
    {
        for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it) {
            asio::const_buffer buffer = *it;
            if (buffer.size() == 0)
                continue;
            if (!wait(POLLOUT, ec))
                return 0;
            ssize_t n;
            do {
                n = ::send(m_fd, buffer.data(), buffer.size(), MSG_NOSIGNAL);
            } while (n < 0 && errno == EINTR);
            if (n < 0) {
                ec.assign(errno, boost::system::system_category());
                return 0;
            }
            ec = {};
            return static_cast<std::size_t>(n);
        }
        ec = {};
        return 0;
    }
    // The throwing overloads the Asio stream concepts name; Beast's error_code paths (the only
    // ones used here) never call them.
    template<typename MutableBuffers>
    std::size_t read_some(MutableBuffers const& buffers)
    {
        error_code ec;
        return read_some(buffers, ec);
    }
    template<typename ConstBuffers>
    std::size_t write_some(ConstBuffers const& buffers)
    {
        error_code ec;
        return write_some(buffers, ec);
    }

private:
    bool wait(short events, error_code& ec)
    {
        pollfd pfd { m_fd, events, 0 };
        int const timeout = m_timeout ? static_cast<int>(m_timeout->count()) : -1;
        int rc;
        do {
            rc = ::poll(&pfd, 1, timeout);
        } while (rc < 0 && errno == EINTR);
        if (rc < 0) {
            ec.assign(errno, boost::system::system_category());
            return false;
        }
        if (rc == 0) {
            ec = asio::error::timed_out;
            return false;
        }
        return true;
    }
    int m_fd;
    std::optional<std::chrono::milliseconds> m_timeout;
};

Result<void> send_request(FdStream& stream, std::string const& socket_path, std::string_view method,
    std::string_view target, std::string body)
{
    http::request<http::string_body> request;
    request.method_string(beast::string_view(method.data(), method.size()));
    request.target(beast::string_view(target.data(), target.size()));
    request.version(11);
    request.set(http::field::host, "localhost");
    request.set(http::field::user_agent, "microvmm-ctl");
    if (!body.empty())
        request.set(http::field::content_type, "application/json");
    request.body() = std::move(body);
    request.keep_alive(false);
    request.prepare_payload();
    error_code ec;
    http::write(stream, request, ec);
    if (ec)
        return fail(Errc::Syscall, fmt::format("send to {}: {}", socket_path, ec.message()));
    return {};
}

} // namespace

Result<CtlResponse> http_call(std::string const& socket_path, std::string_view method, std::string_view target,
    std::string body, std::chrono::milliseconds timeout)
{
    auto fd = VMM_TRY(connect_unix_socket(socket_path));
    FdStream stream(fd.get());
    stream.set_timeout(timeout);
    VMM_TRY(send_request(stream, socket_path, method, target, std::move(body)));
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    error_code ec;
    http::read(stream, buffer, parser, ec);
    if (ec)
        return fail(Errc::Syscall, fmt::format("read from {}: {}", socket_path, ec.message()));
    return CtlResponse { parser.get().result_int(), std::move(parser.get().body()) };
}

struct LineStream::State {
    Fd fd;
    std::string pending; // Received bytes not yet returned as lines.
};

LineStream::LineStream(std::unique_ptr<State> state)
    : m_state(std::move(state))
{
}
LineStream::LineStream(LineStream&&) noexcept = default;
LineStream& LineStream::operator=(LineStream&&) noexcept = default;
LineStream::~LineStream() = default;

Result<LineStream> LineStream::open(std::string const& socket_path, std::string_view target,
    std::chrono::milliseconds header_timeout)
{
    auto state = std::make_unique<State>();
    state->fd = VMM_TRY(connect_unix_socket(socket_path));
    FdStream stream(state->fd.get());
    stream.set_timeout(header_timeout);
    VMM_TRY(send_request(stream, socket_path, "GET", target, {}));
    beast::flat_buffer buffer;
    http::response_parser<http::empty_body> parser;
    error_code ec;
    http::read_header(stream, buffer, parser, ec);
    if (ec)
        return fail(Errc::Syscall, fmt::format("read from {}: {}", socket_path, ec.message()));
    if (parser.get().result_int() != 200)
        return fail(Errc::Unsupported, fmt::format("{} answered {} to GET {}", socket_path,
                                           parser.get().result_int(), target));
    // Bytes after the header are the first lines (the stream is close-delimited, not chunked).
    auto data = buffer.cdata();
    state->pending.assign(static_cast<char const*>(data.data()), data.size());
    return LineStream(std::move(state));
}

Result<std::optional<std::string>> LineStream::next_line()
{
    for (;;) {
        if (auto newline = m_state->pending.find('\n'); newline != std::string::npos) {
            std::string line = m_state->pending.substr(0, newline);
            m_state->pending.erase(0, newline + 1);
            return line;
        }
        char chunk[4096];
        ssize_t n;
        do {
            n = ::recv(m_state->fd.get(), chunk, sizeof(chunk), 0);
        } while (n < 0 && errno == EINTR);
        if (n < 0)
            return fail_errno("read event stream");
        if (n == 0)
            return std::optional<std::string> {};
        m_state->pending.append(chunk, static_cast<std::size_t>(n));
    }
}

} // namespace vmm::api

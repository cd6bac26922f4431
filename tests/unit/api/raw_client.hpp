// SPDX-License-Identifier: MIT
// Byte-level Unix socket client for the API tests: send exactly the bytes a test wants (garbage,
// half requests) and read raw responses, with poll() timeouts so a hung server fails the test.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <string>

#include "base/fd.hpp"

namespace vmm::api::test {

inline Fd raw_connect(std::string const& path)
{
    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address {};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    if (::connect(fd.get(), reinterpret_cast<sockaddr const*>(&address), sizeof(address)) < 0)
        return Fd {};
    return fd;
}

inline bool send_all(int fd, std::string const& bytes)
{
    std::size_t sent = 0;
    while (sent < bytes.size()) {
        ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        sent += static_cast<std::size_t>(n);
    }
    return true;
}

// Reads what is available within `timeout`; returns nullopt on timeout with nothing read, "" at EOF.
inline std::optional<std::string> recv_some(int fd, std::chrono::milliseconds timeout)
{
    pollfd pfd { fd, POLLIN, 0 };
    if (::poll(&pfd, 1, static_cast<int>(timeout.count())) <= 0)
        return std::nullopt;
    char buffer[65536];
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0)
        return std::string();
    return std::string(buffer, static_cast<std::size_t>(n));
}

// True if the peer closed the connection within `timeout` (any pending bytes are discarded).
inline bool closed_within(int fd, std::chrono::milliseconds timeout)
{
    auto const deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        auto chunk = recv_some(fd, left);
        if (!chunk)
            return false;
        if (chunk->empty())
            return true;
    }
    return false;
}

struct RawResponse {
    int status = 0;
    std::map<std::string, std::string> headers; // Lower-case names.
    std::string body;
};

// Reads one Content-Length response (the server always sends one except on streams).
inline std::optional<RawResponse> read_response(int fd, std::string& pending,
    std::chrono::milliseconds timeout = std::chrono::seconds(5))
{
    auto const deadline = std::chrono::steady_clock::now() + timeout;
    auto fill = [&]() {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return false;
        auto chunk = recv_some(fd, left);
        if (!chunk || chunk->empty())
            return false;
        pending += *chunk;
        return true;
    };
    std::size_t end;
    while ((end = pending.find("\r\n\r\n")) == std::string::npos) {
        if (!fill())
            return std::nullopt;
    }
    RawResponse response;
    std::string head = pending.substr(0, end);
    pending.erase(0, end + 4);
    if (head.size() < 12 || !head.starts_with("HTTP/1.1 "))
        return std::nullopt;
    response.status = std::stoi(head.substr(9, 3));
    std::size_t pos = head.find("\r\n");
    while (pos != std::string::npos) {
        std::size_t next = head.find("\r\n", pos + 2);
        std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
        if (auto colon = line.find(':'); colon != std::string::npos) {
            std::string name = line.substr(0, colon);
            for (auto& c : name)
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            std::string value = line.substr(colon + 1);
            while (!value.empty() && value.front() == ' ')
                value.erase(0, 1);
            response.headers[name] = value;
        }
        pos = next;
    }
    std::size_t length = 0;
    if (auto it = response.headers.find("content-length"); it != response.headers.end())
        length = std::stoul(it->second);
    while (pending.size() < length) {
        if (!fill())
            return std::nullopt;
    }
    response.body = pending.substr(0, length);
    pending.erase(0, length);
    return response;
}

// Connects, sends `request` bytes and reads one response.
inline std::optional<RawResponse> roundtrip(std::string const& path, std::string const& request,
    std::chrono::milliseconds timeout = std::chrono::seconds(5))
{
    Fd fd = raw_connect(path);
    if (!fd.is_open() || !send_all(fd.get(), request))
        return std::nullopt;
    std::string pending;
    return read_response(fd.get(), pending, timeout);
}

inline std::string http_request(std::string const& method, std::string const& target, std::string const& body = {},
    std::string const& extra_headers = {})
{
    std::string request = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\n" + extra_headers;
    if (!body.empty() || method == "PUT")
        request += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    return request + "\r\n" + body;
}

} // namespace vmm::api::test

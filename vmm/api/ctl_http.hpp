// SPDX-License-Identifier: MIT
// Minimal synchronous HTTP/1.1 client over a Unix socket for `microvmm ctl` (Beast inside).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.hpp"

namespace vmm::api {

struct CtlResponse {
    unsigned status = 0;
    std::string body;
};

// One request on a fresh connection; fails (Errc::Syscall/Errc::Busy for a timeout) if the
// server cannot be reached or does not answer within `timeout`.
Result<CtlResponse> http_call(std::string const& socket_path, std::string_view method, std::string_view target,
    std::string body = {}, std::chrono::milliseconds timeout = std::chrono::seconds(30));

// GET of a newline-delimited stream: open() returns once the 200 header arrived (so the server
// has subscribed), next_line() blocks until a line arrives; nullopt at end of stream.
class LineStream {
public:
    static Result<LineStream> open(std::string const& socket_path, std::string_view target,
        std::chrono::milliseconds header_timeout = std::chrono::seconds(30));
    Result<std::optional<std::string>> next_line();
    // The error body when the server refused the stream (status != 200).
    LineStream(LineStream&&) noexcept;
    LineStream& operator=(LineStream&&) noexcept;
    ~LineStream();

    struct State;

private:
    explicit LineStream(std::unique_ptr<State>);
    std::unique_ptr<State> m_state;
};

} // namespace vmm::api

// SPDX-License-Identifier: MIT
// The text of the hybrid-vsock convention (Firecracker docs/vsock.md, Cloud Hypervisor's
// vsock over a Unix socket): the host client's "CONNECT <port>\n" and our "OK <host_port>\n".
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace vmm::hybrid_vsock {

// "CONNECT 4294967295" is 18 bytes; a longer line is not the convention.
inline constexpr std::size_t MAX_CONNECT_LINE = 32;

// Parses one CONNECT line without its '\n': "CONNECT " then a decimal u32, nothing else.
inline std::optional<std::uint32_t> parse_connect(std::string_view line)
{
    constexpr std::string_view PREFIX = "CONNECT ";
    if (line.size() > MAX_CONNECT_LINE || !line.starts_with(PREFIX))
        return std::nullopt;
    line.remove_prefix(PREFIX.size());
    if (line.empty() || line.front() < '0' || line.front() > '9')
        return std::nullopt;
    std::uint32_t port = 0;
    auto [end, error] = std::from_chars(line.data(), line.data() + line.size(), port);
    if (error != std::errc {} || end != line.data() + line.size())
        return std::nullopt;
    return port;
}

inline std::string ok_reply(std::uint32_t host_port) { return fmt::format("OK {}\n", host_port); }

} // namespace vmm::hybrid_vsock

// SPDX-License-Identifier: MIT
// One-line logging to stderr with fmt, and a rate limit for anything a guest can trigger.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>
#include <utility>

#include <fmt/format.h>

namespace vmm::log {

// Off silences everything: fuzz targets and corpus replays run millions of hostile inputs, and a
// formatted line per input would cost more than the engine under test. The product never sets it.
enum class Level : std::uint8_t { Debug, Info, Warn, Error, Off };

void set_level(Level);
bool enabled(Level);
void emit(Level, std::string_view component, std::string_view text); // One atomic line on stderr.
// Lines dropped by the level (counted, not formatted): what a silenced fuzz run logged.
std::uint64_t filtered_lines();
void count_filtered();

template<typename... Args>
void debug(std::string_view component, fmt::format_string<Args...> format, Args&&... args)
{
    if (enabled(Level::Debug))
        emit(Level::Debug, component, fmt::format(format, std::forward<Args>(args)...));
    else
        count_filtered();
}
template<typename... Args>
void info(std::string_view component, fmt::format_string<Args...> format, Args&&... args)
{
    if (enabled(Level::Info))
        emit(Level::Info, component, fmt::format(format, std::forward<Args>(args)...));
    else
        count_filtered();
}
template<typename... Args>
void warn(std::string_view component, fmt::format_string<Args...> format, Args&&... args)
{
    if (enabled(Level::Warn))
        emit(Level::Warn, component, fmt::format(format, std::forward<Args>(args)...));
    else
        count_filtered();
}
template<typename... Args>
void error(std::string_view component, fmt::format_string<Args...> format, Args&&... args)
{
    if (enabled(Level::Error))
        emit(Level::Error, component, fmt::format(format, std::forward<Args>(args)...));
    else
        count_filtered();
}

// Token bucket: `burst` messages, refilled at `per_second`. Thread-safe enough for logging
// (a lost refill under contention only drops a log line).
class RateLimit {
public:
    RateLimit(std::uint32_t burst, std::uint32_t per_second)
        : m_burst(burst)
        , m_per_second(per_second)
        , m_tokens(burst)
    {
    }
    bool allow();
    std::uint64_t suppressed() const { return m_suppressed.load(std::memory_order_relaxed); }

private:
    std::uint32_t m_burst;
    std::uint32_t m_per_second;
    std::atomic<std::uint32_t> m_tokens;
    std::atomic<std::int64_t> m_last_refill_ms { 0 };
    std::atomic<std::uint64_t> m_suppressed { 0 };
};

} // namespace vmm::log

// Anything a guest can trigger logs through a per-call-site token bucket (Firecracker's
// rate-limited logger, OpenVMM tracelimit): a hostile guest cannot flood the host log. When
// warnings are filtered out the bucket is not touched (no clock read): the fuzz path stays cheap.
#define VMM_GUEST_WARN(component, ...)                                                             \
    do {                                                                                           \
        static ::vmm::log::RateLimit vmm_rate_limit_ { /*burst=*/10, /*per_second=*/1 };           \
        if (!::vmm::log::enabled(::vmm::log::Level::Warn))                                         \
            ::vmm::log::count_filtered();                                                          \
        else if (vmm_rate_limit_.allow())                                                          \
            ::vmm::log::warn(component, __VA_ARGS__);                                              \
    } while (0)

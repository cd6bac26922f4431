// SPDX-License-Identifier: MIT
#include "base/log.hpp"

#include <unistd.h>

#include <string>

namespace vmm::log {

namespace {
std::atomic<Level> g_level { Level::Info };
std::atomic<std::uint64_t> g_filtered { 0 };

std::string_view level_name(Level level)
{
    switch (level) {
    case Level::Debug: return "debug";
    case Level::Info: return "info";
    case Level::Warn: return "warn";
    case Level::Error: return "error";
    case Level::Off: return "off";
    }
    return "?";
}
} // namespace

void set_level(Level level) { g_level.store(level, std::memory_order_relaxed); }

bool enabled(Level level) { return level >= g_level.load(std::memory_order_relaxed); }

std::uint64_t filtered_lines() { return g_filtered.load(std::memory_order_relaxed); }

void count_filtered() { g_filtered.fetch_add(1, std::memory_order_relaxed); }

void emit(Level level, std::string_view component, std::string_view text)
{
    std::string line = fmt::format("microvmm: {}: {}: {}\n", level_name(level), component, text);
    // One write() per line keeps lines from different threads whole.
    [[maybe_unused]] auto written = ::write(STDERR_FILENO, line.data(), line.size());
}

bool RateLimit::allow()
{
    auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now().time_since_epoch())
                      .count();
    auto last = m_last_refill_ms.load(std::memory_order_relaxed);
    if (now_ms - last >= 1000 / static_cast<std::int64_t>(m_per_second ? m_per_second : 1)) {
        if (m_last_refill_ms.compare_exchange_strong(last, now_ms, std::memory_order_relaxed)) {
            auto tokens = m_tokens.load(std::memory_order_relaxed);
            if (tokens < m_burst)
                m_tokens.store(tokens + 1, std::memory_order_relaxed);
        }
    }
    auto tokens = m_tokens.load(std::memory_order_relaxed);
    while (tokens > 0) {
        if (m_tokens.compare_exchange_weak(tokens, tokens - 1, std::memory_order_relaxed))
            return true;
    }
    m_suppressed.fetch_add(1, std::memory_order_relaxed);
    return false;
}

} // namespace vmm::log

// SPDX-License-Identifier: MIT
// DmPolicy: the auto-mode sizing rule, its dead band, surplus clock, rate limit and back-off.
#include "devices/hv_balloon/dm_policy.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "devices/hv_balloon/dm_status.hpp"

namespace vmm::hv_balloon {

namespace {

constexpr std::uint64_t PAGES_PER_MIB = (1ull << 20) / mem::PAGE_SIZE;
// Consecutive short operations double the interval up to 2^5 times min_interval: a target the
// guest cannot reach (hot-add refused, balloon floor) is retried, but rarely.
constexpr std::uint32_t MAX_BACKOFF_SHIFT = 5;

std::uint64_t sat_sub(std::uint64_t a, std::uint64_t b) { return a > b ? a - b : 0; }

std::uint64_t round_up_mib(std::uint64_t pages)
{
    return pages > UINT64_MAX - PAGES_PER_MIB ? pages : (pages + PAGES_PER_MIB - 1) / PAGES_PER_MIB * PAGES_PER_MIB;
}

} // namespace

std::string_view policy_mode_name(PolicyMode mode) { return mode == PolicyMode::Auto ? "auto" : "manual"; }

std::optional<PolicyMode> parse_policy_mode(std::string_view text)
{
    if (text == "manual")
        return PolicyMode::Manual;
    if (text == "auto")
        return PolicyMode::Auto;
    return std::nullopt;
}

Result<void> validate_policy(PolicyConfig const& c, mem::PageCount engine_max)
{
    // max may exceed what the engine reaches by the e820 holes and firmware pages (max_memory_mib
    // counts them): evaluate() clamps to the reachable size anyway. min must be reachable.
    auto const max = c.max.raw() == 0 ? engine_max : std::min(c.max, engine_max);
    if (c.min > engine_max)
        return fail(Errc::OutOfRange, fmt::format("min_mib {} is above the largest size {} MiB", c.min.mib(), engine_max.mib()));
    if (c.min > max)
        return fail(Errc::OutOfRange, fmt::format("min_mib {} is above max_mib {}", c.min.mib(), max.mib()));
    if (c.buffer_percent > MAX_BUFFER_PERCENT)
        return fail(Errc::OutOfRange, fmt::format("buffer_percent {} is above {}", c.buffer_percent, MAX_BUFFER_PERCENT));
    if (c.weight > MAX_WEIGHT)
        return fail(Errc::OutOfRange, fmt::format("weight {} is above {}", c.weight, MAX_WEIGHT));
    if (c.hysteresis_percent > MAX_HYSTERESIS_PERCENT)
        return fail(Errc::OutOfRange,
            fmt::format("hysteresis_percent {} is above {}", c.hysteresis_percent, MAX_HYSTERESIS_PERCENT));
    if (c.min_step.raw() == 0)
        return fail(Errc::OutOfRange, "min_step_mib must be at least 1");
    return {};
}

mem::PageCount linux_balloon_floor(mem::PageCount total)
{
    // hv_balloon.c:1096 compute_balloon_floor(), piecewise linear in the guest's totalram_pages().
    std::uint64_t const n = total.raw();
    auto mb = [](std::uint64_t mib) { return mib * PAGES_PER_MIB; };
    std::uint64_t floor = 0;
    if (n < mb(128))
        floor = mb(8) + (n >> 1);
    else if (n < mb(512))
        floor = mb(40) + (n >> 2);
    else if (n < mb(2048))
        floor = mb(104) + (n >> 3);
    else if (n < mb(8192))
        floor = mb(232) + (n >> 4);
    else
        floor = mb(488) + (n >> 5);
    return mem::PageCount { floor };
}

void DmPolicy::configure(PolicyConfig config)
{
    m_config = config;
    m_surplus_since.reset();
    m_wanted.reset();
    m_failures = 0;
    m_deadline.reset();
}

bool DmPolicy::set_ceiling(std::optional<HostCeiling> ceiling)
{
    bool const changed = (m_ceiling ? std::optional { m_ceiling->limit } : std::nullopt)
        != (ceiling ? std::optional { ceiling->limit } : std::nullopt);
    m_ceiling = ceiling;
    if (changed && ceiling)
        ++m_counters.ceiling_changes;
    return changed;
}

bool DmPolicy::expire_ceiling(Instant now)
{
    if (!m_ceiling || now < m_ceiling->expires)
        return false;
    m_ceiling.reset();
    ++m_counters.ceiling_expiries;
    return true;
}

std::optional<Instant> DmPolicy::next_deadline() const
{
    if (!m_ceiling)
        return m_deadline;
    return m_deadline ? std::min(*m_deadline, m_ceiling->expires) : m_ceiling->expires;
}

void DmPolicy::on_operation_finished(bool reached)
{
    m_failures = reached ? 0 : std::min(m_failures + 1, MAX_BACKOFF_SHIFT);
}

void DmPolicy::on_guest_reset()
{
    m_surplus_since.reset();
    m_failures = 0;
    m_deadline.reset();
    m_pressure_clock.reset();
    m_wanted.reset();
}

void DmPolicy::account_pressure(Instant now, bool pressured)
{
    if (m_pressure_clock && now > *m_pressure_clock)
        m_counters.under_pressure += now - *m_pressure_clock;
    m_pressure_clock = pressured ? std::optional<Instant> { now } : std::nullopt;
}

std::optional<mem::PageCount> DmPolicy::hold(std::string_view reason, std::optional<Instant> retry)
{
    m_last.reason = reason;
    m_deadline = retry;
    return std::nullopt;
}

std::optional<mem::PageCount> DmPolicy::evaluate(PolicyView const& v)
{
    ++m_counters.evaluations;
    m_last = PolicyDecision {};
    m_last.at = v.now;
    m_deadline.reset();
    expire_ceiling(v.now); // The engine expires it first (for its event); a lapsed lease never counts.
    if (m_config.mode != PolicyMode::Auto) {
        account_pressure(v.now, false);
        return hold("manual mode");
    }
    if (!v.connected) {
        account_pressure(v.now, false);
        return hold("the guest's DM driver is not connected");
    }
    bool const stale = v.report != nullptr && v.now - v.report->received_at > m_config.report_max_age;
    if (v.report == nullptr || stale) {
        // No wish to compute, but the host's ceiling still binds: a guest too busy to report
        // (onlining hot-added memory, under load) must not keep memory the host took back.
        if (stale)
            ++m_counters.ignored_reports;
        account_pressure(v.now, false);
        m_last.wanted = m_wanted; // The last wish, for the arbiter.
        if (auto bound = ceiling_breached(v, std::nullopt)) {
            m_last.desired = *bound;
            return obey_ceiling(v, *bound);
        }
        return hold(stale ? "the guest's last status report is stale" : "no status report from the guest yet");
    }
    // The guest's numbers are hints: every step saturates, and nothing it says can move the
    // target outside [min, max] or past what the engine can reach.
    std::uint64_t const max = std::min((m_config.max.raw() ? m_config.max : v.reachable).raw(), v.reachable.raw());
    std::uint64_t const min = std::min(m_config.min.raw(), max);
    std::uint64_t const floor = m_config.linux_floor ? linux_balloon_floor(v.current).raw() : 0;
    std::uint64_t const demand = sat_sub(sat_sub(v.report->num_committed.raw(), v.ballooned.raw()), floor);
    // Demand above any size the policy may set is that size: keeps the product below 2^64.
    std::uint64_t const capped = std::min(demand, std::max<std::uint64_t>(max, 1) * 2);
    std::uint64_t const wish = round_up_mib(capped * (100 + m_config.buffer_percent) / 100 + floor);
    std::uint64_t const wanted = std::clamp(wish, min, std::max(min, max));
    // The host ceiling bounds the target from above but never below min (minimums are always
    // honoured; an arbiter never sends less, a hand-made PUT may). A lapsed lease was dropped by
    // expire_ceiling() before this evaluation.
    bool const capped_by_host = m_ceiling && m_ceiling->limit.raw() < wanted;
    std::uint64_t const desired = capped_by_host ? std::max(m_ceiling->limit.raw(), min) : wanted;
    m_last.demand = mem::PageCount { demand };
    m_last.desired = mem::PageCount { desired };
    m_last.wanted = mem::PageCount { wanted };
    m_wanted = m_last.wanted;

    std::uint64_t const current = v.current.raw();
    std::uint64_t const band = std::max(m_config.min_step.raw(), current * m_config.hysteresis_percent / 100);
    account_pressure(v.now, wish >= current + band);
    if (capped_by_host && ceiling_breached(v, mem::PageCount { desired }))
        return obey_ceiling(v, mem::PageCount { desired });
    return decide(v, mem::PageCount { desired });
}

// The bound the ceiling sets (`desired` if the caller computed it, else max(ceiling, min)) when
// the guest is more than min_step above it, or an operation is growing it past it.
std::optional<mem::PageCount> DmPolicy::ceiling_breached(PolicyView const& v, std::optional<mem::PageCount> desired) const
{
    if (!m_ceiling)
        return std::nullopt;
    auto const bound = desired ? *desired : std::max(m_ceiling->limit, m_config.min);
    bool const above = v.current.raw() >= bound.raw() + m_config.min_step.raw();
    bool const growing_past = v.operation_running && !v.shrinking && v.target && *v.target > bound;
    return above || growing_past ? std::optional { bound } : std::nullopt;
}

// Above the host's ceiling: shrink to it without shrink_delay or halving (the host needs the
// memory back now), still one operation per min_interval.
std::optional<mem::PageCount> DmPolicy::obey_ceiling(PolicyView const& v, mem::PageCount desired)
{
    m_surplus_since.reset();
    if (v.operation_running && v.target
        && (*v.target == desired || (v.shrinking && v.target->raw() <= desired.raw())))
        return hold("above the host ceiling: an operation towards it is running");
    auto const interval = m_config.min_interval * (1u << m_failures);
    if (m_last_operation && v.now < *m_last_operation + interval)
        return hold("above the host ceiling: waiting min_interval since the last operation", *m_last_operation + interval);
    bool const grow = desired > v.current; // A grow past the ceiling is cut back to it.
    m_last.reason = grow ? "grow: cut to the host ceiling" : "shrink: above the host ceiling";
    m_last.target = desired;
    m_last_operation = v.now;
    ++m_counters.decisions;
    ++(grow ? m_counters.grow_decisions : m_counters.shrink_decisions);
    return desired;
}

std::optional<mem::PageCount> DmPolicy::decide(PolicyView const& v, mem::PageCount desired_pages)
{
    std::uint64_t const current = v.current.raw();
    std::uint64_t const desired = desired_pages.raw();
    std::uint64_t const band = std::max(m_config.min_step.raw(), current * m_config.hysteresis_percent / 100);
    auto const interval = m_config.min_interval * (1u << m_failures);
    bool const rate_limited = m_last_operation && v.now < *m_last_operation + interval;
    auto const allowed_at = m_last_operation ? *m_last_operation + interval : v.now;

    auto take = [&](mem::PageCount target, std::string_view reason, bool grow) {
        m_last.reason = reason;
        m_last.target = target;
        m_last_operation = v.now;
        ++m_counters.decisions;
        ++(grow ? m_counters.grow_decisions : m_counters.shrink_decisions);
        return std::optional<mem::PageCount> { target };
    };

    if (desired >= current + band) {
        m_surplus_since.reset();
        if (v.operation_running && v.shrinking)
            return take(desired_pages, "grow: pressure while shrinking", true); // Pressure wins at once.
        if (v.operation_running && v.target && v.target->raw() + band > desired)
            return hold("growing: an operation towards the wanted size is running");
        if (rate_limited)
            return hold(m_failures > 0 ? "grow wanted: backing off, the last operation fell short"
                                       : "grow wanted: waiting min_interval since the last operation",
                allowed_at);
        return take(desired_pages, "grow: demand plus buffer above the current size", true);
    }
    if (desired + band <= current) {
        if (v.operation_running)
            return hold("surplus: an operation is running");
        if (!m_surplus_since) {
            m_surplus_since = v.now;
            m_surplus_peak = desired_pages;
        }
        m_surplus_peak = std::max(m_surplus_peak, desired_pages);
        auto const due = *m_surplus_since + m_config.shrink_delay;
        if (v.now < due)
            return hold("surplus: waiting shrink_delay before shrinking", due);
        if (rate_limited)
            return hold("surplus: waiting min_interval since the last operation", allowed_at);
        // Half the surplus (at least min_step) and never below the highest wish seen while it
        // lasted; the next half waits for a new shrink_delay.
        std::uint64_t const peak = m_surplus_peak.raw();
        std::uint64_t const step = std::max(m_config.min_step.raw(), (current - peak) / 2);
        std::uint64_t const target = round_up_mib(std::max(peak, sat_sub(current, step)));
        m_surplus_since.reset();
        if (target + m_config.min_step.raw() > current)
            return hold("surplus below min_step");
        return take(mem::PageCount { target }, "shrink: surplus held for shrink_delay", false);
    }
    m_surplus_since.reset();
    return hold("steady: within the dead band");
}

} // namespace vmm::hv_balloon

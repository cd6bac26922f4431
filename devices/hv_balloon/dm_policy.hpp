// SPDX-License-Identifier: MIT
// DmPolicy: automatic memory balancing for one VM (Hyper-V's "Dynamic Memory" sizing). Sans-IO:
// the engine (dynamic_memory.hpp) hands it the guest's status reports and its own view of the
// memory map at each evaluation, and gets back at most one new target. No clock is read here;
// the engine folds next_deadline() into its own, so deferred decisions need no polling tick.
//
// Rule (docs/auto-memory.md has the reasoning and the numbers):
//   demand  = committed - ballooned - linux_floor(current)      (the guest's own use)
//   desired = clamp(demand * (100 + buffer_percent) / 100 + linux_floor(current), min, max)
// grows as soon as desired exceeds the current size by more than the dead band (prompt), shrinks
// only after the surplus held for shrink_delay, by half the surplus per operation (gentle), and
// never two operations closer than min_interval.
//
// Why the floor term: Linux 6.1 reports num_committed = vm_memory_committed() + its ballooned
// pages + hot-added pages not yet online + compute_balloon_floor() (drivers/hv/hv_balloon.c:1130
// get_pages_committed, :1096 compute_balloon_floor). The floor is a function of the guest's size
// with slope up to 1/2, so Hyper-V's plain committed * (1 + buffer) feeds the guest's size back
// into its own demand with gain slope * (1 + buffer), which reaches 1 for a small guest with a
// 100 % buffer and never settles. The buffer therefore applies to the use the guest reports on
// top of its floor, and the floor is added back unscaled. A Windows guest reports no such floor
// (linux_floor = false).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "base/error.hpp"
#include "devices/hv_balloon/dm_config.hpp"
#include "mem/gpa.hpp"

namespace vmm::hv_balloon {

struct GuestStatusReport;

enum class PolicyMode : std::uint8_t { Manual, Auto };
std::string_view policy_mode_name(PolicyMode);
std::optional<PolicyMode> parse_policy_mode(std::string_view);

struct PolicyConfig {
    PolicyMode mode = PolicyMode::Manual;
    mem::PageCount min;              // Lowest target auto mode sets.
    mem::PageCount max;              // Highest (0: the engine's max).
    std::uint32_t buffer_percent = 20; // Hyper-V's default memory buffer.
    std::uint32_t weight = 50;       // 0-100, for host-wide arbitration (docs/auto-memory.md).
    mem::PageCount min_step { (16ull << 20) / mem::PAGE_SIZE }; // Smaller changes are not worth an operation.
    Duration min_interval = std::chrono::seconds { 2 };         // Least time between two auto operations.
    std::uint32_t hysteresis_percent = 5; // Dead band around the current size (percent of it).
    Duration shrink_delay = std::chrono::seconds { 10 };        // A surplus must last this long.
    // Reports older than this are not acted upon (Linux reports every second: hv_balloon.c
    // dm_thread_func waits 1 * HZ between post_status calls).
    Duration report_max_age = std::chrono::seconds { 5 };
    bool linux_floor = true; // The guest's committed includes Linux's compute_balloon_floor().

    bool operator==(PolicyConfig const&) const = default;
};

// The limits every PolicyConfig must meet (one message naming the first field that does not).
// `engine_max` is the largest size the engine can reach (boot + hot-add window); a larger max
// is clamped to it.
inline constexpr std::uint32_t MAX_BUFFER_PERCENT = 2000; // Hyper-V caps the buffer at 2000 %.
inline constexpr std::uint32_t MAX_WEIGHT = 100;
inline constexpr std::uint32_t MAX_HYSTERESIS_PERCENT = 50;
Result<void> validate_policy(PolicyConfig const&, mem::PageCount engine_max);

// compute_balloon_floor() of a Linux guest with `total` pages (hv_balloon.c:1096), in pages.
mem::PageCount linux_balloon_floor(mem::PageCount total);

// What the engine knows when it asks (all sizes in 4 KiB pages).
struct PolicyView {
    Instant now {};
    bool connected = false;
    mem::PageCount current;   // Guest-visible now: boot + hot-added - ballooned.
    mem::PageCount ballooned; // Pages in the host's balloon.
    mem::PageCount reachable; // The most the engine can give: current + ballooned (+ hot-add room).
    std::optional<mem::PageCount> target; // The engine's current target.
    bool operation_running = false;
    bool shrinking = false;   // The running operation balloons (goes down).
    GuestStatusReport const* report = nullptr; // The last report, if any.
};

// The last evaluation, for GET /api/v1/memory. `reason` is static text.
struct PolicyDecision {
    Instant at {};
    std::string_view reason = "no evaluation yet";
    std::optional<mem::PageCount> demand;  // The guest's own use (see the rule above).
    std::optional<mem::PageCount> desired; // What the rule asks for, clamped to min/max and the ceiling.
    std::optional<mem::PageCount> wanted;  // The same without the host ceiling (the arbiter's "want");
                                           // while reports are stale, the last fresh one's.
    std::optional<mem::PageCount> target;  // Set when this evaluation started an operation.
};

struct PolicyCounters {
    std::uint64_t evaluations = 0;
    std::uint64_t decisions = 0;      // Targets set by auto mode.
    std::uint64_t grow_decisions = 0;
    std::uint64_t shrink_decisions = 0;
    std::uint64_t ignored_reports = 0; // Stale, or from a guest whose numbers are impossible.
    Duration under_pressure {};       // Time the guest wanted more than it had (auto mode).
    std::uint64_t ceiling_changes = 0;  // Host ceilings set to a new value (renewals not counted).
    std::uint64_t ceiling_expiries = 0; // Leases that lapsed without renewal.
};

// The host-wide arbiter's upper bound on this VM's target (docs/auto-memory.md "Host-wide
// arbitration"): a lease, void after `expires`, so a VM whose arbiter died falls back to its own
// [min, max]. Auto mode only: manual mode keeps it but ignores it.
struct HostCeiling {
    mem::PageCount limit;
    Instant expires {};

    bool operator==(HostCeiling const&) const = default;
};

class DmPolicy {
public:
    DmPolicy() = default;
    explicit DmPolicy(PolicyConfig config) : m_config(config) {}

    // Run time switch (validated by the caller): forgets the surplus clock and the back-off.
    void configure(PolicyConfig config);
    PolicyConfig const& config() const { return m_config; }
    bool automatic() const { return m_config.mode == PolicyMode::Auto; }

    // One evaluation (a status report arrived, or next_deadline() passed). Returns the target to
    // set, or nullopt to leave the guest alone; last_decision() says why either way.
    std::optional<mem::PageCount> evaluate(PolicyView const&);
    // An operation auto mode started ended (the engine calls it for those only).
    void on_operation_finished(bool reached);
    // Guest reboot or reconnect: its old reports and the surplus clock are void.
    void on_guest_reset();
    // Sets (or, with nullopt, clears) the host ceiling. True if its limit changed (a renewal
    // of the same limit only moves the expiry). The caller evaluates afterwards.
    bool set_ceiling(std::optional<HostCeiling> ceiling);
    // Drops the ceiling if its lease lapsed by `now`; true if it did (once per lease).
    bool expire_ceiling(Instant now);
    std::optional<HostCeiling> const& ceiling() const { return m_ceiling; }
    // When evaluate() next may decide something without a new report (nullopt: only a report);
    // includes the ceiling's expiry, so a lapsed lease is noticed without a report.
    std::optional<Instant> next_deadline() const;

    PolicyDecision const& last_decision() const { return m_last; }
    PolicyCounters const& counters() const { return m_counters; }

private:
    std::optional<mem::PageCount> decide(PolicyView const&, mem::PageCount desired);
    std::optional<mem::PageCount> obey_ceiling(PolicyView const&, mem::PageCount desired);
    std::optional<mem::PageCount> ceiling_breached(PolicyView const&, std::optional<mem::PageCount> desired) const;
    std::optional<mem::PageCount> hold(std::string_view reason, std::optional<Instant> retry = std::nullopt);
    void account_pressure(Instant now, bool pressured);

    PolicyConfig m_config;
    PolicyDecision m_last;
    PolicyCounters m_counters;
    std::optional<Instant> m_deadline;
    std::optional<Instant> m_last_operation;      // When auto mode last set a target.
    std::optional<Instant> m_surplus_since;       // Desired below the dead band since then...
    mem::PageCount m_surplus_peak;                // ...and the highest desired meanwhile.
    std::uint32_t m_failures = 0;                 // Consecutive auto operations that fell short.
    std::optional<Instant> m_pressure_clock;      // Last evaluation, if it found pressure.
    std::optional<HostCeiling> m_ceiling;         // The arbiter's lease, if any.
    std::optional<mem::PageCount> m_wanted;       // The last fresh report's wish (kept while reports are stale).
};

} // namespace vmm::hv_balloon

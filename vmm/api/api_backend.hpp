// SPDX-License-Identifier: MIT
// The seam between the REST API server and the VM: plain data the server renders as JSON, and an
// abstract, thread-safe ApiBackend the server calls from its own I/O thread.
#pragma once

#include <cstdint>
#include <expected>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace vmm::api {

// Time sync IC (devices/ic/timesync_ic.hpp).
struct GuestTimeSync {
    std::string service = "closed"; // IC state: closed|negotiating|ready|refused
    bool synced = false;            // The guest acknowledged a SYNC sample (it set its clock).
    std::uint64_t samples = 0;      // Periodic samples it acknowledged.
};

// KVP IC (devices/ic/kvp_ic.hpp): what the guest reported.
struct GuestInfo {
    std::string service = "closed";                // IC state: closed|negotiating|ready|refused
    std::optional<std::uint64_t> age_ms;           // Since the last complete read (null before).
    std::map<std::string, std::string> intrinsic;  // The guest's Auto pool (host name, OS, ...).
    std::map<std::string, std::string> guest;      // Pairs the guest's software published.
};

// The guest as the integration services see it (devices/ic/): GET /api/v1/vm "guest".
struct GuestHealth {
    std::string heartbeat = "none";                  // "ok" | "late" | "none"
    std::optional<std::uint64_t> heartbeat_age_ms;   // Age of the guest's last heartbeat answer.
    std::string shutdown_service = "closed";         // IC state: closed|negotiating|ready|refused
    std::optional<std::string> shutdown;             // Shutdown in progress: "requested" | "forced"
    std::optional<GuestTimeSync> time_sync;          // Absent when not offered.
    std::optional<GuestInfo> info;                   // Absent when KVP is not offered.
};

// One synthetic NIC ([[net]], vmm/backends/net_backend.*): its TAP, the link the guest sees,
// how far the guest's driver got, and its counters (host view: rx = host -> guest).
struct NicInfo {
    std::uint32_t index = 0;
    std::string tap;
    bool tap_created = false; // microvmm created the TAP (removed when it exits).
    std::string mac;          // "02:15:5d:00:00:01"
    std::uint32_t mtu = 0;
    std::string link;         // "up" | "down": the link state indicated to the guest.
    std::string guest;        // "absent" (no channel), "connected" (channel open), "ready" (RNDIS up, filter set).
    std::uint64_t rx_packets = 0, rx_bytes = 0, rx_dropped = 0;
    std::uint64_t tx_packets = 0, tx_bytes = 0, tx_dropped = 0;
    // The dropped frames by reason, in a fixed order; rx_dropped / tx_dropped are their sums.
    // rx: queue_full, too_big, no_driver, link_down, filtered; tx: queue_full, link_down,
    // tap_full, tap_error (NetBackend, vmm/backends/net_backend.cpp, says what each means).
    std::vector<std::pair<std::string, std::uint64_t>> rx_dropped_by, tx_dropped_by;
    std::uint64_t guest_errors = 0;
};

struct VmInfo {
    std::string state;          // "running", "paused", "stopped", "guestless"...
    std::uint32_t vcpus = 0;
    std::uint64_t uptime_ms = 0;
    std::uint64_t boot_count = 0; // Guest (re)boots seen since the VMM started (1 after first boot).
    std::string version;          // microvmm version string.
    std::optional<GuestHealth> guest; // Absent without integration services.
    std::vector<NicInfo> nics;        // [[net]] NICs; omitted from the JSON when there are none.
};

// PUT /api/v1/vm/shutdown.
struct ShutdownRequest {
    std::optional<std::uint64_t> timeout_ms; // Absent: [integration] shutdown_timeout_ms.
    bool reboot = false;
};
struct ShutdownStarted {
    // "guest": asked the guest's shutdown service, forced after timeout_ms if it has not powered
    // off by then. "forced": no service answered to ask (or timeout 0): stopped now.
    std::string method;
    std::uint64_t timeout_ms = 0;
    bool reboot = false;
    std::optional<std::string> reason; // Why "forced".
};

// The guest's last DM_STATUS_REPORT (Linux hv_balloon.c post_status()), in MiB.
struct GuestStatus {
    std::uint64_t available_mib = 0;
    std::uint64_t committed_mib = 0;
    std::uint64_t age_ms = 0; // Time since the report arrived.
};

// One memory-target change. The backend owns ids (monotonic, never reused) and states.
struct Operation {
    std::uint64_t id = 0;
    std::string kind;  // "balloon" | "unballoon" | "hot_add" | "idle" (target already reached)
    std::uint64_t from_mib = 0;
    std::uint64_t target_mib = 0;
    std::string state; // "running" | "done" | "superseded" | "failed" | "timed_out"
    std::uint64_t done_mib = 0;
    std::uint64_t remaining_mib = 0;
    std::uint64_t started_ms = 0;                // VM uptime clock (same as VmInfo::uptime_ms).
    std::optional<std::uint64_t> finished_ms;    // Set once state != "running".
    std::optional<std::string> reason;           // Why failed/timed_out/superseded (host text only).

    bool running() const { return state == "running"; }
};

// What the host holds for guest RAM (vmm/host_memory_use.hpp), in bytes.
struct HostMemory {
    std::uint64_t boot_ram_resident_bytes = 0; // The boot-RAM memfd's allocated blocks.
    std::uint64_t hot_add_resident_bytes = 0;  // Resident pages of the hot-add window.
};

// Automatic sizing ([dynamic_memory] mode and its limits; PUT /api/v1/memory/policy).
struct MemoryPolicy {
    std::string mode = "manual";        // "manual" | "auto"
    std::uint64_t min_mib = 0;
    std::uint64_t max_mib = 0;
    std::uint64_t buffer_percent = 0;
    std::uint64_t weight = 0;
    std::uint64_t min_step_mib = 0;
    std::uint64_t min_interval_ms = 0;
    std::uint64_t hysteresis_percent = 0;
    std::uint64_t shrink_delay_ms = 0;
    std::string on_reboot_size = "boot"; // "boot" | "last"
};
// The policy's last evaluation (whatever the mode) and why it did or did not act.
struct PolicyDecision {
    std::string reason;                     // Host text.
    std::uint64_t at_ms = 0;                // VM uptime clock.
    std::optional<std::uint64_t> demand_mib;  // The guest's use as the rule reads its report.
    std::optional<std::uint64_t> desired_mib; // What the rule asked for, clamped to min/max and the ceiling.
    std::optional<std::uint64_t> wanted_mib;  // The same without the host ceiling (the arbiter reads it).
    std::optional<std::uint64_t> target_mib;  // Set when this evaluation started an operation.
};
// A PUT /api/v1/memory/policy body: each present field replaces the current value.
struct PolicyUpdate {
    std::optional<std::string> mode;
    std::optional<std::uint64_t> min_mib, max_mib, buffer_percent, weight, min_step_mib, min_interval_ms,
        hysteresis_percent, shrink_delay_ms;
    std::optional<std::string> on_reboot_size;
};

// The host-wide arbiter's ceiling (PUT /api/v1/memory/ceiling; docs/auto-memory.md): an upper
// bound on auto mode's target, valid for a lease.
struct MemoryCeiling {
    std::uint64_t mib = 0;
    std::uint64_t lease_ms = 0;      // As last set or renewed.
    std::uint64_t expires_in_ms = 0; // From now.
    bool applied = false;            // False in manual mode (kept, not applied) or with no DM engine.
};
// PUT /api/v1/memory/ceiling body.
struct CeilingRequest {
    std::uint64_t mib = 0;
    std::uint64_t lease_ms = 0;
};
// Bounds of a lease: at least one arbiter period of 100 ms, at most ten minutes.
inline constexpr std::uint64_t MIN_CEILING_LEASE_MS = 100;
inline constexpr std::uint64_t MAX_CEILING_LEASE_MS = 600'000;

struct MemoryInfo {
    std::uint64_t boot_mib = 0;
    std::uint64_t max_mib = 0;        // [memory] max_memory_mib: the upper bound for a target.
    std::uint64_t target_mib = 0;
    std::uint64_t current_mib = 0;    // Guest-visible: boot - ballooned + hot_added.
    std::uint64_t ballooned_mib = 0;
    std::uint64_t hot_added_mib = 0;
    // The lowest target the backend accepts ("safe floor"). The DM side decides it; the
    // recommended rule is max(128 MiB, 25 % of boot, the guest's last committed_mib), so a
    // target can never push the guest below what it has promised to its processes.
    std::uint64_t floor_mib = 0;
    bool dm_connected = false;
    std::optional<std::uint32_t> dm_protocol_version; // DM_VERSION as negotiated, e.g. 0x00020000.
    std::optional<GuestStatus> guest_status;
    std::optional<Operation> operation; // The current operation, or the last finished one.
    std::optional<HostMemory> host;     // Absent while no guest RAM exists (between boots).
    MemoryPolicy policy;
    std::optional<PolicyDecision> last_decision; // Absent before the first evaluation.
    std::optional<MemoryCeiling> ceiling;        // Absent with no lease in force.
};

// Monotonic counters for GET /metrics. The backend counts; the server only renders.
struct MemoryCounters {
    std::uint64_t operations_started = 0;
    std::uint64_t operations_done = 0;
    std::uint64_t operations_superseded = 0;
    std::uint64_t operations_failed = 0;
    std::uint64_t operations_timed_out = 0;
    std::uint64_t rejected_guest_ranges = 0; // Guest-sent page ranges refused (hostile or stale).
    std::uint64_t status_reports = 0;
    std::uint64_t guest_reboots = 0;
    std::uint64_t balloon_pages_total = 0;   // 4 KiB pages the guest gave back, ever.
    std::uint64_t unballoon_pages_total = 0; // 4 KiB pages returned to the guest, ever.
    std::uint64_t hot_added_pages_total = 0;
    std::uint64_t reported_pages_total = 0;  // Free page reporting: 4 KiB pages discarded.
    std::uint64_t reporting_refused = 0;     // Reporting calls stopped at an invalid range.
    std::uint64_t auto_grow_decisions = 0;   // Targets auto mode set, by direction.
    std::uint64_t auto_shrink_decisions = 0;
    std::uint64_t auto_ignored_reports = 0;  // Stale reports the policy would not act on.
    std::uint64_t under_pressure_ms = 0;     // Auto mode: time the guest wanted more than it had.
    std::uint64_t ceiling_changes = 0;       // Host ceilings set to a new value (not renewals).
    std::uint64_t ceiling_expiries = 0;      // Leases that lapsed without renewal.
};

enum class SetTargetError {
    NotConnected, // The guest's DM driver has not (yet) connected: 503 + Retry-After.
    AboveMax,     // target > max_mib: 400.
    BelowFloor,   // target < floor_mib: 400.
    AutoMode,     // The memory policy is "auto": 409 (switch to "manual" first).
};

// Every method may be called from the API thread while vCPU and device threads run: the
// implementation locks (briefly) or reads atomics. No method may block on the guest.
class ApiBackend {
public:
    virtual ~ApiBackend() = default;
    virtual VmInfo vm_info() = 0;
    virtual MemoryInfo memory_info() = 0;
    // Starts (or supersedes the running operation with) a new target. Returns the new operation;
    // if the target is already reached it may return an operation already in state "done".
    virtual std::expected<Operation, SetTargetError> set_target(std::uint64_t target_mib) = 0;
    // The operation with this id (running or finished), or nullopt if unknown/forgotten.
    virtual std::optional<Operation> operation(std::uint64_t id) = 0;
    virtual MemoryCounters counters() = 0;
    // Changes the memory policy at run time. The error is the fault_message of a 400 (a field
    // out of its bounds, named). A backend without Dynamic Memory refuses.
    virtual std::expected<MemoryPolicy, std::string> set_policy(PolicyUpdate const&)
    {
        return std::unexpected(std::string("this VMM has no Dynamic Memory policy"));
    }
    // Sets or renews the host ceiling (bounds already checked by the router); nullopt clears it.
    // The error is the fault_message of a 409 (no Dynamic Memory here).
    virtual std::expected<std::optional<MemoryCeiling>, std::string> set_ceiling(std::optional<CeilingRequest> const&)
    {
        return std::unexpected(std::string("this VMM has no Dynamic Memory policy"));
    }
    // Extra Prometheus text (complete HELP/TYPE/sample lines) appended to GET /metrics.
    virtual std::string extra_metrics() { return {}; }
    // PUT /api/v1/net/{nic}/link: sets the link state the guest sees on NIC `nic` (config order)
    // and returns the NIC as GET /api/v1/vm shows it. The error is the fault_message of a 404
    // (no such NIC; a backend without NICs has none).
    virtual std::expected<NicInfo, std::string> set_link(std::uint32_t nic, bool)
    {
        return std::unexpected("no NIC " + std::to_string(nic) + " (this VM has no [[net]] NICs)");
    }
    // Asks the guest to shut down or restart; never waits for it. The error is the
    // fault_message of a 409 (nothing to stop, or a shutdown already under way). A backend
    // without VM lifecycle control (the memory-only tests' fakes) refuses.
    virtual std::expected<ShutdownStarted, std::string> shutdown(ShutdownRequest const&)
    {
        return std::unexpected(std::string("this VMM has no guest shutdown control"));
    }
};

// A decorator's base: forwards every call to `inner`, so a decorator (the ICs, the NICs) overrides
// only what it adds and a call added to ApiBackend later reaches the DM backend through every
// layer (a hand-written forwarder that missed one answered with the base class's refusal).
class ForwardingApiBackend : public ApiBackend {
public:
    explicit ForwardingApiBackend(ApiBackend& inner)
        : m_inner(inner)
    {
    }
    VmInfo vm_info() override { return m_inner.vm_info(); }
    MemoryInfo memory_info() override { return m_inner.memory_info(); }
    std::expected<Operation, SetTargetError> set_target(std::uint64_t target_mib) override
    {
        return m_inner.set_target(target_mib);
    }
    std::optional<Operation> operation(std::uint64_t id) override { return m_inner.operation(id); }
    MemoryCounters counters() override { return m_inner.counters(); }
    std::expected<MemoryPolicy, std::string> set_policy(PolicyUpdate const& update) override
    {
        return m_inner.set_policy(update);
    }
    std::expected<std::optional<MemoryCeiling>, std::string> set_ceiling(std::optional<CeilingRequest> const& request) override
    {
        return m_inner.set_ceiling(request);
    }
    std::string extra_metrics() override { return m_inner.extra_metrics(); }
    std::expected<NicInfo, std::string> set_link(std::uint32_t nic, bool up) override { return m_inner.set_link(nic, up); }
    std::expected<ShutdownStarted, std::string> shutdown(ShutdownRequest const& request) override
    {
        return m_inner.shutdown(request);
    }

protected:
    ApiBackend& m_inner;
};

} // namespace vmm::api

// SPDX-License-Identifier: MIT
// Observable state of the Dynamic Memory engine: the DmStatus snapshot, counters, the current
// operation and the events a REST server streams.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <variant>

#include "devices/hv_balloon/dm_config.hpp"
#include "devices/hv_balloon/dm_policy.hpp"
#include "devices/hv_balloon/protocol.hpp"
#include "mem/guest_physical_map.hpp"

namespace vmm::hv_balloon {

// Engine states. "RingSpace" = message built but the host->guest ring is full.
enum class State : std::uint8_t {
    Closed,           // No open channel.
    WaitVersion,      // Channel open; waiting for an acceptable DM_VERSION_REQUEST.
    WaitCaps,         // Version accepted; waiting for DM_CAPABILITIES_REPORT.
    PostConnectDelay, // Connected; holding requests back (Windows profile).
    Idle,
    BalloonWaitRingSpace,
    BalloonWaitReply,
    UnballoonWaitRingSpace,
    UnballoonWaitReply,
    HotAddWaitRingSpace,
    HotAddWaitReply,
};
std::string_view state_name(State);

enum class OperationKind : std::uint8_t { None, Balloon, Unballoon, HotAdd };
enum class OperationState : std::uint8_t { Running, Done, Superseded, Failed, TimedOut };
std::string_view operation_kind_name(OperationKind);
std::string_view operation_state_name(OperationState);

// One set_target(): moves the guest from `from` towards `target`, possibly in several phases
// (unballoon, then hot-add, then balloon any hot-add rounding excess).
struct DmOperation {
    std::uint64_t id = 0;
    OperationKind kind = OperationKind::None; // The current (or last) phase.
    OperationState state = OperationState::Running;
    mem::PageCount from;                      // Guest size when it started.
    mem::PageCount target;
    mem::PageCount requested;                 // |target - from|.
    mem::PageCount done;                      // Pages moved towards the target so far.
    Instant started_at {};
    std::optional<Instant> finished_at;
    std::string_view reason;                  // Why Failed/TimedOut/Superseded (static text).
};

// The guest's last DM_STATUS_REPORT. Untrusted hints (a guest may send anything).
struct GuestStatusReport {
    mem::PageCount num_avail;
    mem::PageCount num_committed;
    mem::PageCount page_file_size;
    mem::PageCount zero_free;
    Instant received_at {};
};

struct DmCounters {
    std::array<std::uint64_t, mem::REJECT_REASON_COUNT> rejected_ranges {}; // By mem::RejectReason.
    std::uint64_t malformed_packets = 0;     // Short, size field lying, range_count not fitting.
    std::uint64_t unknown_messages = 0;      // Types the host never receives.
    std::uint64_t unsolicited_messages = 0;  // Valid type, wrong state (stale or unasked).
    std::uint64_t operations_started = 0;
    std::uint64_t operations_done = 0;
    std::uint64_t operations_superseded = 0;
    std::uint64_t operations_failed = 0;
    std::uint64_t operations_timed_out = 0;
    std::uint64_t timeouts = 0;              // Every expired wait (reply or ring space).
    std::uint64_t balloon_requests = 0;      // Messages sent.
    std::uint64_t unballoon_requests = 0;
    std::uint64_t hot_add_requests = 0;
    std::uint64_t balloon_pages_total = 0;   // Accepted from the guest, ever.
    std::uint64_t unballoon_pages_total = 0; // Returned to the guest, ever.
    std::uint64_t hot_added_pages_total = 0;
    std::uint64_t discard_calls = 0;
    std::uint64_t discard_failures = 0;
    std::uint64_t hot_add_overreports = 0;   // Response page_count > requested (clamped).
    std::uint64_t memslot_failures = 0;      // ensure_mapped failed: hot-add not sent.
    std::uint64_t send_failures = 0;         // ChannelPort errors other than Busy.
    std::uint64_t status_reports = 0;
    std::uint64_t guest_resets = 0;          // Channel closes, reconnects and machine resets.
    std::uint64_t cold_discard_calls = 0;    // Free page reporting hint calls.
    std::uint64_t cold_discard_refused = 0;  // Calls stopped at an invalid range.
    std::uint64_t cold_discard_pages_total = 0; // Reported free pages discarded, ever.
};

struct DmStatus {
    State state = State::Closed;
    bool connected = false;                  // Handshake done (PostConnectDelay or later).
    std::optional<std::uint32_t> protocol_version;
    std::optional<DmCaps> caps;
    std::optional<mem::PageCount> target;    // Last set_target(), if any.
    mem::PageCount boot;
    mem::PageCount max;                      // Boot + hot-add window.
    mem::PageCount current;                  // Boot + hot-added - ballooned.
    mem::PageCount ballooned;
    mem::PageCount hot_added;
    std::size_t ballooned_runs = 0;          // Tree nodes (metadata = runs * NODE_BYTES).
    std::uint32_t memslots_mapped = 0;
    bool hot_add_available = false;          // Caps, window and guest results allow more hot-add.
    std::optional<GuestStatusReport> guest_status;
    std::optional<Duration> guest_status_age;
    std::optional<DmOperation> operation;    // Running, or the last finished one.
    DmCounters counters;
    PolicyConfig policy;
    PolicyDecision policy_decision;          // The policy's last evaluation and why.
    PolicyCounters policy_counters;
    std::optional<HostCeiling> ceiling;      // The arbiter's lease, if any (docs/auto-memory.md).
};

// Events (a REST server streams these).
struct DmConnected { std::uint32_t protocol_version; DmCaps caps; };
struct DmStatusReported { GuestStatusReport report; };
struct DmOperationProgress { DmOperation operation; };
struct DmOperationDone { DmOperation operation; };
enum class ResetKind : std::uint8_t { ChannelClosed, Reconnected, MachineReset };
std::string_view reset_kind_name(ResetKind);
struct DmGuestReset { ResetKind kind; mem::PageCount ballooned_forgotten; mem::PageCount hot_add_released; };
// One per guest message with refused ranges: how many, and the first one.
struct DmRejectedGuestRange {
    std::uint64_t start;
    std::uint64_t count;
    mem::RejectReason reason;
    std::uint32_t rejected_in_message;
};
// Auto mode set a target (one per decision, not per evaluation).
struct DmPolicyDecided { PolicyDecision decision; mem::PageCount from; };
// The host ceiling got a new limit (nullopt: cleared); renewals of the same limit are silent.
struct DmCeilingChanged { std::optional<mem::PageCount> limit; Duration lease {}; };
// The arbiter stopped renewing: the VM is back to its own [min, max].
struct DmCeilingExpired { mem::PageCount limit; };
using DmEvent = std::variant<DmConnected, DmStatusReported, DmOperationProgress, DmOperationDone,
    DmGuestReset, DmRejectedGuestRange, DmPolicyDecided, DmCeilingChanged, DmCeilingExpired>;
// "dm_connected", "status_report", "operation_progress", "operation_done", "guest_reboot",
// "rejected_guest_range", "policy_decision", "ceiling_changed", "ceiling_expired".
std::string_view event_name(DmEvent const&);

} // namespace vmm::hv_balloon

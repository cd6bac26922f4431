// SPDX-License-Identifier: MIT
// Names of engine states, operation kinds/states, reset kinds and events (logs, REST, metrics).
#include "devices/hv_balloon/dm_status.hpp"

namespace vmm::hv_balloon {

std::string_view state_name(State state)
{
    switch (state) {
    case State::Closed: return "Closed";
    case State::WaitVersion: return "WaitVersion";
    case State::WaitCaps: return "WaitCaps";
    case State::PostConnectDelay: return "PostConnectDelay";
    case State::Idle: return "Idle";
    case State::BalloonWaitRingSpace: return "BalloonWaitRingSpace";
    case State::BalloonWaitReply: return "BalloonWaitReply";
    case State::UnballoonWaitRingSpace: return "UnballoonWaitRingSpace";
    case State::UnballoonWaitReply: return "UnballoonWaitReply";
    case State::HotAddWaitRingSpace: return "HotAddWaitRingSpace";
    case State::HotAddWaitReply: return "HotAddWaitReply";
    }
    return "Unknown";
}

std::string_view operation_kind_name(OperationKind kind)
{
    switch (kind) {
    case OperationKind::None: return "idle";
    case OperationKind::Balloon: return "balloon";
    case OperationKind::Unballoon: return "unballoon";
    case OperationKind::HotAdd: return "hot_add";
    }
    return "unknown";
}

std::string_view operation_state_name(OperationState state)
{
    switch (state) {
    case OperationState::Running: return "running";
    case OperationState::Done: return "done";
    case OperationState::Superseded: return "superseded";
    case OperationState::Failed: return "failed";
    case OperationState::TimedOut: return "timed_out";
    }
    return "unknown";
}

std::string_view reset_kind_name(ResetKind kind)
{
    switch (kind) {
    case ResetKind::ChannelClosed: return "channel_closed";
    case ResetKind::Reconnected: return "reconnected";
    case ResetKind::MachineReset: return "machine_reset";
    }
    return "unknown";
}

std::string_view event_name(DmEvent const& event)
{
    struct Namer {
        std::string_view operator()(DmConnected const&) const { return "dm_connected"; }
        std::string_view operator()(DmStatusReported const&) const { return "status_report"; }
        std::string_view operator()(DmOperationProgress const&) const { return "operation_progress"; }
        std::string_view operator()(DmOperationDone const&) const { return "operation_done"; }
        std::string_view operator()(DmGuestReset const&) const { return "guest_reboot"; }
        std::string_view operator()(DmRejectedGuestRange const&) const { return "rejected_guest_range"; }
        std::string_view operator()(DmPolicyDecided const&) const { return "policy_decision"; }
        std::string_view operator()(DmCeilingChanged const&) const { return "ceiling_changed"; }
        std::string_view operator()(DmCeilingExpired const&) const { return "ceiling_expired"; }
    };
    return std::visit(Namer {}, event);
}

} // namespace vmm::hv_balloon

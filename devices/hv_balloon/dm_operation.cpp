// SPDX-License-Identifier: MIT
// DynamicMemory: the memory target, operations (start, progress, supersede, finish), the
// planner that picks the next guest message, ring-space resumption and the status snapshot.
#include "devices/hv_balloon/dynamic_memory.hpp"

#include <algorithm>
#include <limits>

#include "base/log.hpp"

namespace vmm::hv_balloon {

namespace {
constexpr std::string_view COMPONENT = "hv_balloon";
}

Result<std::uint64_t> DynamicMemory::set_target(mem::PageCount target)
{
    if (target.raw() == 0 || target > m_map.max_pages())
        return fail(Errc::OutOfRange, "memory target (pages)", target.raw());
    m_target = target;
    m_reapply_pending = false;
    start_operation(target);
    m_operation_by_policy = false; // run_policy() marks its own after this returns.
    std::uint64_t id = m_operation->id;
    switch (m_state) {
    case State::Idle:
        step();
        break;
    case State::BalloonWaitRingSpace:
    case State::UnballoonWaitRingSpace:
    case State::HotAddWaitRingSpace:
        // Nothing reached the guest yet (unballoon ranges went back when the ring was full):
        // drop the unsent message and plan afresh. Mapped hot-add slots stay mapped.
        m_hot_add_in_flight.reset();
        enter(State::Idle);
        step();
        break;
    default:
        // A reply is outstanding (it finishes first) or the guest is not connected yet.
        break;
    }
    return id;
}

Result<std::uint64_t> DynamicMemory::set_target_mib(std::uint64_t target_mib)
{
    if (target_mib > (std::numeric_limits<std::uint64_t>::max() >> 20))
        return fail(Errc::OutOfRange, "memory target (MiB)", target_mib);
    return set_target(mem::PageCount::from_bytes_floor(target_mib << 20));
}

bool DynamicMemory::operation_running() const
{
    return m_operation && m_operation->state == OperationState::Running;
}

void DynamicMemory::start_operation(mem::PageCount target)
{
    if (operation_running())
        finish_operation(OperationState::Superseded, "superseded by a new target");
    mem::PageCount from = m_map.current_pages();
    DmOperation operation;
    operation.id = m_next_operation_id++;
    operation.from = from;
    operation.target = target;
    operation.requested = target >= from ? target - from : from - target;
    operation.started_at = m_now;
    m_operation = operation;
    ++m_counters.operations_started;
    log::info(COMPONENT, "operation {}: {} -> {} MiB", operation.id, from.mib(), target.mib());
}

void DynamicMemory::update_progress(OperationKind kind)
{
    if (!operation_running())
        return;
    auto& operation = *m_operation;
    operation.kind = kind;
    // Progress is how far the guest moved from `from` towards the target, whatever the phase
    // (hot-add rounding and its balloon correction included).
    mem::PageCount current = m_map.current_pages();
    std::uint64_t moved = 0;
    if (operation.target >= operation.from && current > operation.from)
        moved = (current - operation.from).raw();
    else if (operation.target < operation.from && current < operation.from)
        moved = (operation.from - current).raw();
    operation.done = mem::PageCount { std::min(moved, operation.requested.raw()) };
    emit(DmOperationProgress { operation });
}

void DynamicMemory::finish_operation(OperationState state, std::string_view reason)
{
    if (!operation_running())
        return;
    update_progress(m_operation->kind);
    auto& operation = *m_operation;
    operation.state = state;
    operation.reason = reason;
    operation.finished_at = m_now;
    switch (state) {
    case OperationState::Done: ++m_counters.operations_done; break;
    case OperationState::Superseded: ++m_counters.operations_superseded; break;
    case OperationState::Failed: ++m_counters.operations_failed; break;
    case OperationState::TimedOut: ++m_counters.operations_timed_out; break;
    case OperationState::Running: VMM_ASSERT(false);
    }
    if (m_operation_by_policy) {
        m_operation_by_policy = false;
        m_policy.on_operation_finished(state == OperationState::Done || state == OperationState::Superseded);
    }
    log::info(COMPONENT, "operation {} {}: now {} MiB (target {} MiB){}{}", operation.id,
        operation_state_name(state), m_map.current_pages().mib(), operation.target.mib(),
        reason.empty() ? "" : ": ", reason);
    emit(DmOperationDone { operation });
}

void DynamicMemory::emit(DmEvent const& event)
{
    if (m_events)
        m_events(event);
}

// Picks the next guest message towards the target. Runs only when Idle, with no response
// waiting for ring space, so there is never more than one DM operation outstanding.
void DynamicMemory::step()
{
    if (m_state != State::Idle || !m_control_outbox.empty())
        return;
    if (!operation_running()) {
        if (!m_reapply_pending || !m_target)
            return;
        m_reapply_pending = false;
        start_operation(*m_target);
    }
    mem::PageCount current = m_map.current_pages();
    mem::PageCount target = m_operation->target;
    if (current == target) {
        finish_operation(OperationState::Done, "");
        return;
    }
    if (current > target) {
        if (!m_caps || !m_caps->balloon()) {
            finish_operation(OperationState::Failed, "the guest cannot balloon");
            return;
        }
        std::uint64_t pages = std::min({ (current - target).raw(), m_config.max_balloon_pages_per_request.raw(),
            std::uint64_t { std::numeric_limits<std::uint32_t>::max() } });
        m_balloon_requested = mem::PageCount { std::max<std::uint64_t>(pages, 1) };
        m_balloon_accepted = mem::PageCount { 0 };
        m_operation->kind = OperationKind::Balloon;
        send_balloon_request();
        return;
    }
    if (m_map.ballooned_pages().raw() > 0) {
        m_operation->kind = OperationKind::Unballoon;
        send_unballoon_request();
        return;
    }
    if (hot_add_available()) {
        m_operation->kind = OperationKind::HotAdd;
        if (m_hot_add_late) {
            // One hot-add outstanding at a time, late ones included (dm_hot_add.cpp): this
            // operation stays running and goes on when the guest answers the timed-out request.
            log::info(COMPONENT, "operation {}: hot-add waits for the guest's late answer to {}", m_operation->id,
                *m_hot_add_late);
            return;
        }
        begin_hot_add(target - current);
        return;
    }
    finish_operation(OperationState::Failed, hot_add_blocked_reason());
}

void DynamicMemory::on_ring_space()
{
    if (!m_port || !flush_control())
        return;
    switch (m_state) {
    case State::BalloonWaitRingSpace: send_balloon_request(); break;
    case State::UnballoonWaitRingSpace: send_unballoon_request(); break;
    case State::HotAddWaitRingSpace: send_hot_add_request(); break;
    case State::Idle: step(); break;
    default: break;
    }
}

DmStatus DynamicMemory::status() const
{
    DmStatus status;
    status.state = m_state;
    status.connected = m_caps.has_value() && m_state != State::Closed;
    status.protocol_version = m_version;
    status.caps = m_caps;
    status.target = m_target;
    status.boot = m_map.boot_pages();
    status.max = m_map.max_pages();
    status.current = m_map.current_pages();
    status.ballooned = m_map.ballooned_pages();
    status.hot_added = m_map.hot_added_pages();
    status.ballooned_runs = m_map.ballooned().node_count();
    status.memslots_mapped = m_memslots ? m_memslots->mapped_count() : 0;
    status.hot_add_available = hot_add_available();
    status.guest_status = m_guest_status;
    if (m_guest_status)
        status.guest_status_age = m_now - m_guest_status->received_at;
    status.operation = m_operation;
    status.counters = m_counters;
    status.counters.rejected_ranges = m_map.rejected();
    status.policy = m_policy.config();
    status.policy_decision = m_policy.last_decision();
    status.policy_counters = m_policy.counters();
    status.ceiling = m_policy.ceiling();
    return status;
}

} // namespace vmm::hv_balloon

// SPDX-License-Identifier: MIT
// DynamicMemory: channel lifecycle, packet dispatch, handshake, status reports, timeouts and the
// planner that turns the target into one guest message at a time.
#include "devices/hv_balloon/dynamic_memory.hpp"

#include <algorithm>

#include "base/log.hpp"
#include "base/wire.hpp"

namespace vmm::hv_balloon {

namespace {

constexpr std::string_view COMPONENT = "hv_balloon";

template<Wire T>
bool fits(std::span<std::byte const> message)
{
    return message.size() >= sizeof(T);
}

} // namespace

DynamicMemory::DynamicMemory(mem::GuestPhysicalMap& map, mem::DiscardBackend& discard,
    mem::OnDemandMemslots* memslots, DmConfig config)
    : m_map(map)
    , m_discard(discard)
    , m_memslots(memslots)
    , m_config(config)
{
}

vmbus::OfferParams DynamicMemory::offer() const
{
    return vmbus::OfferParams { vmbus::Guid { DM_CLASS_GUID_BYTES }, m_config.instance, 0 };
}

void DynamicMemory::on_open(vmbus::ChannelPort& port)
{
    if (m_port || m_state != State::Closed)
        reset_connection(ResetKind::Reconnected, mem::PageCount { 0 });
    m_port = &port;
    enter(State::WaitVersion);
}

void DynamicMemory::on_close()
{
    if (m_state == State::Closed && !m_port)
        return;
    reset_connection(ResetKind::ChannelClosed, mem::PageCount { 0 });
    m_port = nullptr;
    enter(State::Closed);
}

void DynamicMemory::on_machine_reset()
{
    mem::PageCount released = release_hot_add();
    reset_connection(ResetKind::MachineReset, released);
    m_port = nullptr;
    enter(State::Closed);
}

void DynamicMemory::enter(State next, std::optional<Duration> timeout)
{
    if (next != m_state)
        log::debug(COMPONENT, "{} -> {}", state_name(m_state), state_name(next));
    m_state = next;
    m_deadline = timeout ? std::optional<Instant> { m_now + *timeout } : std::nullopt;
}

DynamicMemory::SendOutcome DynamicMemory::send(std::span<std::byte const> message)
{
    VMM_ASSERT(message.size() <= DM_MAX_HOST_MESSAGE_BYTES);
    if (!m_port)
        return SendOutcome::Failed;
    // The guest puts 0 in the VMBus transaction id and ignores the host's (guest-interface §8.1).
    auto sent = m_port->send_packet(message, 0);
    if (sent)
        return SendOutcome::Sent;
    if (sent.error().code() == Errc::Busy)
        return SendOutcome::Busy;
    ++m_counters.send_failures;
    log::warn(COMPONENT, "send failed: {}", sent.error());
    return SendOutcome::Failed;
}

void DynamicMemory::send_control(std::span<std::byte const> message)
{
    // Version/caps responses and INFO are few per connection; a guest that floods version
    // requests without reading its ring loses the excess.
    constexpr std::size_t MAX_QUEUED_CONTROL = 8;
    if (m_control_outbox.empty()) {
        auto outcome = send(message);
        if (outcome != SendOutcome::Busy)
            return;
    }
    if (m_control_outbox.size() >= MAX_QUEUED_CONTROL) {
        ++m_counters.send_failures;
        return;
    }
    m_control_outbox.emplace_back(message.begin(), message.end());
}

bool DynamicMemory::flush_control()
{
    while (!m_control_outbox.empty()) {
        if (send(m_control_outbox.front()) == SendOutcome::Busy)
            return false;
        m_control_outbox.pop_front();
    }
    return true;
}

void DynamicMemory::on_packet(std::span<std::byte const> payload)
{
    if (!m_port) {
        ++m_counters.unsolicited_messages;
        return;
    }
    if (payload.size() < sizeof(DmHeader)) {
        ++m_counters.malformed_packets;
        VMM_GUEST_WARN(COMPONENT, "packet of {} bytes is shorter than the DM header", payload.size());
        return;
    }
    auto header = wire_from<DmHeader>(payload);
    // hdr.size covers the whole DM message; the VMBus payload may carry padding after it.
    if (header.size < sizeof(DmHeader) || header.size > payload.size()) {
        ++m_counters.malformed_packets;
        VMM_GUEST_WARN(COMPONENT, "DM size field {} does not fit the {}-byte packet", std::uint16_t { header.size }, payload.size());
        return;
    }
    auto message = payload.first(header.size);
    switch (static_cast<DmMessageType>(header.type)) {
    case DmMessageType::DM_VERSION_REQUEST: return handle_version_request(message);
    case DmMessageType::DM_CAPABILITIES_REPORT: return handle_caps_report(message);
    case DmMessageType::DM_STATUS_REPORT: return handle_status_report(message);
    case DmMessageType::DM_BALLOON_RESPONSE: return handle_balloon_response(message);
    case DmMessageType::DM_UNBALLOON_RESPONSE: return handle_unballoon_response(message);
    case DmMessageType::DM_MEM_HOT_ADD_RESPONSE: return handle_hot_add_response(message);
    default:
        ++m_counters.unknown_messages;
        VMM_GUEST_WARN(COMPONENT, "ignoring DM message type {}", std::uint16_t { header.type });
        return;
    }
}

void DynamicMemory::handle_version_request(std::span<std::byte const> message)
{
    if (!fits<DmVersionRequest>(message)) {
        ++m_counters.malformed_packets;
        return;
    }
    std::uint32_t version = wire_from<DmVersionRequest>(message).version;
    // A version request on an established connection means a new driver instance.
    if (m_state != State::WaitVersion)
        reset_connection(ResetKind::Reconnected, mem::PageCount { 0 });
    bool accepted = version == DYNMEM_PROTOCOL_VERSION_1 || version == DYNMEM_PROTOCOL_VERSION_2
        || version == DYNMEM_PROTOCOL_VERSION_3;
    DmVersionResponse response {
        DmHeader { static_cast<std::uint16_t>(DmMessageType::DM_VERSION_RESPONSE), sizeof(DmVersionResponse), next_trans_id() },
        accepted ? 1u : 0u,
    };
    // Exactly one response per request: the guest's version and caps waits share one
    // completion (hv_balloon.c:1745, 1808), a duplicate would end the caps wait early.
    send_control(wire_bytes(response));
    if (!accepted) {
        log::info(COMPONENT, "rejecting DM version {:#x}; the guest may retry an older one", version);
        enter(State::WaitVersion);
        return;
    }
    m_version = version;
    enter(State::WaitCaps);
}

void DynamicMemory::handle_caps_report(std::span<std::byte const> message)
{
    if (!fits<DmCapabilities>(message)) {
        ++m_counters.malformed_packets;
        return;
    }
    if (m_state != State::WaitCaps) {
        ++m_counters.unsolicited_messages;
        VMM_GUEST_WARN(COMPONENT, "capabilities report in state {}", state_name(m_state));
        return;
    }
    auto report = wire_from<DmCapabilities>(message);
    m_caps = DmCaps { report.caps };
    // Answer at once: the guest gives up after 5 s (hv_balloon.c:1808).
    DmCapabilitiesResponse response {
        DmHeader { static_cast<std::uint16_t>(DmMessageType::DM_CAPABILITIES_RESPONSE), sizeof(DmCapabilitiesResponse), next_trans_id() },
        1,
    };
    send_control(wire_bytes(response));
    if (m_config.send_info_message && *m_version >= DYNMEM_PROTOCOL_VERSION_2) {
        DmInfoMaxPageCount info {
            DmHeader { static_cast<std::uint16_t>(DmMessageType::DM_INFO_MESSAGE), sizeof(DmInfoMaxPageCount), next_trans_id() },
            0, 16, INFO_TYPE_MAX_PAGE_CNT, 8, m_map.max_pages().raw(),
        };
        send_control(wire_bytes(info));
    }
    log::info(COMPONENT, "guest connected: protocol {:#x}, balloon {}, hot-add {} (alignment {} MiB)", *m_version,
        m_caps->balloon(), m_caps->hot_add(), m_caps->hot_add_alignment_bytes() >> 20);
    emit(DmConnected { *m_version, *m_caps });
    if (m_config.post_connect_delay > Duration::zero()) {
        enter(State::PostConnectDelay, m_config.post_connect_delay);
        return;
    }
    enter(State::Idle);
    step();
}

void DynamicMemory::handle_status_report(std::span<std::byte const> message)
{
    if (!fits<DmStatusReport>(message)) {
        ++m_counters.malformed_packets;
        return;
    }
    auto report = wire_from<DmStatusReport>(message);
    m_guest_status = GuestStatusReport { mem::PageCount { report.num_avail }, mem::PageCount { report.num_committed },
        mem::PageCount { report.page_file_size }, mem::PageCount { report.zero_free }, m_now };
    ++m_counters.status_reports;
    if (!m_last_status_event || m_now - *m_last_status_event >= m_config.status_event_interval) {
        m_last_status_event = m_now;
        emit(DmStatusReported { *m_guest_status });
    }
    run_policy();
}

void DynamicMemory::reset_connection(ResetKind kind, mem::PageCount hot_add_released)
{
    if (operation_running())
        finish_operation(OperationState::Failed, "guest reset or disconnected");
    m_reapply_pending = m_target.has_value() && m_config.reapply_target_after_reset;
    // The guest owns its ballooned pages again; they are punched, so they read back as zero.
    mem::PageCount forgotten = m_map.forget_ballooned();
    // A hot-add the old driver may still have done: never offer that range again.
    if (m_hot_add_in_flight)
        m_hot_add_cursor = m_hot_add_in_flight->end();
    m_hot_add_in_flight.reset();
    m_hot_add_late.reset();
    m_hot_add_disabled = false;
    m_control_outbox.clear();
    m_version.reset();
    m_caps.reset();
    m_guest_status.reset();
    m_balloon_requested = m_balloon_accepted = m_unballoon_in_flight = mem::PageCount { 0 };
    m_policy.on_guest_reset();
    ++m_counters.guest_resets;
    log::info(COMPONENT, "guest reset ({}): {} ballooned forgotten, {} hot-added released", reset_kind_name(kind),
        forgotten, hot_add_released);
    emit(DmGuestReset { kind, forgotten, hot_add_released });
}

void DynamicMemory::on_tick(Instant now)
{
    m_now = std::max(m_now, now);
    if (auto policy_due = m_policy.next_deadline(); policy_due && m_now >= *policy_due)
        run_policy();
    if (!m_deadline || m_now < *m_deadline)
        return;
    if (m_state == State::PostConnectDelay) {
        enter(State::Idle);
        step();
        return;
    }
    handle_timeout();
}

void DynamicMemory::handle_timeout()
{
    ++m_counters.timeouts;
    switch (m_state) {
    case State::BalloonWaitRingSpace:
    case State::UnballoonWaitRingSpace:
    case State::HotAddWaitRingSpace:
        m_hot_add_in_flight.reset(); // Never sent.
        finish_operation(OperationState::TimedOut, "host->guest ring stayed full");
        break;
    case State::BalloonWaitReply:
        // Late responses are refused as unsolicited: the guest keeps those pages offline.
        finish_operation(OperationState::TimedOut, "no balloon response from the guest");
        break;
    case State::UnballoonWaitReply:
        // The pages left the balloon when the request was sent; the guest may use them.
        m_counters.unballoon_pages_total += m_unballoon_in_flight.raw();
        m_unballoon_in_flight = mem::PageCount { 0 };
        finish_operation(OperationState::TimedOut, "no unballoon response from the guest");
        break;
    case State::HotAddWaitReply:
        // The guest may still add the range: its late answer is awaited before any other
        // hot-add (dm_hot_add.cpp), and the range is not re-offered unless that answer says
        // "transient, nothing added". Ballooning goes on meanwhile (other messages).
        m_hot_add_late = m_hot_add_in_flight;
        if (m_hot_add_in_flight)
            m_hot_add_cursor = m_hot_add_in_flight->end();
        m_hot_add_in_flight.reset();
        finish_operation(OperationState::TimedOut, "no hot-add response from the guest");
        break;
    default:
        break;
    }
    VMM_GUEST_WARN(COMPONENT, "timed out in state {}", state_name(m_state));
    enter(m_state == State::Closed || m_state == State::WaitVersion || m_state == State::WaitCaps ? m_state : State::Idle);
}

} // namespace vmm::hv_balloon

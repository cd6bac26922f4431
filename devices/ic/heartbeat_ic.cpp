// SPDX-License-Identifier: MIT
// HeartbeatIc: see heartbeat_ic.hpp.
#include "devices/ic/heartbeat_ic.hpp"

#include "base/log.hpp"

namespace vmm::ic {

std::string_view heartbeat_status_name(HeartbeatStatus status)
{
    switch (status) {
    case HeartbeatStatus::None: return "none";
    case HeartbeatStatus::Ok: return "ok";
    case HeartbeatStatus::Late: return "late";
    }
    return "unknown";
}

HeartbeatIc::HeartbeatIc(vmbus::Guid instance, HeartbeatConfig config)
    : IcChannel(instance, VERSIONS)
    , m_config(config)
{
}

HeartbeatStatus HeartbeatIc::status(u64 now_ns) const
{
    if (!m_last_answer)
        return HeartbeatStatus::None;
    return now_ns - *m_last_answer <= m_config.late_after_ns ? HeartbeatStatus::Ok : HeartbeatStatus::Late;
}

std::optional<u64> HeartbeatIc::age_ns(u64 now_ns) const
{
    if (!m_last_answer)
        return std::nullopt;
    return now_ns - *m_last_answer;
}

void HeartbeatIc::on_ready() { beat(); }

void HeartbeatIc::beat()
{
    HeartbeatBody body {};
    body.seq_num = m_sequence;
    // If the previous beat is still unanswered, IcChannel times it out; try again next interval.
    send_request(wire_bytes(body));
    m_next_send = now() + m_config.interval_ns;
}

void HeartbeatIc::on_response(std::span<std::byte const> body, u32 status)
{
    if (body.size() < sizeof(u64) || status != HV_S_OK) {
        ++m_wrong_sequence;
        return;
    }
    u64 answer = wire_from<u64>(body);
    if (answer != m_sequence + 1) {
        ++m_wrong_sequence;
        VMM_GUEST_WARN("ic", "heartbeat answer {} for sequence {} ignored", answer, m_sequence);
        return;
    }
    m_sequence = answer;
    ++m_beats;
    m_last_answer = now();
    m_reported_late = false;
}

std::optional<u64> HeartbeatIc::service_deadline() const
{
    std::optional<u64> deadline;
    if (state() == IcState::Ready && m_next_send)
        deadline = m_next_send;
    if (m_last_answer && !m_reported_late) {
        u64 late_at = *m_last_answer + m_config.late_after_ns + 1;
        if (!deadline || late_at < *deadline)
            deadline = late_at;
    }
    return deadline;
}

void HeartbeatIc::on_service_timer()
{
    if (state() == IcState::Ready && m_next_send && now() >= *m_next_send)
        beat();
    else if (state() != IcState::Ready)
        m_next_send.reset();
    if (!m_reported_late && status(now()) == HeartbeatStatus::Late) {
        m_reported_late = true;
        if (m_late_handler)
            m_late_handler();
    }
}

} // namespace vmm::ic

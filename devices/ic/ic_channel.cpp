// SPDX-License-Identifier: MIT
// IcChannel: ICMSG framing and version negotiation shared by every IC; see ic_channel.hpp.
#include "devices/ic/ic_channel.hpp"

#include <cstring>

#include "base/log.hpp"

namespace vmm::ic {

std::string_view ic_state_name(IcState state)
{
    switch (state) {
    case IcState::Closed: return "closed";
    case IcState::Negotiating: return "negotiating";
    case IcState::Ready: return "ready";
    case IcState::Refused: return "refused";
    }
    return "unknown";
}

IcChannel::IcChannel(vmbus::Guid instance, std::span<IcVersion const> service_versions)
    : m_instance(instance)
    , m_service_versions(service_versions.begin(), service_versions.end())
{
}

vmbus::OfferParams IcChannel::offer() const
{
    vmbus::OfferParams params;
    params.interface_type = class_guid();
    params.interface_instance = m_instance;
    params.accepted_packets = vmbus::ACCEPT_INBAND;
    // hv_utils opens 3-page rings each way (hv_util.c:558-559, VMBUS_RING_SIZE adds the header
    // page): room for two shutdown messages. One page is the least that holds one.
    params.min_ring_data_bytes = 4096;
    params.max_ring_data_bytes = 1u << 20;
    return params;
}

void IcChannel::on_open(vmbus::ChannelPort& port)
{
    m_port = &port;
    m_state = IcState::Negotiating;
    m_in_flight.reset();
    m_pending.clear();
    // Host speaks first: every framework version, then every service version, newest first.
    std::vector<std::byte> body(sizeof(IcNegotiate) + (FRAMEWORK_VERSIONS.size() + m_service_versions.size()) * sizeof(IcVersion));
    IcNegotiate negotiate { static_cast<u16>(FRAMEWORK_VERSIONS.size()), static_cast<u16>(m_service_versions.size()), 0 };
    std::memcpy(body.data(), &negotiate, sizeof(negotiate));
    std::size_t at = sizeof(negotiate);
    for (auto version : FRAMEWORK_VERSIONS) {
        std::memcpy(body.data() + at, &version, sizeof(version));
        at += sizeof(version);
    }
    for (auto version : m_service_versions) {
        std::memcpy(body.data() + at, &version, sizeof(version));
        at += sizeof(version);
    }
    // The negotiate message carries the newest versions in its header (as Hyper-V does).
    m_framework = FRAMEWORK_VERSIONS.front();
    send_message(IcMessageType::Negotiate, body, m_service_versions.front());
    if (m_deadline_hook)
        m_deadline_hook(next_deadline());
}

void IcChannel::on_close()
{
    bool had_request = m_in_flight && m_in_flight->type != IcMessageType::Negotiate;
    m_port = nullptr;
    m_state = IcState::Closed;
    m_in_flight.reset();
    m_pending.clear();
    if (had_request)
        on_request_lost();
    on_closed();
}

void IcChannel::on_ring_space()
{
    if (!m_port || m_pending.empty() || !m_in_flight)
        return;
    auto sent = m_port->send_packet(m_pending, m_in_flight->transaction_id);
    if (sent)
        m_pending.clear();
}

bool IcChannel::send_message(IcMessageType type, std::span<std::byte const> body, IcVersion service)
{
    if (!m_port || m_in_flight)
        return false;
    // Composed in a buffer kept between messages (every byte is written below): a KVP walk sends
    // hundreds of 2.6 KB requests, and an allocation and zero-fill for each was most of its cost.
    auto& packet = m_packet;
    packet.resize(ICMSG_HEADER_BYTES + body.size());
    PipeHeader pipe { 0, static_cast<u32>(sizeof(IcMessageHeader) + body.size()) };
    IcMessageHeader header {};
    header.framework = m_framework;
    header.type = static_cast<u16>(type);
    header.message_major = service.major;
    header.message_minor = service.minor;
    header.size = static_cast<u16>(body.size());
    header.transaction = m_ic_transaction++;
    header.flags = ICMSGHDRFLAG_TRANSACTION | ICMSGHDRFLAG_REQUEST;
    std::memcpy(packet.data(), &pipe, sizeof(pipe));
    std::memcpy(packet.data() + sizeof(pipe), &header, sizeof(header));
    if (!body.empty())
        std::memcpy(packet.data() + ICMSG_HEADER_BYTES, body.data(), body.size());
    u64 transaction = m_next_transaction++;
    m_in_flight = InFlight { type, transaction, now() };
    ++m_counters.requests_sent;
    auto sent = m_port->send_packet(packet, transaction);
    if (!sent) {
        if (sent.error().code() != Errc::Busy) {
            // The channel is going away (the host closes it): nothing will answer.
            m_in_flight.reset();
            return false;
        }
        ++m_counters.busy_sends;
        m_pending = packet; // Sent on ring space; the timeout still runs.
    }
    return true;
}

bool IcChannel::send_request(std::span<std::byte const> body)
{
    if (m_state != IcState::Ready)
        return false;
    return send_message(service_type(), body, m_service);
}

void IcChannel::on_packet(vmbus::InboundPacket const& packet)
{
    auto payload = packet.payload;
    if (payload.size() < ICMSG_HEADER_BYTES || payload.size() > MAX_PACKET_BYTES) {
        ++m_counters.bad_packets;
        VMM_GUEST_WARN("ic", "IC packet of {} bytes dropped", payload.size());
        return;
    }
    auto header = wire_from<IcMessageHeader>(payload.subspan(sizeof(PipeHeader)));
    if ((header.flags & ICMSGHDRFLAG_RESPONSE) == 0) {
        ++m_counters.bad_packets;
        VMM_GUEST_WARN("ic", "IC packet that is not a response dropped (flags {:#x})", header.flags);
        return;
    }
    // Only the in-flight request's answer counts; a second answer finds nothing in flight.
    if (!m_in_flight || packet.transaction_id != m_in_flight->transaction_id
        || header.type != static_cast<u16>(m_in_flight->type) || !m_pending.empty()) {
        ++m_counters.unexpected_responses;
        VMM_GUEST_WARN("ic", "unexpected IC response (type {}, transaction {}) dropped", header.type,
            packet.transaction_id);
        return;
    }
    auto type = m_in_flight->type;
    m_in_flight.reset();
    ++m_counters.responses;
    // The body the guest echoed back: no more than the packet holds, whatever icmsgsize says.
    auto body = payload.subspan(ICMSG_HEADER_BYTES);
    if (type == IcMessageType::Negotiate)
        on_negotiate_response(body);
    else
        on_response(body, header.status());
    if (m_deadline_hook)
        m_deadline_hook(next_deadline());
}

void IcChannel::on_negotiate_response(std::span<std::byte const> body)
{
    // vmbus_prep_negotiate_resp(): success leaves exactly one framework and one service version
    // (channel_mgmt.c:331-345); failure zeroes both counts.
    bool agreed = false;
    if (body.size() >= sizeof(IcNegotiate) + 2 * sizeof(IcVersion)) {
        auto counts = wire_from<IcNegotiate>(body);
        auto framework = wire_from<IcVersion>(body.subspan(sizeof(IcNegotiate)));
        auto service = wire_from<IcVersion>(body.subspan(sizeof(IcNegotiate) + sizeof(IcVersion)));
        bool framework_known = false, service_known = false;
        for (auto version : FRAMEWORK_VERSIONS)
            framework_known |= version == framework;
        for (auto version : m_service_versions)
            service_known |= version == service;
        agreed = counts.framework_count == 1 && counts.message_count == 1 && framework_known && service_known;
        if (agreed) {
            m_framework = framework;
            m_service = service;
        }
    }
    if (!agreed) {
        ++m_counters.negotiation_refused;
        m_state = IcState::Refused;
        VMM_GUEST_WARN("ic", "IC version negotiation failed (guest shares no version, or a bad answer)");
        return;
    }
    m_state = IcState::Ready;
    on_ready();
}

std::optional<u64> IcChannel::request_deadline() const
{
    if (!m_in_flight)
        return std::nullopt;
    auto timeout = response_timeout_ns(m_in_flight->type);
    if (!timeout)
        return std::nullopt;
    return m_in_flight->sent_at + *timeout;
}

std::optional<u64> IcChannel::next_deadline() const
{
    std::optional<u64> deadline = request_deadline();
    if (auto service = service_deadline(); service && (!deadline || *service < *deadline))
        deadline = service;
    return deadline;
}

void IcChannel::on_timer()
{
    u64 now_ns = now();
    if (auto expiry = request_deadline(); expiry && now_ns >= *expiry) {
        bool negotiation = m_in_flight->type == IcMessageType::Negotiate;
        m_in_flight.reset();
        m_pending.clear();
        ++m_counters.timeouts;
        if (negotiation)
            m_state = IcState::Refused; // A guest that never negotiates gets no service traffic.
        else
            on_request_lost();
    }
    on_service_timer(); // Services check state() themselves (heartbeat ages while closed).
}

} // namespace vmm::ic

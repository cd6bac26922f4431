// SPDX-License-Identifier: MIT
// HvSockConnection: one hv_sock channel's state machine and byte buffers; see the header.
#include "devices/hvsock/hvsock_connection.hpp"

#include <algorithm>
#include <cstring>

#include "base/log.hpp"

namespace vmm::hvsock {

HvSockConnection::HvSockConnection(vmbus::Guid service, vmbus::Guid instance, bool from_host, std::size_t buffer_bytes)
    : m_service(service)
    , m_instance(instance)
    , m_from_host(from_host)
    , m_to_guest(buffer_bytes)
    , m_received(std::max(buffer_bytes, 2 * HVS_MTU_BYTES))
{
    m_packet.reserve(PIPE_HEADER_BYTES + HVS_MTU_BYTES);
}

vmbus::OfferParams HvSockConnection::offer() const
{
    vmbus::OfferParams params;
    params.interface_type = m_service;
    params.interface_instance = m_instance;
    params.channel_flags = VMBUS_CHANNEL_TLNPI_PROVIDER_OFFER;
    // user_def is the offer's pipe union: u32 pipe_mode, then the pipe's user bytes, whose [0]
    // is "connection from host" (hyperv.h:283-320; hyperv_transport.c:311). Byte mode = 0.
    params.user_defined[4] = m_from_host ? 1 : 0;
    params.accepted_packets = vmbus::ACCEPT_INBAND;
    // Linux asks for 6 pages per direction, up to 64 (hyperv_transport.c:23-25, 366-381):
    // one data page is the least a packet stream needs, 1 MiB bounds what a guest makes us map.
    params.min_ring_data_bytes = 4096;
    params.max_ring_data_bytes = 1u << 20;
    return params;
}

void HvSockConnection::on_open(vmbus::ChannelPort& port)
{
    if (m_state != HvSockState::Offered) {
        // A re-open after close (the guest closed, then opened again): the stream is over.
        VMM_GUEST_WARN("hvsock", "channel reopened after close: ignored");
        return;
    }
    m_port = &port;
    m_state = HvSockState::Open;
    m_opened = true;
    pump(); // Bytes the host queued before the guest opened.
    changed();
}

void HvSockConnection::on_close()
{
    m_port = nullptr;
    if (m_state == HvSockState::Closed)
        return;
    m_state = HvSockState::Closed;
    changed();
}

void HvSockConnection::fail(char const* why, u64 detail)
{
    ++m_stats.packets_refused;
    VMM_GUEST_WARN("hvsock", "guest packet refused, connection reset: {} ({})", why, detail);
    m_failed = true;
    m_state = HvSockState::Closed; // The owner rescinds; no further packet is looked at.
    m_port = nullptr;
    changed();
}

void HvSockConnection::on_packet(vmbus::InboundPacket const& packet)
{
    if (m_state != HvSockState::Open)
        return;
    // Copy, then validate: the payload lives in the host's packet buffer already.
    if (packet.payload.size() < PIPE_HEADER_BYTES)
        return fail("packet shorter than its vmpipe header", packet.payload.size());
    std::uint32_t pkt_type = 0;
    std::uint32_t data_size = 0;
    std::memcpy(&pkt_type, packet.payload.data(), 4);
    std::memcpy(&data_size, packet.payload.data() + 4, 4);
    if (pkt_type != PIPE_PKT_TYPE_DATA)
        return fail("vmpipe pkt_type is not data", pkt_type);
    // The guest's own receive check (hyperv_transport.c:589-593), mirrored.
    if (data_size > packet.payload.size() - PIPE_HEADER_BYTES || data_size > HVS_MTU_BYTES)
        return fail("vmpipe data_size beyond the packet or the MTU", data_size);
    if (m_guest_fin)
        return fail("data after the guest's FIN", data_size);
    if (data_size == 0) {
        m_guest_fin = true;
        changed();
        return;
    }
    // ready_for_packet() guaranteed HVS_MTU_BYTES of room before this packet was taken.
    std::size_t taken = m_received.push(packet.payload.subspan(PIPE_HEADER_BYTES, data_size));
    if (taken != data_size)
        return fail("receive buffer overrun (host bug)", data_size);
    m_stats.bytes_from_guest += data_size;
    changed();
}

std::size_t HvSockConnection::send_to_guest(std::span<std::byte const> bytes)
{
    if (m_fin_requested || m_state == HvSockState::Closed)
        return 0;
    std::size_t taken = m_to_guest.push(bytes);
    pump();
    return taken;
}

void HvSockConnection::finish_to_guest()
{
    if (m_fin_requested)
        return;
    m_fin_requested = true;
    pump();
}

std::size_t HvSockConnection::take_from_guest(std::span<std::byte> out)
{
    return m_received.pop(out);
}

void HvSockConnection::pump()
{
    if (m_state != HvSockState::Open || !m_port)
        return;
    bool drained_any = false;
    while (!m_to_guest.empty()) {
        std::size_t want = std::min(m_to_guest.size(), HVS_MTU_BYTES);
        std::uint64_t space = m_port->send_space_bytes();
        std::size_t fits = space > PIPE_HEADER_BYTES ? static_cast<std::size_t>(space - PIPE_HEADER_BYTES) : 0;
        // Not even a small packet fits: try one anyway, so the ring's Busy sets pending_send_sz
        // and the guest signals once it has read enough (then on_ring_space() comes back).
        std::size_t chunk = fits >= std::min(want, MIN_CHUNK_BYTES) ? std::min(want, fits) : std::min(want, MIN_CHUNK_BYTES);
        m_packet.resize(PIPE_HEADER_BYTES + chunk);
        std::uint32_t const header[2] = { PIPE_PKT_TYPE_DATA, static_cast<std::uint32_t>(chunk) };
        std::memcpy(m_packet.data(), header, PIPE_HEADER_BYTES);
        m_to_guest.peek(std::span(m_packet).subspan(PIPE_HEADER_BYTES));
        if (!m_port->send_packet(m_packet, 0))
            return; // Busy (wait for space) or a broken ring (the host closes the channel).
        m_to_guest.drop(chunk);
        m_stats.bytes_to_guest += chunk;
        drained_any = true;
    }
    if (m_to_guest.empty() && m_fin_requested && !m_fin_sent) {
        std::uint32_t const header[2] = { PIPE_PKT_TYPE_DATA, 0 };
        if (m_port->send_packet(std::as_bytes(std::span(header)), 0))
            m_fin_sent = true;
        drained_any = true;
    }
    if (drained_any)
        changed(); // Room for more host bytes, or the FIN is out.
}

} // namespace vmm::hvsock

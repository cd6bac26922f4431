// SPDX-License-Identifier: MIT
// NetvscDevice, RNDIS side: the control messages Linux's rndis_filter.c and Windows' NDIS send
// (INITIALIZE, QUERY, SET, HALT, RESET, KEEPALIVE), data packets, status indications, and
// the packet filter. Message layouts: hyperv_net.h:1160-1300; OIDs: include/linux/rndis.h.
#include <algorithm>
#include <cstring>

#include "base/log.hpp"
#include "devices/netvsc/netvsc_device.hpp"

namespace vmm::netvsc {

namespace {

// Messages per SEND_RNDIS_PKT the guest may batch (Linux caps it at RNDIS_MAX_PKT_DEFAULT = 8,
// hyperv_net.h:885) and their alignment, 1 << 3 = 8 bytes (rndis_filter.c:1121-1122).
constexpr u32 MAX_PACKETS_PER_MESSAGE = 8;
constexpr u32 PACKET_ALIGNMENT_FACTOR = 3;
// OID_GEN_LINK_SPEED is in units of 100 bit/s. A virtual link has no line rate; report
// 10 Gbit/s like Hyper-V's synthetic NIC, so guests do not throttle on a made-up slow link.
constexpr u32 LINK_SPEED_100BPS = 100'000'000;
// Multicast addresses the guest may set (OID_802_3_MAXIMUM_LIST_SIZE). The list is accepted
// but not used to filter: with NDIS_PACKET_TYPE_MULTICAST set every multicast frame is
// delivered (a superset of the list; the guest's stack filters the rest).
constexpr u32 MULTICAST_LIST_MAX = 32;

constexpr u32 SUPPORTED_OIDS[] = { OID_GEN_SUPPORTED_LIST, OID_GEN_HARDWARE_STATUS, OID_GEN_MEDIA_SUPPORTED,
    OID_GEN_MEDIA_IN_USE, OID_GEN_MAXIMUM_FRAME_SIZE, OID_GEN_LINK_SPEED, OID_GEN_CURRENT_PACKET_FILTER,
    OID_GEN_MAXIMUM_TOTAL_SIZE, OID_GEN_MEDIA_CONNECT_STATUS, OID_GEN_PHYSICAL_MEDIUM, OID_GEN_XMIT_OK, OID_GEN_RCV_OK,
    OID_GEN_XMIT_ERROR, OID_GEN_RCV_ERROR, OID_GEN_RCV_NO_BUFFER, OID_802_3_PERMANENT_ADDRESS,
    OID_802_3_CURRENT_ADDRESS, OID_802_3_MULTICAST_LIST, OID_802_3_MAXIMUM_LIST_SIZE,
    OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES, OID_TCP_OFFLOAD_CURRENT_CONFIG, OID_TCP_OFFLOAD_PARAMETERS };

template<Wire T>
void append(std::vector<std::byte>& out, T const& value)
{
    auto bytes = wire_bytes(value);
    out.insert(out.end(), bytes.begin(), bytes.end());
}

// An RNDIS message: header + body + info bytes, msg_len filled in.
std::vector<std::byte> rndis_message(u32 type, std::span<std::byte const> body, std::span<std::byte const> info = {})
{
    std::vector<std::byte> out;
    out.reserve(RNDIS_HEADER_BYTES + body.size() + info.size());
    append(out, RndisHeader { type, static_cast<u32>(RNDIS_HEADER_BYTES + body.size() + info.size()) });
    out.insert(out.end(), body.begin(), body.end());
    out.insert(out.end(), info.begin(), info.end());
    return out;
}

// The info buffer of a query/set request: [offset, offset + length) from req_id, inside the message.
std::optional<std::span<std::byte const>> info_buffer(std::span<std::byte const> message, RndisQuerySetRequest const& request)
{
    if (request.info_buflen == 0)
        return std::span<std::byte const> {};
    u64 start = RNDIS_HEADER_BYTES + u64 { request.info_buf_offset };
    if (request.info_buf_offset < sizeof(RndisQuerySetRequest) || start > message.size()
        || request.info_buflen > message.size() - start)
        return std::nullopt;
    return message.subspan(start, request.info_buflen);
}

} // namespace

bool NetvscDevice::handle_rndis_message(std::span<std::byte const> message)
{
    auto header = wire_from<RndisHeader>(message);
    auto body = message.subspan(RNDIS_HEADER_BYTES);
    switch (header.msg_type) {
    case RNDIS_MSG_PACKET:
        if (!m_rndis_initialized) {
            refuse("RNDIS data before INITIALIZE", 0);
            return false;
        }
        rndis_data(message);
        return true;
    case RNDIS_MSG_INIT:
        rndis_initialize(message);
        return true;
    case RNDIS_MSG_QUERY:
        rndis_query(message);
        return true;
    case RNDIS_MSG_SET:
        rndis_set(message);
        return true;
    case RNDIS_MSG_HALT:
        // No reply (rndis_filter_halt_device() does not wait for one, rndis_filter.c:1155-1180).
        m_rndis_initialized = false;
        m_packet_filter = 0;
        m_stats.rx_no_driver += m_to_guest_frames.size();
        m_to_guest_frames.clear();
        changed();
        return true;
    case RNDIS_MSG_RESET: {
        // A reset keeps the adapter's addressing (addressing_reset = 0).
        queue_control(rndis_message(RNDIS_MSG_RESET_C, wire_bytes(RndisResetComplete { RNDIS_STATUS_SUCCESS, 0 })));
        return true;
    }
    case RNDIS_MSG_KEEPALIVE: {
        if (body.size() < sizeof(u32)) {
            refuse("KEEPALIVE too short", header.msg_len);
            return false;
        }
        u32 req_id = wire_from<u32>(body);
        queue_control(rndis_message(RNDIS_MSG_KEEPALIVE_C, wire_bytes(RndisStatusComplete { req_id, RNDIS_STATUS_SUCCESS })));
        return true;
    }
    default:
        refuse("unknown RNDIS message", header.msg_type);
        return false;
    }
}

void NetvscDevice::rndis_data(std::span<std::byte const> message)
{
    if (message.size() < RNDIS_HEADER_BYTES + sizeof(RndisPacket)) {
        refuse("RNDIS packet shorter than its header", message.size());
        return;
    }
    auto packet = wire_from<RndisPacket>(message.subspan(RNDIS_HEADER_BYTES));
    // data_offset counts from the rndis_packet; the frame must lie behind the rndis_packet and
    // inside this message.
    u64 start = RNDIS_HEADER_BYTES + u64 { packet.data_offset };
    if (packet.data_offset < sizeof(RndisPacket) || start > message.size() || packet.data_len > message.size() - start) {
        refuse("RNDIS packet data outside its message", packet.data_offset);
        return;
    }
    if (packet.data_len < 14 || packet.data_len > m_config.mtu + 18u) {
        refuse("frame size outside Ethernet with this MTU", packet.data_len);
        return;
    }
    if (!m_config.link_up) {
        ++m_stats.tx_link_down;
        return;
    }
    if (m_to_host.size() >= m_config.tx_queue_frames) {
        ++m_stats.tx_queue_full;
        return;
    }
    auto frame = message.subspan(start, packet.data_len);
    m_to_host.emplace_back(frame.begin(), frame.end());
    ++m_stats.tx_packets;
    m_stats.tx_bytes += frame.size();
    changed();
}

void NetvscDevice::rndis_initialize(std::span<std::byte const> message)
{
    if (message.size() < RNDIS_HEADER_BYTES + sizeof(RndisInitializeRequest)) {
        refuse("RNDIS INITIALIZE too short", message.size());
        return;
    }
    auto request = wire_from<RndisInitializeRequest>(message.subspan(RNDIS_HEADER_BYTES));
    RndisInitializeComplete reply {};
    reply.req_id = request.req_id;
    reply.status = RNDIS_STATUS_SUCCESS;
    reply.major_ver = RNDIS_MAJOR_VERSION;
    reply.minor_ver = RNDIS_MINOR_VERSION;
    reply.dev_flags = RNDIS_DF_CONNECTIONLESS;
    reply.medium = RNDIS_MEDIUM_802_3;
    reply.max_pkt_per_msg = MAX_PACKETS_PER_MESSAGE;
    reply.max_xfer_size = static_cast<u32>(MAX_RNDIS_STREAM_BYTES);
    reply.pkt_alignment_factor = PACKET_ALIGNMENT_FACTOR;
    // A second INITIALIZE restarts the adapter (the guest driver reloaded without a halt).
    m_rndis_initialized = true;
    m_packet_filter = 0;
    queue_control(rndis_message(RNDIS_MSG_INIT_C, wire_bytes(reply)));
}

void NetvscDevice::rndis_query(std::span<std::byte const> message)
{
    if (message.size() < RNDIS_HEADER_BYTES + sizeof(RndisQuerySetRequest)) {
        refuse("RNDIS QUERY too short", message.size());
        return;
    }
    auto request = wire_from<RndisQuerySetRequest>(message.subspan(RNDIS_HEADER_BYTES));
    std::vector<std::byte> info;
    u32 status = RNDIS_STATUS_SUCCESS;
    auto put32 = [&](u32 value) { append(info, value); };
    // Statistics: 64-bit when the guest's buffer holds 8 bytes (NDIS 6), else 32-bit.
    auto put_counter = [&](u64 value) {
        if (request.info_buflen >= 8)
            append(info, value);
        else
            put32(static_cast<u32>(std::min<u64>(value, 0xffff'ffff)));
    };
    if (!m_rndis_initialized) {
        refuse("RNDIS QUERY before INITIALIZE", request.oid);
        status = RNDIS_STATUS_FAILURE;
    } else {
        switch (request.oid) {
        case OID_GEN_SUPPORTED_LIST:
            for (u32 oid : SUPPORTED_OIDS)
                put32(oid);
            break;
        case OID_GEN_HARDWARE_STATUS: // NdisHardwareStatusReady
        case OID_GEN_MEDIA_SUPPORTED:
        case OID_GEN_MEDIA_IN_USE:    // NdisMedium802_3
        case OID_GEN_PHYSICAL_MEDIUM: // NdisPhysicalMediumUnspecified
            put32(0);
            break;
        case OID_GEN_MAXIMUM_FRAME_SIZE: // Without the Ethernet header: Linux takes it as the MTU (rndis_filter.c:1497-1501).
            put32(m_config.mtu);
            break;
        case OID_GEN_MAXIMUM_TOTAL_SIZE:
            put32(m_config.mtu + 14);
            break;
        case OID_GEN_LINK_SPEED:
            put32(LINK_SPEED_100BPS);
            break;
        case OID_GEN_MEDIA_CONNECT_STATUS: // NdisMediaStateConnected = 0, Disconnected = 1.
            put32(m_config.link_up ? 0 : 1);
            break;
        case OID_GEN_CURRENT_PACKET_FILTER:
            put32(m_packet_filter);
            break;
        case OID_GEN_XMIT_OK:
            put_counter(m_stats.tx_packets);
            break;
        case OID_GEN_RCV_OK:
            put_counter(m_stats.rx_packets);
            break;
        case OID_GEN_XMIT_ERROR:
            put_counter(m_stats.tx_queue_full + m_stats.tx_link_down);
            break;
        case OID_GEN_RCV_ERROR:
            put_counter(0); // Nothing reaches the guest damaged: frames are copied whole or not at all.
            break;
        case OID_GEN_RCV_NO_BUFFER:
            put_counter(m_stats.rx_queue_full);
            break;
        case OID_802_3_PERMANENT_ADDRESS:
        case OID_802_3_CURRENT_ADDRESS:
            info.insert(info.end(), reinterpret_cast<std::byte const*>(m_config.mac.data()),
                reinterpret_cast<std::byte const*>(m_config.mac.data()) + m_config.mac.size());
            break;
        case OID_802_3_MAXIMUM_LIST_SIZE:
            put32(MULTICAST_LIST_MAX);
            break;
        case OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES:
        case OID_TCP_OFFLOAD_CURRENT_CONFIG: {
            // NDIS 6.0 ndis_offload with every capability zero: no checksum, LSO, IPsec or RSC
            // offload. Linux accepts revision 1 with the 6.0 size (rndis_filter.c:740-770).
            info.assign(NDIS_OFFLOAD_SIZE_6_0, std::byte { 0 });
            info[0] = std::byte { NDIS_OBJECT_TYPE_OFFLOAD };
            info[1] = std::byte { NDIS_OFFLOAD_PARAMETERS_REVISION_1 };
            info[2] = std::byte { NDIS_OFFLOAD_SIZE_6_0 & 0xff };
            info[3] = std::byte { NDIS_OFFLOAD_SIZE_6_0 >> 8 };
            break;
        }
        default:
            // OID_GEN_RECEIVE_SCALE_CAPABILITIES (no vRSS), OID_GEN_FRIENDLY_NAME, anything else.
            status = RNDIS_STATUS_NOT_SUPPORTED;
            break;
        }
    }
    RndisQueryComplete reply { request.req_id, status, static_cast<u32>(info.size()), static_cast<u32>(sizeof(RndisQueryComplete)) };
    queue_control(rndis_message(RNDIS_MSG_QUERY_C, wire_bytes(reply), info));
}

void NetvscDevice::rndis_set(std::span<std::byte const> message)
{
    if (message.size() < RNDIS_HEADER_BYTES + sizeof(RndisQuerySetRequest)) {
        refuse("RNDIS SET too short", message.size());
        return;
    }
    auto request = wire_from<RndisQuerySetRequest>(message.subspan(RNDIS_HEADER_BYTES));
    u32 status = RNDIS_STATUS_SUCCESS;
    auto info = info_buffer(message, request);
    if (!m_rndis_initialized) {
        refuse("RNDIS SET before INITIALIZE", request.oid);
        status = RNDIS_STATUS_FAILURE;
    } else if (!info) {
        refuse("RNDIS SET info buffer outside its message", request.info_buf_offset);
        status = RNDIS_STATUS_INVALID_DATA;
    } else {
        switch (request.oid) {
        case OID_GEN_CURRENT_PACKET_FILTER:
            if (info->size() < sizeof(u32)) {
                status = RNDIS_STATUS_INVALID_DATA;
                break;
            }
            m_packet_filter = wire_from<u32>(*info);
            changed();
            break;
        case OID_802_3_MULTICAST_LIST:
            if (info->size() % 6 != 0 || info->size() / 6 > MULTICAST_LIST_MAX)
                status = RNDIS_STATUS_INVALID_DATA;
            break;
        case OID_TCP_OFFLOAD_PARAMETERS: {
            // ndis_offload_params (hyperv_net.h:1535-1559): the u8 switches at bytes 4..14 and
            // 20..25 may only say "no change" or "disabled": nothing was advertised.
            for (std::size_t i = 4; i < info->size() && i < 26; ++i) {
                if (i >= 15 && i < 20)
                    continue; // Padding and the flags word.
                auto value = static_cast<u8>((*info)[i]);
                if (value != NDIS_OFFLOAD_PARAMETERS_NO_CHANGE && value != NDIS_OFFLOAD_PARAMETERS_DISABLED)
                    status = RNDIS_STATUS_NOT_SUPPORTED;
            }
            break;
        }
        default:
            // OID_GEN_RNDIS_CONFIG_PARAMETER (a guest-chosen MAC), RSS parameters, the rest.
            status = RNDIS_STATUS_NOT_SUPPORTED;
            break;
        }
    }
    queue_control(rndis_message(RNDIS_MSG_SET_C, wire_bytes(RndisStatusComplete { request.req_id, status })));
}

void NetvscDevice::queue_control(std::vector<std::byte> message)
{
    // One response per guest request; a guest that sends requests without ever completing
    // receives cannot make the queue grow past this.
    if (m_control.size() >= MAX_CONTROL_QUEUE) {
        ++m_stats.control_dropped;
        VMM_GUEST_WARN("netvsc", "RNDIS response dropped: {} waiting", m_control.size());
        return;
    }
    m_control.push_back(std::move(message));
}

void NetvscDevice::queue_indication(u32 status)
{
    queue_control(rndis_message(RNDIS_MSG_INDICATE, wire_bytes(RndisIndicateStatus { status, 0, static_cast<u32>(sizeof(RndisIndicateStatus)) })));
}

bool NetvscDevice::filter_accepts(std::span<std::byte const> frame) const
{
    if (frame.size() < 14)
        return false;
    if (m_packet_filter & NDIS_PACKET_TYPE_PROMISCUOUS)
        return true;
    auto dst = frame.first(6);
    bool broadcast = std::all_of(dst.begin(), dst.end(), [](std::byte b) { return b == std::byte { 0xff }; });
    if (broadcast)
        return (m_packet_filter & NDIS_PACKET_TYPE_BROADCAST) != 0;
    if ((static_cast<u8>(dst[0]) & 1) != 0)
        return (m_packet_filter & (NDIS_PACKET_TYPE_MULTICAST | NDIS_PACKET_TYPE_ALL_MULTICAST)) != 0;
    return (m_packet_filter & NDIS_PACKET_TYPE_DIRECTED) != 0
        && std::memcmp(dst.data(), m_config.mac.data(), m_config.mac.size()) == 0;
}

} // namespace vmm::netvsc

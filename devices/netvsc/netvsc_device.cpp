// SPDX-License-Identifier: MIT
// NetvscDevice, NVSP side: version negotiation, receive/send buffers, the RNDIS packet
// carrier both ways, receive sub-allocation accounting. RNDIS itself is in rndis.cpp.
#include "devices/netvsc/netvsc_device.hpp"

#include <algorithm>
#include <cstring>

#include "base/log.hpp"
#include "devices/vmbus/packet.hpp"

namespace vmm::netvsc {

namespace {

// Linux's smallest receive sub-allocation (NETVSC_RECV_SECTION_SIZE, hyperv_net.h:863), what
// Hyper-V offers for a 1500-byte MTU.
constexpr u32 MIN_RECV_SECTION_BYTES = 1728;
// Largest MTU: NETVSC_MTU (hyperv_net.h:849) is 65535 with the header.
constexpr u32 MAX_MTU = 65535 - 14;
// Upper bound on sub-allocations tracked (Linux's largest receive buffer, 31 MiB, hyperv_net.h:853,
// over the smallest section): more only costs host memory.
constexpr u32 MAX_RECV_SECTIONS = (31u << 20) / MIN_RECV_SECTION_BYTES;
// Hyper-V's answer in INIT_COMPLETE (Linux ignores it; Windows' NDIS uses it as a hint).
constexpr u32 MAX_MDL_CHAIN_LEN = 34;

template<Wire T>
std::optional<T> read_prefix(std::span<std::byte const> bytes)
{
    if (bytes.size() < sizeof(T))
        return std::nullopt;
    return wire_from<T>(bytes);
}

// A whole nvsp_message (NVSP_MESSAGE_BYTES) holding `value` at its start.
template<Wire T>
std::array<std::byte, NVSP_MESSAGE_BYTES> nvsp_message(T const& value)
{
    static_assert(sizeof(T) <= NVSP_MESSAGE_BYTES);
    std::array<std::byte, NVSP_MESSAGE_BYTES> out {};
    std::memcpy(out.data(), &value, sizeof(T));
    return out;
}

bool known_version(u32 version)
{
    switch (version) {
    case NVSP_PROTOCOL_VERSION_1:
    case NVSP_PROTOCOL_VERSION_2:
    case NVSP_PROTOCOL_VERSION_4:
    case NVSP_PROTOCOL_VERSION_5:
    case NVSP_PROTOCOL_VERSION_6:
    case NVSP_PROTOCOL_VERSION_61:
        return true;
    default:
        return false;
    }
}

} // namespace

NetvscDevice::NetvscDevice(mem::GuestMemory const& memory, NetvscConfig config)
    : m_memory(&memory)
    , m_config(config)
{
    m_config.mtu = std::clamp<u32>(m_config.mtu, 68, MAX_MTU); // ETH_MIN_MTU..NETVSC_MTU
    // RNDIS header + rndis_packet + frame (MTU + 14-byte header + a 4-byte VLAN tag).
    u32 needed = static_cast<u32>(RNDIS_HEADER_BYTES + sizeof(RndisPacket)) + m_config.mtu + 18;
    m_recv_section_bytes = std::max(MIN_RECV_SECTION_BYTES, (needed + 63) / 64 * 64);
}

vmbus::OfferParams NetvscDevice::offer() const
{
    vmbus::OfferParams params;
    params.interface_type = NIC_CLASS_ID;
    params.interface_instance = m_config.instance;
    params.accepted_packets = vmbus::ACCEPT_INBAND | vmbus::ACCEPT_GPA_DIRECT | vmbus::ACCEPT_COMPLETION;
    // Linux's netvsc rings are netvsc_ring_bytes (128 pages = 512 KiB each way by default,
    // netvsc_drv.c:58); anything below one page cannot hold a transfer-page packet burst.
    params.min_ring_data_bytes = 4096;
    return params;
}

void NetvscDevice::on_open(vmbus::ChannelPort& port)
{
    m_port = &port;
    changed();
}

void NetvscDevice::on_close()
{
    // The channel took back every held GPADL; forget the views without releasing twice.
    m_port = nullptr;
    m_recv.reset();
    m_send.reset();
    m_recv_count = m_recv_in_flight = m_send_count = 0;
    m_recv_free.clear();
    m_recv_busy.clear();
    m_nvsp_version = m_ndis_version = 0;
    m_rndis_initialized = false;
    m_packet_filter = 0;
    m_control.clear();
    m_stats.rx_no_driver += m_to_guest_frames.size();
    m_to_guest_frames.clear();
    changed();
}

void NetvscDevice::refuse(char const* why, u64 detail)
{
    ++m_stats.guest_errors;
    VMM_GUEST_WARN("netvsc", "guest message refused: {} ({})", why, detail);
}

void NetvscDevice::complete(vmbus::InboundPacket const& packet, std::span<std::byte const> message)
{
    if (!packet.completion_requested() || m_port == nullptr)
        return;
    // The ring has room for a completion whenever the guest has one outstanding request
    // waiting (Linux sizes its ring for that); if not, the guest gets no completion and its
    // request times out, which is the guest's own doing.
    if (auto sent = m_port->send_completion(packet.transaction_id, message); !sent)
        VMM_GUEST_WARN("netvsc", "completion not sent: {}", sent.error().what());
}

void NetvscDevice::on_packet(vmbus::InboundPacket const& packet)
{
    if (packet.type == vmbus::VmPacketType::VM_PKT_COMP)
        handle_completion(packet);
    else
        handle_nvsp(packet);
    pump();
}

void NetvscDevice::handle_nvsp(vmbus::InboundPacket const& packet)
{
    auto type = read_prefix<u32>(packet.payload);
    if (log::enabled(log::Level::Debug))
        log::debug("netvsc", "NVSP {} ({} bytes, kind {})", type.value_or(0), packet.payload.size(),
            static_cast<unsigned>(packet.type));
    if (!type)
        return refuse("NVSP message shorter than its header", packet.payload.size());
    if (packet.type == vmbus::VmPacketType::VM_PKT_DATA_USING_GPA_DIRECT && *type != NVSP_MSG1_TYPE_SEND_RNDIS_PKT)
        return refuse("page ranges on a message that takes none", *type);
    if (*type != NVSP_MSG_TYPE_INIT && m_nvsp_version == 0)
        return refuse("NVSP message before INIT", *type);
    switch (*type) {
    case NVSP_MSG_TYPE_INIT:
        return handle_init(packet);
    case NVSP_MSG1_TYPE_SEND_NDIS_VER: {
        auto msg = read_prefix<NvspSendNdisVersion>(packet.payload);
        // NDIS 6.x: Linux says 6.1 (NVSP <= 4) or 6.30 (netvsc.c:690-701).
        if (!msg || msg->ndis_major_ver != 6)
            return refuse("NDIS version other than 6.x", msg ? msg->ndis_major_ver : 0);
        m_ndis_version = msg->ndis_major_ver << 16 | (msg->ndis_minor_ver & 0xffff);
        return;
    }
    case NVSP_MSG2_TYPE_SEND_NDIS_CONFIG:
        // The guest's MTU and capabilities (VLAN, SR-IOV, teaming, RSC): informational, the
        // host offers none of the features they opt into.
        if (!read_prefix<NvspSendNdisConfig>(packet.payload))
            return refuse("NDIS_CONFIG too short", packet.payload.size());
        return;
    case NVSP_MSG1_TYPE_SEND_RECV_BUF:
        return handle_receive_buffer(packet);
    case NVSP_MSG1_TYPE_SEND_SEND_BUF:
        return handle_send_buffer(packet);
    case NVSP_MSG1_TYPE_REVOKE_RECV_BUF:
        return handle_revoke(packet, true);
    case NVSP_MSG1_TYPE_REVOKE_SEND_BUF:
        return handle_revoke(packet, false);
    case NVSP_MSG1_TYPE_SEND_RNDIS_PKT:
        return handle_rndis_packet(packet);
    case NVSP_MSG5_TYPE_SUBCHANNEL:
        // Never asked while RSS is not offered (rndis_filter.c:1535-1540); refuse cleanly.
        complete(packet, nvsp_message(NvspSubchannelComplete { NVSP_MSG5_TYPE_SUBCHANNEL, NVSP_STAT_FAIL, 0 }));
        return refuse("subchannels requested without vRSS", 0);
    default:
        // SWITCH_DATA_PATH and friends (only with an SR-IOV VF, never offered): a bare
        // completion so a guest that waits for one does not hang (netvsc.c:864-883).
        complete(packet, {});
        return refuse("unsupported NVSP message", *type);
    }
}

void NetvscDevice::handle_init(vmbus::InboundPacket const& packet)
{
    auto msg = read_prefix<NvspInit>(packet.payload);
    if (!msg)
        return refuse("NVSP INIT too short", packet.payload.size());
    NvspInitComplete reply { NVSP_MSG_TYPE_INIT_COMPLETE, 0, MAX_MDL_CHAIN_LEN, NVSP_STAT_FAIL };
    if (m_recv || m_send) {
        refuse("NVSP INIT after the buffers were set up", msg->max_protocol_ver);
    } else {
        // The newest version both sides know inside [min, max] (Linux asks one at a time,
        // min = max; Windows gives a range).
        for (u32 version : { NVSP_PROTOCOL_VERSION_61, NVSP_PROTOCOL_VERSION_6, NVSP_PROTOCOL_VERSION_5,
                 NVSP_PROTOCOL_VERSION_4, NVSP_PROTOCOL_VERSION_2, NVSP_PROTOCOL_VERSION_1 }) {
            if (known_version(version) && version >= msg->min_protocol_ver && version <= msg->max_protocol_ver) {
                reply.negotiated_protocol_ver = version;
                reply.status = NVSP_STAT_SUCCESS;
                m_nvsp_version = version;
                break;
            }
        }
    }
    complete(packet, nvsp_message(reply));
}

void NetvscDevice::handle_receive_buffer(vmbus::InboundPacket const& packet)
{
    auto msg = read_prefix<NvspSendBuffer>(packet.payload);
    if (!msg)
        return refuse("SEND_RECV_BUF too short", packet.payload.size());
    NvspSendReceiveBufferComplete reply {};
    reply.msg_type = NVSP_MSG1_TYPE_SEND_RECV_BUF_COMPLETE;
    reply.status = NVSP_STAT_FAIL;
    if (m_recv) {
        refuse("second receive buffer", msg->gpadl_handle);
        return complete(packet, nvsp_message(reply));
    }
    auto view = m_port->acquire_gpadl(msg->gpadl_handle);
    if (!view) {
        refuse("receive buffer GPADL unusable", msg->gpadl_handle);
        return complete(packet, nvsp_message(reply));
    }
    u64 count = std::min<u64>(view->size_bytes() / m_recv_section_bytes, MAX_RECV_SECTIONS);
    if (count == 0) {
        m_port->release_gpadl(msg->gpadl_handle);
        refuse("receive buffer smaller than one sub-allocation", view->size_bytes());
        return complete(packet, nvsp_message(reply));
    }
    m_recv.emplace(std::move(*view));
    m_recv_id = msg->id;
    m_recv_count = static_cast<u32>(count);
    m_recv_in_flight = 0;
    m_recv_busy.assign(m_recv_count, 0);
    m_recv_free.resize(m_recv_count);
    for (u32 i = 0; i < m_recv_count; ++i)
        m_recv_free[i] = m_recv_count - 1 - i; // Lowest index on top.
    reply.status = NVSP_STAT_SUCCESS;
    reply.num_sections = 1; // Linux accepts exactly one section at offset 0 (netvsc.c:442-457).
    reply.section = { 0, m_recv_section_bytes, m_recv_count, m_recv_count * m_recv_section_bytes };
    complete(packet, nvsp_message(reply));
    changed();
}

void NetvscDevice::handle_send_buffer(vmbus::InboundPacket const& packet)
{
    auto msg = read_prefix<NvspSendBuffer>(packet.payload);
    if (!msg)
        return refuse("SEND_SEND_BUF too short", packet.payload.size());
    NvspSendSendBufferComplete reply { NVSP_MSG1_TYPE_SEND_SEND_BUF_COMPLETE, NVSP_STAT_FAIL, 0 };
    if (m_send) {
        refuse("second send buffer", msg->gpadl_handle);
        return complete(packet, nvsp_message(reply));
    }
    auto view = m_port->acquire_gpadl(msg->gpadl_handle);
    if (!view || view->size_bytes() < SEND_SECTION_BYTES) {
        if (view)
            m_port->release_gpadl(msg->gpadl_handle);
        refuse("send buffer GPADL unusable", msg->gpadl_handle);
        return complete(packet, nvsp_message(reply));
    }
    m_send.emplace(std::move(*view));
    // Linux derives the section count as buffer size / section size (netvsc.c:561); so do we,
    // and every section index it sends is checked against it.
    m_send_count = static_cast<u32>(view->size_bytes() / SEND_SECTION_BYTES);
    reply.status = NVSP_STAT_SUCCESS;
    // Hyper-V's section size, NETVSC_SEND_SECTION_SIZE (hyperv_net.h:862).
    reply.section_size = SEND_SECTION_BYTES;
    complete(packet, nvsp_message(reply));
}

void NetvscDevice::handle_revoke(vmbus::InboundPacket const& packet, bool receive)
{
    auto msg = read_prefix<NvspRevokeBuffer>(packet.payload);
    if (!msg)
        return refuse("REVOKE too short", packet.payload.size());
    // Linux revokes before tearing the GPADL down (netvsc.c:127-250); the GPADL's teardown
    // is answered once released here.
    if (receive) {
        if (!m_recv || msg->id != m_recv_id)
            return refuse("revoke of an unknown receive buffer", msg->id);
        release_receive_buffer();
    } else {
        if (!m_send)
            return refuse("revoke of an unknown send buffer", msg->id);
        release_send_buffer();
    }
}

void NetvscDevice::release_receive_buffer()
{
    if (m_recv && m_port)
        m_port->release_gpadl(m_recv->id());
    m_recv.reset();
    m_recv_count = m_recv_in_flight = 0;
    m_recv_free.clear();
    m_recv_busy.clear(); // Completions for the old buffer are stale from now on.
}

void NetvscDevice::release_send_buffer()
{
    if (m_send && m_port)
        m_port->release_gpadl(m_send->id());
    m_send.reset();
    m_send_count = 0;
}

void NetvscDevice::handle_rndis_packet(vmbus::InboundPacket const& packet)
{
    NvspSendRndisPacketComplete reply { NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE, NVSP_STAT_INVALID_RNDIS_PKT };
    auto msg = read_prefix<NvspSendRndisPacket>(packet.payload);
    if (!msg) {
        refuse("SEND_RNDIS_PKT too short", packet.payload.size());
        return complete(packet, nvsp_message(reply));
    }
    // Gather the stream: the send-buffer section's bytes, then the page ranges' (cp_partial
    // puts an RNDIS header at a section's end and the frame in pages, netvsc.c:1310-1345).
    m_stream.clear();
    if (msg->send_buf_section_index != NETVSC_INVALID_INDEX) {
        if (!m_send || msg->send_buf_section_index >= m_send_count || msg->send_buf_section_size > SEND_SECTION_BYTES) {
            refuse("send-buffer section outside the send buffer", msg->send_buf_section_index);
            return complete(packet, nvsp_message(reply));
        }
        m_stream.resize(msg->send_buf_section_size);
        u64 offset = u64 { msg->send_buf_section_index } * SEND_SECTION_BYTES;
        if (auto read = m_send->read(offset, m_stream); !read) {
            refuse("send-buffer section unreadable", offset);
            return complete(packet, nvsp_message(reply));
        }
    }
    if (packet.type == vmbus::VmPacketType::VM_PKT_DATA_USING_GPA_DIRECT) {
        auto ranges = vmbus::parse_gpa_direct(packet);
        if (!ranges) {
            refuse("malformed GPA-direct ranges", packet.header.size());
            return complete(packet, nvsp_message(reply));
        }
        for (auto const& range : *ranges) {
            if (m_stream.size() + range.byte_count > MAX_RNDIS_STREAM_BYTES) {
                refuse("RNDIS packet larger than any frame", m_stream.size() + range.byte_count);
                return complete(packet, nvsp_message(reply));
            }
            u64 skip = range.byte_offset;
            u64 left = range.byte_count;
            for (auto page : range.pages) {
                if (left == 0)
                    break;
                u64 chunk = std::min<u64>(left, 4096 - skip);
                std::size_t at = m_stream.size();
                m_stream.resize(at + chunk);
                auto gpa = page.address().checked_add(skip);
                if (!gpa || !m_memory->read(*gpa, std::span { m_stream }.subspan(at))) {
                    refuse("GPA-direct page is not guest RAM", page.raw());
                    return complete(packet, nvsp_message(reply));
                }
                left -= chunk;
                skip = 0;
            }
        }
    }
    if (m_port)
        m_port->record_guest_bytes(m_stream);
    // The RNDIS messages of the stream, back to back (up to max_pkt_per_msg of them).
    std::span<std::byte const> rest { m_stream };
    bool ok = !rest.empty();
    while (rest.size() >= RNDIS_HEADER_BYTES) {
        auto header = wire_from<RndisHeader>(rest);
        if (header.msg_len < RNDIS_HEADER_BYTES || header.msg_len > rest.size()) {
            refuse("RNDIS message length outside its packet", header.msg_len);
            ok = false;
            break;
        }
        if (!handle_rndis_message(rest.first(header.msg_len)))
            ok = false;
        rest = rest.subspan(header.msg_len);
    }
    reply.status = ok ? NVSP_STAT_SUCCESS : NVSP_STAT_INVALID_RNDIS_PKT;
    complete(packet, nvsp_message(reply));
}

void NetvscDevice::handle_completion(vmbus::InboundPacket const& packet)
{
    // The guest's receive completion (netvsc.c:1396-1420): the transaction id names the
    // sub-allocation of one transfer-page packet; its status does not matter here.
    // Only the id in flight at that index counts: a repeated completion arriving after the
    // sub-allocation was freed and announced again (same index, newer id) must not free the new
    // packet while the guest still reads it (found by fuzz_netvsc).
    u64 id = packet.transaction_id;
    u32 index = static_cast<u32>(id);
    if (!m_recv || index >= m_recv_count || id == 0 || m_recv_busy[index] != id) { // 0 marks a free one.
        ++m_stats.stale_completions;
        VMM_GUEST_WARN("netvsc", "completion for no receive in flight ({:#x})", id);
        return;
    }
    m_recv_busy[index] = 0;
    m_recv_free.push_back(index);
    --m_recv_in_flight;
    changed();
}

bool NetvscDevice::send_to_guest(std::span<std::byte const> message, u32 channel_type)
{
    if (m_recv_free.empty())
        return false;
    u32 index = m_recv_free.back();
    u64 offset = u64 { index } * m_recv_section_bytes;
    if (auto wrote = m_recv->write(offset, message); !wrote) {
        // The buffer's pages stopped being RAM (the guest ballooned them out): nothing can be
        // delivered through it; drop this message rather than spin.
        refuse("receive buffer unwritable", offset);
        return true;
    }
    NvspSendRndisPacket nvsp { NVSP_MSG1_TYPE_SEND_RNDIS_PKT, channel_type, NETVSC_INVALID_INDEX, 0 };
    auto payload = nvsp_message(nvsp);
    vmbus::TransferPageRange range { static_cast<u32>(message.size()), static_cast<u32>(offset) };
    auto header = vmbus::transfer_page_header(m_recv_id, std::span { &range, 1 });
    // Never 0 (the free marker): the sequence skips 0 when it wraps.
    if (++m_recv_sequence == 0)
        m_recv_sequence = 1;
    u64 id = u64 { m_recv_sequence } << 32 | index;
    auto sent = m_port->send(vmbus::OutboundPacket { vmbus::VmPacketType::VM_PKT_DATA_USING_XFER_PAGES,
        vmbus::VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, id, header, payload });
    if (!sent)
        return false; // Ring full: the sub-allocation stays free, the message waits.
    m_recv_free.pop_back();
    m_recv_busy[index] = id;
    ++m_recv_in_flight;
    return true;
}

void NetvscDevice::pump()
{
    if (m_port == nullptr || !m_recv)
        return;
    while (!m_control.empty()) {
        if (!send_to_guest(m_control.front(), RMC_CONTROL))
            return;
        m_control.pop_front();
    }
    bool progress = false;
    while (!m_to_guest_frames.empty()) {
        auto const& frame = m_to_guest_frames.front();
        // RNDIS_MSG_PACKET: header, rndis_packet with the frame right behind it.
        std::size_t total = RNDIS_HEADER_BYTES + sizeof(RndisPacket) + frame.size();
        m_scratch.resize(total);
        RndisHeader header { RNDIS_MSG_PACKET, static_cast<u32>(total) };
        RndisPacket rndis {};
        rndis.data_offset = sizeof(RndisPacket);
        rndis.data_len = static_cast<u32>(frame.size());
        std::memcpy(m_scratch.data(), &header, sizeof(header));
        std::memcpy(m_scratch.data() + sizeof(header), &rndis, sizeof(rndis));
        std::memcpy(m_scratch.data() + sizeof(header) + sizeof(rndis), frame.data(), frame.size());
        if (!send_to_guest(m_scratch, RMC_DATA))
            break;
        ++m_stats.rx_packets;
        m_stats.rx_bytes += frame.size();
        m_to_guest_frames.pop_front();
        progress = true;
    }
    if (progress)
        changed(); // Room in the host's queue again.
}

bool NetvscDevice::deliver_frame(std::span<std::byte const> frame)
{
    if (frame.size() + RNDIS_HEADER_BYTES + sizeof(RndisPacket) > m_recv_section_bytes) {
        ++m_stats.rx_too_big;
        return false;
    }
    if (!m_config.link_up) {
        ++m_stats.rx_link_down;
        return false;
    }
    if (m_port == nullptr || !m_rndis_initialized) {
        ++m_stats.rx_no_driver;
        return false;
    }
    if (!filter_accepts(frame)) {
        ++m_stats.rx_filtered;
        return false;
    }
    if (!rx_room()) {
        ++m_stats.rx_queue_full;
        return false;
    }
    m_to_guest_frames.emplace_back(frame.begin(), frame.end());
    pump();
    return true;
}

std::optional<std::vector<std::byte>> NetvscDevice::take_frame()
{
    if (m_to_host.empty())
        return std::nullopt;
    auto frame = std::move(m_to_host.front());
    m_to_host.pop_front();
    return frame;
}

void NetvscDevice::set_link(bool up)
{
    if (m_config.link_up == up)
        return;
    m_config.link_up = up;
    if (!up) { // Frames of a pulled cable are lost, as on hardware.
        m_stats.rx_link_down += m_to_guest_frames.size();
        m_to_guest_frames.clear();
    }
    if (m_rndis_initialized)
        queue_indication(up ? RNDIS_STATUS_MEDIA_CONNECT : RNDIS_STATUS_MEDIA_DISCONNECT);
    pump();
    changed();
}

} // namespace vmm::netvsc

// SPDX-License-Identifier: MIT
// VMBus channel: ring pair, drain loop and the device's ChannelPort; see channel.hpp.
#include "devices/vmbus/channel.hpp"

#include <algorithm>

#include "base/log.hpp"

namespace vmm::vmbus {

Channel::Channel(ChannelDevice& device, u32 relid, mem::GuestMemory const& memory, SynicPort& synic, GpadlTable& gpadls)
    : m_device(device)
    , m_memory(memory)
    , m_synic(synic)
    , m_gpadls(gpadls)
    , m_relid(relid)
{
}

Result<void> Channel::open(Gpadl const& gpadl, u32 downstream_page_offset, u32 target_vp)
{
    auto pages = gpadl.ring_pages();
    // Each ring needs its header page and at least one data page (guest-interface §6.7).
    if (pages.size() < 4 || downstream_page_offset < 2 || downstream_page_offset > pages.size() - 2)
        return fail(Errc::GuestProtocol, "ring gpadl layout", downstream_page_offset);
    // The device's ring bounds (OfferParams): each data area is its pages minus the header.
    auto params = m_device.offer();
    u64 inbound_data = u64 { downstream_page_offset - 1 } * mem::PAGE_SIZE;
    u64 outbound_data = u64 { pages.size() - downstream_page_offset - 1 } * mem::PAGE_SIZE;
    if (std::min(inbound_data, outbound_data) < params.min_ring_data_bytes
        || std::max(inbound_data, outbound_data) > params.max_ring_data_bytes)
        return fail(Errc::GuestProtocol, "ring size outside the device's bounds", std::min(inbound_data, outbound_data));
    auto inbound_pages = VMM_TRY(RingPages::from_pages(pages.first(downstream_page_offset)));
    auto outbound_pages = VMM_TRY(RingPages::from_pages(pages.subspan(downstream_page_offset)));
    RingReader reader { m_memory, std::move(inbound_pages) };
    RingWriter writer { m_memory, std::move(outbound_pages) };
    VMM_TRY(reader.start());
    VMM_TRY(writer.start());
    m_inbound.emplace(std::move(reader));
    m_outbound.emplace(std::move(writer));
    m_gpadl = gpadl.id;
    m_accepted_packets = params.accepted_packets;
    m_interface_type = params.interface_type;
    m_target_vp = target_vp;
    m_state = ChannelState::Open;
    m_broken_pending = false;
    return {};
}

void Channel::close()
{
    bool was_open = m_state == ChannelState::Open;
    m_state = ChannelState::Closed;
    m_inbound.reset();
    m_outbound.reset();
    m_broken_pending = false;
    if (was_open)
        m_device.on_close();
    // After on_close: the device may have released some itself; the rest go now.
    for (u32 id : std::exchange(m_held_gpadls, {}))
        if (m_gpadls.unhold(id))
            m_torn_down.push_back(id);
}

void Channel::mark_broken()
{
    if (m_state != ChannelState::Open)
        return;
    close();
    m_state = ChannelState::Broken;
}

Result<void> Channel::drain()
{
    u32 handled = 0;
    for (;;) {
        // Mask while draining; the guest then skips its signals (ring_buffer.c:52-70).
        VMM_TRY(m_inbound->set_interrupt_mask(true));
        bool paused = false;
        for (;;) {
            if (!m_device.ready_for_packet()) {
                paused = true; // Left in the ring; VmbusHost::resume_receive() comes back.
                break;
            }
            auto packet = VMM_TRY(m_inbound->next(m_packet_buffer));
            if (!packet)
                break;
            auto const& descriptor = packet->descriptor;
            if (descriptor.type < 32 && (m_accepted_packets & (1u << descriptor.type)) != 0) {
                ++m_stats.packets_received;
                m_stats.bytes_received += packet->payload.size();
                // The ring reader validated 16 <= offset8*8 <= len8*8 (ring.cpp).
                auto header = std::span<std::byte const>(m_packet_buffer)
                                  .subspan(sizeof(PacketDescriptor), descriptor.offset8 * PACKET_ALIGN_BYTES - sizeof(PacketDescriptor));
                InboundPacket const inbound { static_cast<VmPacketType>(descriptor.type), descriptor.flags,
                    descriptor.trans_id, header, packet->payload };
                if (m_tap)
                    m_tap->on_guest_packet(m_interface_type, m_relid, inbound);
                m_device.on_packet(inbound);
            } else {
                ++m_stats.packets_ignored;
            }
            if (m_state != ChannelState::Open || m_broken_pending || ++handled >= MAX_PACKETS_PER_SIGNAL)
                break;
        }
        if (m_state != ChannelState::Open || m_broken_pending)
            return {};
        if (VMM_TRY(m_inbound->commit()))
            signal_guest(); // The guest waits on pending_send_sz and has room now.
        // Unmask, then re-check: data that arrived while masked came without a signal.
        VMM_TRY(m_inbound->set_interrupt_mask(false));
        if (paused)
            return {};
        if (handled >= MAX_PACKETS_PER_SIGNAL) {
            // FIXME: leaves data unread until the guest's next signal; a re-kick from the event
            // loop would be better.
            VMM_GUEST_WARN("vmbus", "relid {}: guest->host ring drain limit reached", m_relid);
            return {};
        }
        if (!VMM_TRY(m_inbound->has_data()))
            return {};
    }
}

Result<void> Channel::on_guest_signal()
{
    if (m_state != ChannelState::Open)
        return {};
    VMM_TRY(drain());
    if (m_state != ChannelState::Open || m_broken_pending)
        return {};
    // The guest also signals when it freed room past our pending_send_sz (guest-interface §7.7 b).
    if (VMM_TRY(m_outbound->space_freed()))
        m_device.on_ring_space();
    return {};
}

void Channel::signal_guest()
{
    ++m_stats.signals_to_guest;
    // Event flag = child_relid for every version >= WIN8 (guest-interface §4.3, §7.7).
    m_synic.signal_event(m_target_vp, VMBUS_MESSAGE_SINT, m_relid);
}

Result<void> Channel::send_packet(std::span<std::byte const> payload, std::uint64_t transaction_id)
{
    return send(OutboundPacket { VmPacketType::VM_PKT_DATA_INBAND, 0, transaction_id, {}, payload });
}

Result<void> Channel::send(OutboundPacket const& packet)
{
    if (m_state != ChannelState::Open || m_broken_pending)
        return fail(Errc::Unsupported, "vmbus channel not open", m_relid);
    auto payload = packet.payload;
    auto written = m_outbound->write(packet.type, packet.flags, packet.transaction_id, packet.header, payload);
    if (!written) {
        if (written.error().code() == Errc::Busy)
            ++m_stats.busy_sends;
        else if (written.error().code() != Errc::InvalidArgument)
            m_broken_pending = true; // Guest corrupted the ring; the host closes it at its next sweep.
        return std::unexpected(written.error());
    }
    ++m_stats.packets_sent;
    m_stats.bytes_sent += payload.size();
    if (*written)
        signal_guest();
    return {};
}

std::uint64_t Channel::send_space_bytes() const
{
    if (m_state != ChannelState::Open || m_broken_pending)
        return 0;
    auto space = m_outbound->payload_space_bytes();
    return space ? *space : 0;
}

} // namespace vmm::vmbus

namespace vmm::vmbus {

Result<GpadlView> Channel::acquire_gpadl(std::uint32_t gpadl_id)
{
    if (m_state != ChannelState::Open)
        return fail(Errc::Unsupported, "vmbus channel not open", m_relid);
    Gpadl const* gpadl = VMM_TRY(m_gpadls.hold(gpadl_id, m_relid));
    m_held_gpadls.push_back(gpadl_id);
    return GpadlView { m_memory, gpadl_id, gpadl->ranges };
}

void Channel::release_gpadl(std::uint32_t gpadl_id)
{
    auto it = std::find(m_held_gpadls.begin(), m_held_gpadls.end(), gpadl_id);
    if (it == m_held_gpadls.end())
        return;
    m_held_gpadls.erase(it);
    if (m_gpadls.unhold(gpadl_id))
        m_torn_down.push_back(gpadl_id);
}

} // namespace vmm::vmbus

// SPDX-License-Identifier: MIT
// VMBus channel: ring pair, drain loop and the device's ChannelPort; see channel.hpp.
#include "devices/vmbus/channel.hpp"

#include "base/log.hpp"

namespace vmm::vmbus {

Channel::Channel(ChannelDevice& device, u32 relid, mem::GuestMemory const& memory, SynicPort& synic)
    : m_device(device)
    , m_memory(memory)
    , m_synic(synic)
    , m_relid(relid)
{
}

Result<void> Channel::open(Gpadl const& gpadl, u32 downstream_page_offset, u32 target_vp)
{
    auto pages = gpadl.ring_pages();
    // Each ring needs its header page and at least one data page (guest-interface §6.7).
    if (pages.size() < 4 || downstream_page_offset < 2 || downstream_page_offset > pages.size() - 2)
        return fail(Errc::GuestProtocol, "ring gpadl layout", downstream_page_offset);
    auto inbound_pages = VMM_TRY(RingPages::from_pages(pages.first(downstream_page_offset)));
    auto outbound_pages = VMM_TRY(RingPages::from_pages(pages.subspan(downstream_page_offset)));
    RingReader reader { m_memory, std::move(inbound_pages) };
    RingWriter writer { m_memory, std::move(outbound_pages) };
    VMM_TRY(reader.start());
    VMM_TRY(writer.start());
    m_inbound.emplace(std::move(reader));
    m_outbound.emplace(std::move(writer));
    m_gpadl = gpadl.id;
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
        for (;;) {
            auto packet = VMM_TRY(m_inbound->next(m_packet_buffer));
            if (!packet)
                break;
            if (packet->descriptor.type == static_cast<u16>(VmPacketType::VM_PKT_DATA_INBAND)) {
                ++m_stats.packets_received;
                m_stats.bytes_received += packet->payload.size();
                m_device.on_packet(packet->payload);
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
    if (m_state != ChannelState::Open || m_broken_pending)
        return fail(Errc::Unsupported, "vmbus channel not open", m_relid);
    auto written = m_outbound->write(VmPacketType::VM_PKT_DATA_INBAND, 0, transaction_id, payload);
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

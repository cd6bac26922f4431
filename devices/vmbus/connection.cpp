// SPDX-License-Identifier: MIT
// VmbusHost: connection-level messages (version negotiation, offers, unload), the outgoing
// message queue, devices and guest signals. Channel and GPADL messages: connection_channels.cpp.
#include "devices/vmbus/connection.hpp"

#include <cstring>
#include <variant>

#include "base/log.hpp"

namespace vmm::vmbus {

VmbusHost::VmbusHost(mem::GuestMemory const& memory, SynicPort& synic, u32 vcpu_count)
    : m_memory(memory)
    , m_synic(synic)
    , m_vcpu_count(vcpu_count)
    , m_gpadls(memory)
{
}

void VmbusHost::enqueue(u32 vp, std::span<std::byte const> message)
{
    Outgoing outgoing { vp, {}, message.size() };
    std::memcpy(outgoing.bytes.data(), message.data(), message.size());
    m_queue.push_back(outgoing);
    flush();
}

void VmbusHost::flush()
{
    // Strict FIFO: the guest handles control messages in order (one per interrupt, §4.4).
    while (!m_queue.empty()) {
        auto const& head = m_queue.front();
        if (!m_synic.post_message(head.vp, VMBUS_MESSAGE_SINT, HVMSG_VMBUS, std::span(head.bytes).first(head.size))) {
            ++m_stats.post_busy;
            return;
        }
        ++m_stats.messages_sent;
        m_queue.pop_front();
    }
}

void VmbusHost::on_slot_freed(u32 /*vp*/, u8 sint)
{
    // Any VP's EOM may unblock the head (crash path EOMs other CPUs' slots, guest-interface §4.4).
    if (sint == VMBUS_MESSAGE_SINT)
        flush();
    close_broken_channels();
}

void VmbusHost::reject(char const* what, u64 detail)
{
    ++m_stats.messages_rejected;
    VMM_GUEST_WARN("vmbus", "guest message dropped: {} ({:#x})", what, detail);
}

VmbusHost::Slot* VmbusHost::find_slot(u32 relid)
{
    auto it = m_channels.find(relid);
    return it == m_channels.end() ? nullptr : &it->second;
}

VmbusHost::Slot* VmbusHost::offered_slot(u32 relid)
{
    Slot* slot = find_slot(relid);
    return slot && slot->offered && !slot->rescinded ? slot : nullptr;
}

Channel const* VmbusHost::channel(u32 relid) const
{
    auto it = m_channels.find(relid);
    return it == m_channels.end() ? nullptr : it->second.channel.get();
}

Channel const* VmbusHost::channel_of(ChannelDevice const& device) const
{
    for (auto const& [relid, slot] : m_channels)
        if (!slot.rescinded && &slot.channel->device() == &device)
            return slot.channel.get();
    return nullptr;
}

// ---- Devices --------------------------------------------------------------------------------------

Result<u32> VmbusHost::add_device(ChannelDevice& device)
{
    auto instance = device.offer().interface_instance;
    for (auto const& [relid, slot] : m_channels) {
        // A rescinded slot's device may already be gone (and its address reused): skip it.
        if (slot.rescinded)
            continue;
        if (&slot.channel->device() == &device)
            return fail(Errc::InvalidArgument, "vmbus device added twice", relid);
        if (slot.channel->device().offer().interface_instance == instance)
            return fail(Errc::InvalidArgument, "vmbus instance GUID already offered", relid);
    }
    u32 relid = MIN_RELID;
    while (relid <= MAX_RELID && m_channels.contains(relid))
        ++relid;
    if (relid > MAX_RELID)
        return fail(Errc::OutOfRange, "vmbus relids exhausted", relid);
    auto& slot = m_channels[relid];
    slot.channel = std::make_unique<Channel>(device, relid, m_memory, m_synic, m_gpadls);
    slot.channel->set_traffic_tap(m_tap);
    // Never offer before REQUESTOFFERS (the guest's relid array does not exist yet, §6.5).
    if (m_state == ConnectionState::OffersDelivered)
        send_offer(slot);
    return relid;
}

void VmbusHost::rescind(ChannelDevice& device)
{
    for (auto it = m_channels.begin(); it != m_channels.end(); ++it) {
        Slot& slot = it->second;
        if (&slot.channel->device() != &device || slot.rescinded)
            continue;
        slot.channel->close();
        // The guest skips GPADL_TEARDOWN for rescinded channels: free them ourselves (§6.8).
        (void)slot.channel->take_torn_down();
        m_gpadls.remove_relid(it->first);
        if (!slot.offered) {
            m_channels.erase(it);
            return;
        }
        slot.rescinded = true;
        send(m_target_vp, RescindChannelOffer { { static_cast<u32>(MessageType::CHANNELMSG_RESCIND_CHANNELOFFER), 0 }, it->first });
        return;
    }
}

void VmbusHost::send_offer(Slot& slot)
{
    Channel const& channel = *slot.channel;
    auto params = channel.device().offer();
    OfferChannel offer {};
    offer.header.msgtype = static_cast<u32>(MessageType::CHANNELMSG_OFFERCHANNEL);
    offer.if_type = params.interface_type.bytes;
    offer.if_instance = params.interface_instance.bytes;
    offer.mmio_megabytes = params.mmio_megabytes;
    offer.chn_flags = params.channel_flags;
    std::copy(params.user_defined.begin(), params.user_defined.end(), offer.user_def);
    offer.child_relid = channel.relid();
    offer.monitor_flags = 0;   // monitor_allocated = 0: the guest always uses HvSignalEvent (§6.10).
    offer.interrupt_flags = 1; // is_dedicated_interrupt: no interrupt-page bit (channel_mgmt.c:971).
    offer.connection_id = channel.connection_id();
    send(m_target_vp, offer);
    slot.offered = true;
}

// ---- Connection ---------------------------------------------------------------------------------

void VmbusHost::drop_connection()
{
    for (auto it = m_channels.begin(); it != m_channels.end();) {
        it->second.channel->close();
        (void)it->second.channel->take_torn_down(); // The guest that made them is gone.
        // A rescinded device is gone once the guest that knew it is gone.
        if (it->second.rescinded) {
            it = m_channels.erase(it);
            continue;
        }
        it->second.offered = false;
        ++it;
    }
    m_gpadls.clear();
    m_queue.clear();
    m_state = ConnectionState::Disconnected;
    m_version = 0;
}

void VmbusHost::reset()
{
    drop_connection();
    m_target_vp = 0;
}

void VmbusHost::set_traffic_tap(TrafficTap* tap)
{
    m_tap = tap;
    for (auto& [relid, slot] : m_channels)
        slot.channel->set_traffic_tap(tap);
}

std::uint16_t VmbusHost::handle_post_message(u32 vp, u32 connection_id, u32 message_type,
    std::span<std::byte const> payload)
{
    if (m_tap)
        m_tap->on_guest_message(vp, connection_id, message_type, payload);
    // Message connection ids: 1 (< 5.0, INITIATE_CONTACT < 5.0) and 4 (>= 5.0); we hand out 4 as
    // msg_conn_id and accept both in every state (guest-interface §6.1).
    u32 id = connection_id & CONNECTION_ID_MASK;
    if (id != VMBUS_MESSAGE_CONNECTION_ID && id != VMBUS_MESSAGE_CONNECTION_ID_4) {
        ++m_stats.messages_rejected;
        return HV_STATUS_INVALID_CONNECTION_ID;
    }
    if (message_type != HVMSG_VMBUS || payload.size() > MAX_MESSAGE_PAYLOAD_BYTES) {
        ++m_stats.messages_rejected;
        return HV_STATUS_INVALID_PARAMETER;
    }
    if (m_queue.size() >= MAX_QUEUED_MESSAGES) {
        ++m_stats.post_throttled;
        return HV_STATUS_INSUFFICIENT_BUFFERS;
    }
    ++m_stats.messages_received;
    auto message = parse_message(payload);
    if (!message) {
        reject("malformed", message.error().detail());
        return HV_STATUS_SUCCESS;
    }
    std::visit([this, vp](auto const& typed) { on_message(vp, typed); }, *message);
    close_broken_channels();
    return HV_STATUS_SUCCESS;
}

void VmbusHost::on_message(u32 vp, InitiateContact const& request)
{
    u32 version = request.vmbus_version_requested;
    u32 target = request.target_vcpu;
    // >= 5.0 names the message SINT in the low byte; we only deliver on SINT 2 (§10.5).
    bool sint_ok = version < VERSION_WIN10_V5 || (request.interrupt_page_or_sint & 0xff) == VMBUS_MESSAGE_SINT;
    bool accept = is_supported_version(version) && target < m_vcpu_count && sint_ok;
    VersionResponse response {};
    response.header.msgtype = static_cast<u32>(MessageType::CHANNELMSG_VERSION_RESPONSE);
    if (!accept) {
        // Reply exactly once so the guest tries its next version; state is unchanged (§6.2).
        ++m_stats.versions_refused;
        VMM_GUEST_WARN("vmbus", "vmbus version {:#x} refused (target vp {})", version, target);
        send(target < m_vcpu_count ? target : (vp < m_vcpu_count ? vp : 0), response);
        return;
    }
    // A new INITIATE_CONTACT while connected is an implicit unload (kexec/kdump, §6.9).
    if (m_state != ConnectionState::Disconnected)
        drop_connection();
    m_state = ConnectionState::Connected;
    m_version = version;
    m_target_vp = target;
    response.version_supported = 1;
    response.msg_conn_id = version >= VERSION_WIN10_V5 ? VMBUS_MESSAGE_CONNECTION_ID_4 : 0;
    send(m_target_vp, response);
}

void VmbusHost::on_message(u32 /*vp*/, RequestOffers const&)
{
    if (m_state != ConnectionState::Connected)
        return reject("REQUESTOFFERS out of state", static_cast<u64>(m_state));
    for (auto& [relid, slot] : m_channels)
        if (!slot.rescinded)
            send_offer(slot);
    send(m_target_vp, MessageHeader { static_cast<u32>(MessageType::CHANNELMSG_ALLOFFERS_DELIVERED), 0 });
    m_state = ConnectionState::OffersDelivered;
}

void VmbusHost::on_message(u32 vp, Unload const&)
{
    // Answer in every state: the guest waits for UNLOAD_RESPONSE without timeout (§6.9).
    u32 target = m_state == ConnectionState::Disconnected && vp < m_vcpu_count ? vp : m_target_vp;
    drop_connection();
    send(target, MessageHeader { static_cast<u32>(MessageType::CHANNELMSG_UNLOAD_RESPONSE), 0 });
}

void VmbusHost::on_message(u32 /*vp*/, TlConnectRequest const& request)
{
    // hv_sock exists from WIN10 (hyperv_transport.c:929); the answer is an offer, so only
    // once offers flow. Nothing to reply on refusal: Linux ignores TL_CONNECT_RESULT
    // (channel_mgmt.c:1565) and its connect() times out.
    if (m_state != ConnectionState::OffersDelivered || m_version < VERSION_WIN10)
        return reject("TL_CONNECT_REQUEST out of state or version", m_version);
    if (!m_tl_connect_sink) {
        ++m_stats.messages_ignored;
        return;
    }
    m_tl_connect_sink->on_tl_connect_request(Guid { request.guest_endpoint_id }, Guid { request.host_service_id });
}

void VmbusHost::resume_receive(ChannelDevice& device)
{
    for (auto& [relid, slot] : m_channels) {
        if (slot.rescinded || &slot.channel->device() != &device)
            continue;
        if (auto drained = slot.channel->on_guest_signal(); !drained) {
            VMM_GUEST_WARN("vmbus", "relid {}: ring broken: {}", relid, drained.error());
            ++m_stats.rings_broken;
            slot.channel->mark_broken();
        }
        break;
    }
    close_broken_channels();
}

// ---- Signals ------------------------------------------------------------------------------------

std::uint16_t VmbusHost::handle_signal_event(u32 connection_id)
{
    ++m_stats.signals_received;
    u32 id = connection_id & CONNECTION_ID_MASK;
    auto drain = [this](Slot& slot) {
        auto drained = slot.channel->on_guest_signal();
        if (!drained) {
            VMM_GUEST_WARN("vmbus", "relid {}: ring broken: {}", slot.channel->relid(), drained.error());
            ++m_stats.rings_broken;
            slot.channel->mark_broken();
        }
    };
    if (id == VMBUS_EVENT_CONNECTION_ID) {
        // Shared event connection of non-dedicated channels: check every open channel.
        for (auto& [relid, slot] : m_channels)
            drain(slot);
    } else {
        Slot* slot = id > Channel::CONNECTION_ID_BASE ? find_slot(id - Channel::CONNECTION_ID_BASE) : nullptr;
        if (!slot || !slot->offered) {
            ++m_stats.signals_unknown;
            return HV_STATUS_INVALID_CONNECTION_ID;
        }
        drain(*slot);
    }
    close_broken_channels();
    return HV_STATUS_SUCCESS;
}

void VmbusHost::close_broken_channels()
{
    for (auto& [relid, slot] : m_channels) {
        // Deferred teardowns a device's release_gpadl() (or a close) completed (§6.7: the guest
        // waits for GPADL_TORNDOWN without a timeout).
        for (u32 gpadl : slot.channel->take_torn_down())
            send(m_target_vp, GpadlTorndown { { static_cast<u32>(MessageType::CHANNELMSG_GPADL_TORNDOWN), 0 }, gpadl });
        if (!slot.channel->broken_pending())
            continue;
        VMM_GUEST_WARN("vmbus", "relid {}: host->guest ring broken, channel closed", relid);
        ++m_stats.rings_broken;
        slot.channel->mark_broken();
    }
}

} // namespace vmm::vmbus

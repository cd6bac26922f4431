// SPDX-License-Identifier: MIT
// VmbusHost: channel and GPADL messages (guest-interface §6.6-§6.8, §6.11, §10.5). Every request the
// guest waits on without a timeout gets an answer (failure status if invalid) whenever the guest
// can match it; unmatchable garbage is dropped and counted.
#include "devices/vmbus/connection.hpp"

#include "base/log.hpp"

namespace vmm::vmbus {

void VmbusHost::send_gpadl_created(GpadlCompletion const& completion)
{
    send(m_target_vp, GpadlCreated { { static_cast<u32>(MessageType::CHANNELMSG_GPADL_CREATED), 0 },
        completion.child_relid, completion.gpadl, completion.status });
}

void VmbusHost::on_message(u32 /*vp*/, GpadlHeaderMessage const& message)
{
    if (m_state == ConnectionState::Disconnected)
        return reject("GPADL_HEADER while disconnected", message.gpadl);
    auto completion = m_gpadls.on_header(message, offered_slot(message.child_relid) != nullptr);
    if (!completion)
        return;
    if (completion->status != CHANNEL_STATUS_SUCCESS)
        ++m_stats.messages_rejected;
    send_gpadl_created(*completion);
}

void VmbusHost::on_message(u32 /*vp*/, GpadlBodyMessage const& message)
{
    if (m_state == ConnectionState::Disconnected)
        return reject("GPADL_BODY while disconnected", message.gpadl);
    u64 rejected_before = m_gpadls.rejected();
    auto completion = m_gpadls.on_body(message);
    if (m_gpadls.rejected() != rejected_before)
        ++m_stats.messages_rejected;
    if (completion)
        send_gpadl_created(*completion);
}

void VmbusHost::on_message(u32 /*vp*/, GpadlTeardown const& message)
{
    if (m_state == ConnectionState::Disconnected)
        return reject("GPADL_TEARDOWN while disconnected", message.gpadl);
    // Deferred while an open channel uses it: answered when that channel closes (§10.5).
    if (m_gpadls.teardown(message.gpadl) == Teardown::Deferred)
        return;
    send(m_target_vp, GpadlTorndown { { static_cast<u32>(MessageType::CHANNELMSG_GPADL_TORNDOWN), 0 }, message.gpadl });
}

u32 VmbusHost::open_channel(Slot& slot, OpenChannel const& request)
{
    Channel& channel = *slot.channel;
    if (channel.state() != ChannelState::Closed) {
        reject("OPENCHANNEL on an open channel", request.child_relid);
        return CHANNEL_STATUS_UNSUCCESSFUL;
    }
    Gpadl const* gpadl = m_gpadls.find_created(request.ringbuffer_gpadlhandle);
    if (!gpadl || gpadl->child_relid != request.child_relid || gpadl->in_use || gpadl->teardown_pending) {
        reject("OPENCHANNEL with an unusable gpadl", request.ringbuffer_gpadlhandle);
        return CHANNEL_STATUS_UNSUCCESSFUL;
    }
    if (request.target_vp >= m_vcpu_count) {
        reject("OPENCHANNEL target_vp", request.target_vp);
        return CHANNEL_STATUS_UNSUCCESSFUL;
    }
    auto opened = channel.open(*gpadl, request.downstream_ringbuffer_pageoffset, request.target_vp);
    if (!opened) {
        reject("OPENCHANNEL ring layout or header", opened.error().detail());
        return CHANNEL_STATUS_UNSUCCESSFUL;
    }
    m_gpadls.set_in_use(request.ringbuffer_gpadlhandle, true);
    return CHANNEL_STATUS_SUCCESS;
}

void VmbusHost::on_message(u32 /*vp*/, OpenChannel const& request)
{
    if (m_state != ConnectionState::OffersDelivered)
        return reject("OPENCHANNEL before offers", request.child_relid);
    Slot* slot = offered_slot(request.child_relid);
    if (!slot)
        return reject("OPENCHANNEL for an unknown relid", request.child_relid);
    u32 status = open_channel(*slot, request);
    // The guest matches the result on (child_relid, openid) (channel_mgmt.c:1195-1220).
    send(m_target_vp, OpenResult { { static_cast<u32>(MessageType::CHANNELMSG_OPENCHANNEL_RESULT), 0 },
        request.child_relid, request.openid, status });
    if (status != CHANNEL_STATUS_SUCCESS)
        return;
    Channel& channel = *slot->channel;
    channel.device().on_open(channel);
    // The guest may have queued packets before the result: look once (QEMU does the same).
    auto drained = channel.on_guest_signal();
    if (!drained) {
        ++m_stats.rings_broken;
        channel.mark_broken();
    }
}

void VmbusHost::on_message(u32 /*vp*/, CloseChannel const& request)
{
    Slot* slot = find_slot(request.child_relid);
    if (slot && slot->rescinded) {
        ++m_stats.messages_ignored; // vmbus_close after a rescind (§6.8).
        return;
    }
    if (!slot || !slot->offered || slot->channel->state() == ChannelState::Closed)
        return reject("CLOSECHANNEL for a channel that is not open", request.child_relid);
    u32 gpadl = slot->channel->gpadl();
    slot->channel->close(); // Also releases the device's GPADLs (TORNDOWN at the next sweep).
    if (m_gpadls.release(gpadl))
        send(m_target_vp, GpadlTorndown { { static_cast<u32>(MessageType::CHANNELMSG_GPADL_TORNDOWN), 0 }, gpadl });
}

void VmbusHost::on_message(u32 /*vp*/, RelidReleased const& message)
{
    auto it = m_channels.find(message.child_relid);
    if (it == m_channels.end() || !it->second.rescinded)
        return reject("RELID_RELEASED for a relid that was not rescinded", message.child_relid);
    m_channels.erase(it); // The relid may be reused now (§6.1).
}

void VmbusHost::on_message(u32 /*vp*/, ModifyChannel const& request)
{
    // MODIFYCHANNEL exists from 4.1; a response is expected from 5.3 (channel.c:231-305).
    if (m_state != ConnectionState::OffersDelivered || m_version < VERSION_WIN10_V4_1)
        return reject("MODIFYCHANNEL out of state or version", request.child_relid);
    Slot* slot = offered_slot(request.child_relid);
    bool valid = slot && request.target_vp < m_vcpu_count;
    if (valid)
        slot->channel->set_target_vp(request.target_vp);
    else
        reject("MODIFYCHANNEL relid or target_vp", request.target_vp);
    if (m_version >= VERSION_WIN10_V5_3)
        send(m_target_vp, ModifyChannelResponse { { static_cast<u32>(MessageType::CHANNELMSG_MODIFYCHANNEL_RESPONSE), 0 },
            request.child_relid, valid ? CHANNEL_STATUS_SUCCESS : CHANNEL_STATUS_UNSUCCESSFUL });
}

} // namespace vmm::vmbus

// SPDX-License-Identifier: MIT
// VmbusHost: the sans-IO VMBus host state machine. Guest messages (HvPostMessage) and signals
// (HvSignalEvent) come in as calls; everything going out goes through SynicPort. No I/O, no
// threads, no locks: single-threaded, one call at a time. In the VMM, vCPU, event-loop and API
// threads all call it, serialised by vmm/vmbus_glue.hpp's lock (ARCHITECTURE.md).
//
// Spec:     guest-interface §6 (channel protocol), §7 (rings), §10.5 (validation); Linux 6.1
//           drivers/hv/connection.c, channel_mgmt.c, channel.c (guest side)
// Done:     versions 2.4 (WIN8) .. 5.3, offers after REQUESTOFFERS, multi-message/multi-range
//           GPADLs, open/close, deferred teardown, rescind + RELID_RELEASED, MODIFYCHANNEL,
//           UNLOAD, reset, bounded outgoing queue with retry on slot freed
//           hv_sock's TL_CONNECT_REQUEST (handed to a TlConnectSink), receive back-pressure
// Missing:  monitor pages (declined by design, §6.10), sub-channels, pre-WIN8
//           interrupt-page signalling, save/restore
#pragma once

#include <array>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <span>

#include "base/error.hpp"
#include "base/types.hpp"
#include "devices/vmbus/channel.hpp"
#include "devices/vmbus/channel_device.hpp"
#include "devices/vmbus/gpadl.hpp"
#include "devices/vmbus/message_parser.hpp"
#include "devices/vmbus/synic_port.hpp"
#include "mem/guest_memory.hpp"

namespace vmm::vmbus {

enum class ConnectionState : u8 {
    Disconnected,    // No version negotiated (boot, after UNLOAD, after reset).
    Connected,       // VERSION_RESPONSE accepted; no offers sent yet.
    OffersDelivered, // REQUESTOFFERS answered; channels may be opened.
};

// Counters for metrics and tests (guest-visible events since construction).
struct VmbusStats {
    u64 messages_received { 0 };
    u64 messages_rejected { 0 };  // Malformed or out of state: dropped (or answered with failure).
    u64 messages_ignored { 0 };   // Valid but unsupported (hv_sock connect without a sink, close after rescind).
    u64 messages_sent { 0 };      // Delivered to a SynIC slot.
    u64 post_busy { 0 };          // post_message() returned false (queued for retry).
    u64 post_throttled { 0 };     // Guest posts answered HV_STATUS_INSUFFICIENT_BUFFERS.
    u64 versions_refused { 0 };
    u64 signals_received { 0 };
    u64 signals_unknown { 0 };    // HvSignalEvent on a connection id with no channel.
    u64 rings_broken { 0 };
};

class VmbusHost {
public:
    // Guest posts are refused with HV_STATUS_INSUFFICIENT_BUFFERS while this many host->guest
    // messages wait for a free slot; the guest retries with back-off (connection.c:434-496). Each
    // accepted post adds at most (devices + 1) messages, so the queue stays bounded.
    static constexpr std::size_t MAX_QUEUED_MESSAGES = 64;

    // `memory` and `synic` outlive the host. `vcpu_count` bounds every guest-named VP.
    VmbusHost(mem::GuestMemory const& memory, SynicPort& synic, u32 vcpu_count);
    VmbusHost(VmbusHost const&) = delete;
    VmbusHost& operator=(VmbusHost const&) = delete;

    // Registers a device (it must outlive the host or be rescinded first) and assigns it the
    // lowest free relid; offered at the next REQUESTOFFERS, or right away if offers were already
    // delivered. Errors: already added, duplicate instance GUID, all relids in use.
    Result<u32> add_device(ChannelDevice& device);
    // Withdraws a device: closes it (on_close) and, if the guest knows it, sends
    // RESCIND_CHANNELOFFER; the relid is reused after the guest's RELID_RELEASED. The host never
    // calls the device again after this returns.
    void rescind(ChannelDevice& device);
    // The device said !ready_for_packet() and has room again: drain its guest->host ring now
    // (the guest does not signal for data it queued behind a full host). No-op unless open.
    void resume_receive(ChannelDevice& device);
    // Where guest TL_CONNECT_REQUESTs go (hv_sock); nullptr (the default) ignores them. The sink
    // outlives the host or is reset to nullptr first.
    void set_tl_connect_sink(TlConnectSink* sink) { m_tl_connect_sink = sink; }
    // The opt-in traffic recorder (nullptr, the default: off): sees every guest post and every
    // accepted guest packet (traffic_tap.hpp). It outlives the host or is reset to nullptr first.
    void set_traffic_tap(TrafficTap* tap);

    // Guest HvPostMessage. Returns a Hyper-V status: 0 (also for messages that were dropped as
    // malformed: the hypercall itself succeeded), 18 for a connection id other than 1/4, 19 while
    // the outgoing queue is full, 5 for a bad SynIC message type or size.
    std::uint16_t handle_post_message(u32 vp, u32 connection_id, u32 message_type, std::span<std::byte const> payload);
    // Guest HvSignalEvent: drains the channel's guest->host ring. 0, or 18 for an unknown id.
    std::uint16_t handle_signal_event(u32 connection_id);
    // The guest freed a message slot (EOM) or enabled its SynIC: retry queued messages.
    void on_slot_freed(u32 vp, u8 sint = VMBUS_MESSAGE_SINT);
    // Host-side guest reset (reboot): drops connection, channels (devices get on_close), GPADLs
    // and queued messages without telling the guest.
    void reset();
    // Closes channels whose ring a device found broken while sending outside a host callback
    // (every entry point above does this too).
    void close_broken_channels();

    ConnectionState state() const { return m_state; }
    u32 version() const { return m_version; }
    u32 target_vp() const { return m_target_vp; }
    VmbusStats const& stats() const { return m_stats; }
    std::size_t queued_messages() const { return m_queue.size(); }
    GpadlTable const& gpadls() const { return m_gpadls; }
    // nullptr if no channel has this relid.
    Channel const* channel(u32 relid) const;
    Channel const* channel_of(ChannelDevice const& device) const;
    std::size_t channel_count() const { return m_channels.size(); }

private:
    struct Outgoing {
        u32 vp;
        std::array<std::byte, MAX_MESSAGE_PAYLOAD_BYTES> bytes;
        std::size_t size;
    };
    struct Slot {
        std::unique_ptr<Channel> channel;
        bool offered { false };   // OFFERCHANNEL sent in this connection.
        bool rescinded { false }; // RESCIND sent; waiting for RELID_RELEASED.
    };

    template<Wire T>
    void send(u32 vp, T const& message)
    {
        static_assert(sizeof(T) <= MAX_MESSAGE_PAYLOAD_BYTES);
        enqueue(vp, wire_bytes(message));
    }
    void enqueue(u32 vp, std::span<std::byte const> message);
    void flush();
    void reject(char const* what, u64 detail);
    void send_offer(Slot& slot);
    void drop_connection();
    Slot* find_slot(u32 relid);
    Slot* offered_slot(u32 relid);

    void on_message(u32 vp, InitiateContact const&);
    void on_message(u32 vp, RequestOffers const&);
    void on_message(u32 vp, OpenChannel const&);
    void on_message(u32 vp, CloseChannel const&);
    void on_message(u32 vp, GpadlHeaderMessage const&);
    void on_message(u32 vp, GpadlBodyMessage const&);
    void on_message(u32 vp, GpadlTeardown const&);
    void on_message(u32 vp, RelidReleased const&);
    void on_message(u32 vp, Unload const&);
    void on_message(u32 vp, TlConnectRequest const&);
    void on_message(u32 vp, ModifyChannel const&);
    void send_gpadl_created(GpadlCompletion const& completion);
    u32 open_channel(Slot& slot, OpenChannel const& request);

    mem::GuestMemory const& m_memory;
    SynicPort& m_synic;
    TlConnectSink* m_tl_connect_sink { nullptr };
    TrafficTap* m_tap { nullptr };
    u32 m_vcpu_count;
    ConnectionState m_state { ConnectionState::Disconnected };
    u32 m_version { 0 };
    u32 m_target_vp { 0 };
    GpadlTable m_gpadls;
    std::map<u32, Slot> m_channels; // By relid.
    std::deque<Outgoing> m_queue;   // FIFO of host->guest messages not yet in a slot.
    VmbusStats m_stats;
};

} // namespace vmm::vmbus

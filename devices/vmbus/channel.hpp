// SPDX-License-Identifier: MIT
// One offered VMBus channel: binds a ChannelDevice to a relid and connection id, owns the ring
// pair while open, drains the guest->host ring on guest signals and is the device's ChannelPort.
//
// Spec: guest-interface §6.7, §7.5-§7.7. Single-threaded (event loop); devices must not call back into
// VmbusHost from their callbacks.
#pragma once

#include <cstddef>
#include <optional>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "base/types.hpp"
#include "devices/vmbus/channel_device.hpp"
#include "devices/vmbus/gpadl.hpp"
#include "devices/vmbus/ring.hpp"
#include "devices/vmbus/synic_port.hpp"
#include "devices/vmbus/traffic_tap.hpp"

namespace vmm::vmbus {

struct ChannelStats {
    u64 packets_received { 0 };
    u64 bytes_received { 0 };  // Payload bytes handed to the device.
    u64 packets_sent { 0 };
    u64 bytes_sent { 0 };      // Payload bytes written by the device.
    u64 packets_ignored { 0 }; // Guest packets of a kind the device did not accept.
    u64 signals_to_guest { 0 };
    u64 busy_sends { 0 };
};

enum class ChannelState : u8 {
    Closed, // Offered (or not yet offered); no rings.
    Open,   // Rings live, device bound.
    Broken, // A ring was bad: device closed, waiting for the guest's CLOSECHANNEL.
};

class Channel final : public ChannelPort {
public:
    // Offer connection ids: 0x10000 + relid (guest-interface Appendix A uses 0x10001 for relid 1); far
    // from the message/event connection ids 1-4.
    static constexpr u32 CONNECTION_ID_BASE = 0x1'0000;
    // Bound on packets handled per guest signal, so one guest cannot hold the event loop forever.
    static constexpr u32 MAX_PACKETS_PER_SIGNAL = 4096;

    Channel(ChannelDevice& device, u32 relid, mem::GuestMemory const& memory, SynicPort& synic, GpadlTable& gpadls);

    ChannelDevice& device() const { return m_device; }
    u32 relid() const { return m_relid; }
    u32 connection_id() const { return CONNECTION_ID_BASE + m_relid; }
    ChannelState state() const { return m_state; }
    u32 gpadl() const { return m_gpadl; }
    u32 target_vp() const { return m_target_vp; }
    ChannelStats const& stats() const { return m_stats; }

    // Builds the rings from a created ring GPADL: pages [0, downstream) are the guest->host ring,
    // the rest the host->guest ring (guest-interface §7.1). The caller then hands the device this port
    // (on_open) once OPENCHANNEL_RESULT is queued.
    Result<void> open(Gpadl const& gpadl, u32 downstream_page_offset, u32 target_vp);
    // Guest CLOSECHANNEL, rescind, unload or reset: device gets on_close() if it was open.
    void close();
    // A ring was found broken: close the device side, keep waiting for the guest's close.
    void mark_broken();
    // Guest HvSignalEvent: drain the guest->host ring, then report freed host->guest space.
    // An error means a ring is broken (the caller marks the channel broken).
    Result<void> on_guest_signal();
    void set_target_vp(u32 vp) { m_target_vp = vp; }
    // The traffic recorder (nullptr: off); it then sees each accepted guest packet.
    void set_traffic_tap(TrafficTap* tap) { m_tap = tap; }
    bool broken_pending() const { return m_broken_pending; }

    // GPADLs whose deferred teardown completed when the device released them: the host sends
    // GPADL_TORNDOWN for each (and clears the list).
    std::vector<u32> take_torn_down() { return std::exchange(m_torn_down, {}); }

    // ChannelPort
    Result<void> send_packet(std::span<std::byte const> payload, std::uint64_t transaction_id) override;
    Result<void> send(OutboundPacket const& packet) override;
    std::uint64_t send_space_bytes() const override;
    Result<GpadlView> acquire_gpadl(std::uint32_t gpadl_id) override;
    void release_gpadl(std::uint32_t gpadl_id) override;
    void record_guest_bytes(std::span<std::byte const> bytes) override
    {
        if (m_tap)
            m_tap->on_guest_bytes(m_interface_type, m_relid, bytes);
    }

private:
    Result<void> drain();
    void signal_guest();

    ChannelDevice& m_device;  // Registered device; outlives the channel (VmbusHost contract).
    mem::GuestMemory const& m_memory;
    SynicPort& m_synic;
    GpadlTable& m_gpadls;             // The host's table; outlives the channel.
    std::vector<u32> m_held_gpadls;   // Acquired by the device; released at close.
    std::vector<u32> m_torn_down;     // See take_torn_down().
    u32 m_accepted_packets { ACCEPT_INBAND };
    TrafficTap* m_tap { nullptr };
    Guid m_interface_type {}; // From the offer at open(), for the tap.
    u32 m_relid;
    ChannelState m_state { ChannelState::Closed };
    u32 m_gpadl { 0 };
    u32 m_target_vp { 0 };
    std::optional<RingReader> m_inbound;  // guest->host ("outbound" in Linux terms)
    std::optional<RingWriter> m_outbound; // host->guest
    bool m_broken_pending { false };      // send_packet hit a bad ring: close at the next sweep.
    std::vector<std::byte> m_packet_buffer;
    ChannelStats m_stats;
};

} // namespace vmm::vmbus

// SPDX-License-Identifier: MIT
// The seam between the VMBus host and one VMBus device (Dynamic Memory, the integration
// services, later netvsc/hv_sock): the device describes its offer and gets packets; the host
// hands it a ChannelPort while the channel is open. ARCHITECTURE.md ("VMBus channel seam")
// documents it; change it deliberately and for every device at once.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <span>

#include "base/error.hpp"
#include "devices/vmbus/gpadl_view.hpp"
#include "devices/vmbus/packet.hpp"

namespace vmm::vmbus {

// A GUID in wire order (the 16 bytes exactly as they appear in OFFERCHANNEL).
struct Guid {
    std::array<std::uint8_t, 16> bytes;
    auto operator<=>(Guid const&) const = default;
};

// Which guest->host packet kinds a device wants (bit per VmPacketType); every other kind is
// dropped and counted by the channel, so a device never sees a kind it did not ask for.
inline constexpr std::uint32_t packet_kind_bit(VmPacketType type) { return 1u << static_cast<unsigned>(type); }
inline constexpr std::uint32_t ACCEPT_INBAND = packet_kind_bit(VmPacketType::VM_PKT_DATA_INBAND);
inline constexpr std::uint32_t ACCEPT_GPA_DIRECT = packet_kind_bit(VmPacketType::VM_PKT_DATA_USING_GPA_DIRECT);
inline constexpr std::uint32_t ACCEPT_XFER_PAGES = packet_kind_bit(VmPacketType::VM_PKT_DATA_USING_XFER_PAGES);
inline constexpr std::uint32_t ACCEPT_COMPLETION = packet_kind_bit(VmPacketType::VM_PKT_COMP);

// Bytes of the 120-byte OFFERCHANNEL user_def area (MAX_USER_DEFINED_BYTES, hyperv.h:560).
inline constexpr std::size_t OFFER_USER_DEFINED_BYTES = 120;

struct OfferParams {
    Guid interface_type;     // Class GUID (selects the guest driver).
    Guid interface_instance; // Unique among live offers; becomes the guest device name.
    std::uint16_t mmio_megabytes = 0;
    // OFFERCHANNEL chn_flags (hyperv.h:525-557), e.g. VMBUS_CHANNEL_TLNPI_PROVIDER_OFFER for
    // hv_sock; 0 for ordinary devices.
    std::uint16_t channel_flags = 0;
    // OFFERCHANNEL user_def bytes (hv_sock: pipe mode + service GUIDs, hyperv.h:560-590).
    std::array<std::uint8_t, OFFER_USER_DEFINED_BYTES> user_defined {};
    // Guest->host packet kinds delivered to on_packet (see above).
    std::uint32_t accepted_packets = ACCEPT_INBAND;
    // Ring data sizes (bytes, each direction) this device can live with; an OPENCHANNEL outside
    // them is refused. The guest chooses the sizes (hv_utils: 3 pages, hv_util.c:100; netvsc:
    // megabytes), so the bounds only protect the device's protocol from rings too small for its
    // largest message and the host from a ring the device would never fill.
    std::uint32_t min_ring_data_bytes = 4096;
    std::uint32_t max_ring_data_bytes = 64u << 20;
};

// What a device may do on its open channel. Implemented by the VMBus host (Channel), faked in
// tests. Every send is non-blocking: Errc::Busy when the host->guest ring lacks room (the
// device keeps its work and retries on on_ring_space()).
class ChannelPort {
public:
    virtual ~ChannelPort() = default;
    // One VM_PKT_DATA_INBAND packet, no completion requested (payload padded to 8 bytes).
    virtual Result<void> send_packet(std::span<std::byte const> payload, std::uint64_t transaction_id) = 0;
    // Any packet kind (inband with completion requested, VM_PKT_COMP, transfer-page packets):
    // see OutboundPacket in packet.hpp.
    virtual Result<void> send(OutboundPacket const& packet) = 0;
    // Free payload bytes for one inband packet in the host->guest ring.
    virtual std::uint64_t send_space_bytes() const = 0;
    // Maps a GPADL the guest created for this channel (by its id, as the guest names it in a
    // device message, e.g. NVSP's receive buffer) to checked guest memory. While held, the
    // guest's GPADL_TEARDOWN is deferred (answered on release), so the device never writes into
    // pages the guest believes it got back. Errors: unknown id, another channel's GPADL, a ring
    // GPADL, already held. Released by release_gpadl() or when the channel closes.
    virtual Result<GpadlView> acquire_gpadl(std::uint32_t gpadl_id) = 0;
    virtual void release_gpadl(std::uint32_t gpadl_id) = 0;

    // A device that gathers a guest message from guest memory (netvsc's RNDIS stream from its
    // send buffer or pages) shows the bytes here, for the opt-in traffic recorder
    // (traffic_tap.hpp); a no-op unless recording.
    virtual void record_guest_bytes(std::span<std::byte const>) { }

    // VM_PKT_COMP answering the guest packet with `transaction_id`.
    Result<void> send_completion(std::uint64_t transaction_id, std::span<std::byte const> payload)
    {
        return send(OutboundPacket { VmPacketType::VM_PKT_COMP, 0, transaction_id, {}, payload });
    }
};

// A VMBus device. Calls come one at a time from the VmbusHost (under the VMM's VMBus glue lock;
// see ARCHITECTURE.md).
class ChannelDevice {
public:
    virtual ~ChannelDevice() = default;
    virtual OfferParams offer() const = 0;
    virtual void on_open(ChannelPort& port) = 0; // port valid until on_close()
    // One guest->host packet of a kind the device accepted. Every byte is guest-controlled;
    // the spans are valid for the call only.
    virtual void on_packet(InboundPacket const& packet) = 0;
    virtual void on_ring_space() = 0; // host->guest ring has room again
    virtual void on_close() = 0;      // closed, rescinded, unloaded or reset
    // Asked before each guest->host packet is taken off the ring. False leaves it (and every
    // later one) in the ring, so a device whose consumer is slow (hv_sock's host socket) pushes
    // back on the guest through the ring instead of buffering without bound; the device calls
    // VmbusHost::resume_receive() once it has room again. Ordinary devices keep the default.
    virtual bool ready_for_packet() { return true; }
};

// The guest's hv_sock connect request (CHANNELMSG_TL_CONNECT_REQUEST, hyperv.h:697-701, sent by
// vmbus_send_tl_connect_request(), drivers/hv/channel.c:196): the guest asks the host to offer a
// channel whose if_type is `host_service_id` and if_instance `guest_endpoint_id`
// (net/vmw_vsock/hyperv_transport.c:459-471, 310-316). Called under the VMBus host lock; the
// sink must not call back into the host (post the work elsewhere).
class TlConnectSink {
public:
    virtual ~TlConnectSink() = default;
    virtual void on_tl_connect_request(Guid const& guest_endpoint_id, Guid const& host_service_id) = 0;
};

} // namespace vmm::vmbus

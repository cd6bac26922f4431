// SPDX-License-Identifier: MIT
// HvSockConnection: one hv_sock connection = one VMBus channel (sans-IO). The host offers a
// channel per connection; the guest's hv_sock opens it, then bytes flow both ways as
// VM_PKT_DATA_INBAND packets that start with a vmpipe_proto_header {pkt_type = 1, data_size}
// (hyperv_transport.c:33-47, 231-238); a zero data_size is the FIN of that direction
// (hyperv_transport.c:185-208, 476-487). The owner (vmm/backends/hvsock_backend.*) moves bytes
// between the two buffers here and a host socket, and rescinds the channel when both
// directions are finished or the connection failed: the guest's socket release waits for that
// rescind (vmbus_hvsock_device_unregister(), channel_mgmt.c:1290-1298).
//
// Flow control, no byte lost or reordered: guest->host packets are only taken off the ring
// while `received` has room for the largest one (ready_for_packet(); the guest then blocks on
// its full ring, not the host); host->guest bytes wait in `to_guest` (bounded: the owner
// reads its socket only while there is room) until the ring has space (on_ring_space()).
//
// States: Offered -> Open -> Closed (guest closed the channel, a hostile packet, reset); the
// host-side rescind ends it from any state. Every call runs under the VMBus host lock; the
// change hook only flags the owner (it must not call back into the host).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "base/types.hpp"
#include "devices/hvsock/byte_queue.hpp"
#include "devices/vmbus/channel_device.hpp"

namespace vmm::hvsock {

// hyperv_transport.c:28: the largest data_size a guest accepts (and sends).
inline constexpr std::size_t HVS_MTU_BYTES = 16 * 1024;
// vmpipe_proto_header (hyperv_transport.c:33-36): u32 pkt_type (1 = data), u32 data_size.
inline constexpr std::size_t PIPE_HEADER_BYTES = 8;
inline constexpr std::uint32_t PIPE_PKT_TYPE_DATA = 1;
// OFFERCHANNEL chn_flags bit that marks an hv_sock channel (hyperv.h:345, is_hvsock_offer()).
inline constexpr std::uint16_t VMBUS_CHANNEL_TLNPI_PROVIDER_OFFER = 0x2000;
// Buffered bytes per direction. 256 KiB keeps the socket and the ring both busy without
// letting one connection hold much host memory (2 x 256 KiB x connections).
inline constexpr std::size_t DEFAULT_BUFFER_BYTES = 256 * 1024;
// Below this much ring room the host waits for the guest instead of sending slivers.
inline constexpr std::size_t MIN_CHUNK_BYTES = 2048;

enum class HvSockState : u8 { Offered, Open, Closed };

struct HvSockStats {
    u64 bytes_to_guest { 0 };
    u64 bytes_from_guest { 0 };
    u64 packets_refused { 0 }; // Hostile packets (connection failed on the first one).
};

class HvSockConnection final : public vmbus::ChannelDevice {
public:
    // `service` = the offer's if_type (the listening side's port), `instance` = if_instance
    // (the other side's port in Data1); `from_host` = user_def[0] "connection from host"
    // (hyperv_transport.c:310-330).
    HvSockConnection(vmbus::Guid service, vmbus::Guid instance, bool from_host,
        std::size_t buffer_bytes = DEFAULT_BUFFER_BYTES);

    // Called (under the VMBus lock) whenever something the owner looks at changed: opened,
    // closed, bytes or FIN from the guest, room for host bytes. Must not call into the host.
    void set_change_hook(std::function<void()> hook) { m_hook = std::move(hook); }

    // vmbus::ChannelDevice
    vmbus::OfferParams offer() const override;
    void on_open(vmbus::ChannelPort& port) override;
    void on_packet(vmbus::InboundPacket const& packet) override;
    void on_ring_space() override { pump(); }
    void on_close() override;
    bool ready_for_packet() override { return m_state == HvSockState::Open && m_received.room() >= HVS_MTU_BYTES; }

    // ---- Owner side (under the VMBus lock) ----
    HvSockState state() const { return m_state; }
    bool failed() const { return m_failed; }
    bool opened() const { return m_opened; } // The guest opened the channel (ever).
    // Host -> guest: room for more bytes now; queue bytes (at most room()); end of the host's
    // stream (the FIN goes after every queued byte).
    std::size_t to_guest_room() const { return m_fin_requested || m_state == HvSockState::Closed ? 0 : m_to_guest.room(); }
    std::size_t send_to_guest(std::span<std::byte const> bytes);
    void finish_to_guest();
    bool fin_sent() const { return m_fin_sent; }
    bool to_guest_idle() const { return m_to_guest.empty(); }
    // Guest -> host: takes up to out.size() bytes; true from the guest's FIN on (once every byte
    // before it was taken). The owner calls VmbusHost::resume_receive() after taking bytes so
    // the ring drains again if it was paused.
    std::size_t take_from_guest(std::span<std::byte> out);
    bool guest_finished() const { return m_guest_fin && m_received.empty(); }
    bool has_from_guest() const { return !m_received.empty(); }
    // Both directions finished cleanly: time to rescind.
    bool done() const { return m_fin_sent && guest_finished(); }
    HvSockStats const& stats() const { return m_stats; }

private:
    void pump();
    void fail(char const* why, u64 detail);
    void changed()
    {
        if (m_hook)
            m_hook();
    }

    vmbus::Guid m_service;
    vmbus::Guid m_instance;
    bool m_from_host;
    HvSockState m_state { HvSockState::Offered };
    vmbus::ChannelPort* m_port { nullptr };
    ByteQueue m_to_guest;
    ByteQueue m_received;
    bool m_fin_requested { false };
    bool m_fin_sent { false };
    bool m_guest_fin { false };
    bool m_failed { false };
    bool m_opened { false };
    std::vector<std::byte> m_packet; // Header + payload of the packet being sent.
    std::function<void()> m_hook;
    HvSockStats m_stats;
};

} // namespace vmm::hvsock

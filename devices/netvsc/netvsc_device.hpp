// SPDX-License-Identifier: MIT
// NetvscDevice: the synthetic NIC (netvsc) as a sans-IO VMBus device: NVSP on the channel,
// RNDIS inside it, Ethernet frames in and out through owner-side queues. The owner
// (vmm/backends/tap_backend.*) moves frames between these queues and a TAP device.
//
// Protocol as Linux 6.1 drives it (drivers/net/hyperv/netvsc.c, rndis_filter.c):
//  1. NVSP INIT (min = max = one version, newest first, netvsc.c:650-671) -> INIT_COMPLETE;
//     NDIS_CONFIG (v2+), SEND_NDIS_VER: no reply.
//  2. SEND_RECV_BUF {gpadl, id}: the host maps the receive buffer GPADL (held until revoked or
//     the channel closes, so the guest cannot tear it down under a copy) and answers one
//     section of fixed-size sub-allocations; SEND_SEND_BUF likewise with a section size.
//  3. SEND_RNDIS_PKT: an RNDIS message stream from a send-buffer section and/or GPA-direct
//     page ranges (the section first, netvsc.c:1290-1350 "cp_partial"); control messages
//     (INIT, QUERY, SET, HALT, RESET, KEEPALIVE) are answered, data messages become frames.
//     Every send is completed with SEND_RNDIS_PKT_COMPLETE once its bytes are copied out.
//  4. Host -> guest, RNDIS completions, status indications and frames alike: copied into a
//     free receive-buffer sub-allocation, announced by a transfer-page packet (one range,
//     set id = the guest's receive buffer id); the sub-allocation is busy until the guest's
//     VM_PKT_COMP with that packet's transaction id (netvsc.c:1396-1420).
//
// Not offered, on purpose: checksum/segmentation offloads (answered with zero capabilities:
// TAP without IFF_VNET_HDR cannot carry them end to end), vRSS subchannels (the RSS capability
// query is answered NOT_SUPPORTED, so Linux keeps one channel, rndis_filter.c:1535-1540: one
// TAP queue serves it and the emulated guest kernel, not the host, is the bottleneck), SR-IOV
// VF data path switching, MAC address changes from the guest (RNDIS config parameter refused).
//
// Every guest byte is hostile: lengths and offsets are checked against the buffer they point
// into (send-buffer section, GPA-direct range, message), a bad message is refused with a
// counted, rate-limited warning and never aborts the VMM. Queues are bounded; when the receive
// buffer is full, frames wait in a bounded queue, then are dropped and counted, never written
// over a busy sub-allocation. Calls arrive under the VMBus host lock; the change hook only
// flags the owner.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "base/types.hpp"
#include "devices/netvsc/protocol.hpp"
#include "devices/vmbus/channel_device.hpp"
#include "devices/vmbus/gpadl_view.hpp"
#include "mem/guest_memory.hpp"

namespace vmm::netvsc {

using MacAddress = std::array<u8, 6>;

struct NetvscConfig {
    vmbus::Guid instance {}; // The offer's if_instance (unique per NIC of the VM).
    MacAddress mac {};
    u32 mtu = 1500;          // Ethernet payload bytes (OID_GEN_MAXIMUM_FRAME_SIZE).
    bool link_up = true;
    std::size_t rx_queue_frames = 256; // Host frames waiting for a receive sub-allocation.
    std::size_t tx_queue_frames = 256; // Guest frames waiting for the owner.
};

struct NetvscStats {
    u64 rx_packets { 0 }; // Host -> guest frames placed in the receive buffer.
    u64 rx_bytes { 0 };
    // Host -> guest frames not delivered, by reason (every frame handed to deliver_frame() is
    // delivered or counted in exactly one of these).
    u64 rx_queue_full { 0 };       // Receive buffer and the bounded queue full.
    u64 rx_no_driver { 0 };        // No channel open, RNDIS not initialised or halted/closed.
    u64 rx_link_down { 0 };        // The host set the link down (queued frames included).
    u64 rx_filtered { 0 };         // Not accepted by the guest's packet filter.
    u64 rx_too_big { 0 };          // Larger than a sub-allocation.
    u64 tx_packets { 0 };          // Guest -> host frames handed to the owner.
    u64 tx_bytes { 0 };
    u64 tx_queue_full { 0 };       // The owner's queue full (it did not keep up).
    u64 tx_link_down { 0 };        // Sent while the host had the link down.
    u64 guest_errors { 0 };        // Refused guest messages (malformed, out of order, hostile).
    u64 stale_completions { 0 };   // Completions for no packet in flight.
    u64 control_dropped { 0 };     // RNDIS responses dropped: the guest's requests outran the bound.
};

class NetvscDevice final : public vmbus::ChannelDevice {
public:
    // sizes the host offers (cited where defined in the .cpp).
    static constexpr u32 SEND_SECTION_BYTES = 6144;
    static constexpr std::size_t MAX_RNDIS_STREAM_BYTES = 256 * 1024;
    static constexpr std::size_t MAX_CONTROL_QUEUE = 64;

    NetvscDevice(mem::GuestMemory const& memory, NetvscConfig config);

    void set_change_hook(std::function<void()> hook) { m_hook = std::move(hook); }

    // vmbus::ChannelDevice
    vmbus::OfferParams offer() const override;
    void on_open(vmbus::ChannelPort& port) override;
    void on_packet(vmbus::InboundPacket const& packet) override;
    void on_ring_space() override { pump(); }
    void on_close() override;
    bool ready_for_packet() override { return m_to_host.size() < m_config.tx_queue_frames; }

    // ---- Owner side (under the VMBus lock) ----
    // Host -> guest. rx_room(): a frame handed over now would be queued, not dropped.
    bool rx_room() const { return m_to_guest_frames.size() < m_config.rx_queue_frames; }
    std::size_t rx_queue_room() const { return m_config.rx_queue_frames - std::min(m_config.rx_queue_frames, m_to_guest_frames.size()); }
    // Queues (and sends what fits) one Ethernet frame; false if it was dropped (counted).
    bool deliver_frame(std::span<std::byte const> frame);
    // Guest -> host frames in order; the owner calls VmbusHost::resume_receive() after taking.
    std::optional<std::vector<std::byte>> take_frame();
    bool has_frames_for_host() const { return !m_to_host.empty(); }
    // Link state as the guest sees it (an RNDIS status indication when it changes).
    void set_link(bool up);
    bool link_up() const { return m_config.link_up; }
    // The guest driver initialised RNDIS and enabled reception (packet filter non-zero).
    bool guest_active() const { return m_rndis_initialized && m_packet_filter != 0; }
    bool open() const { return m_port != nullptr; }
    u32 nvsp_version() const { return m_nvsp_version; }
    u32 packet_filter() const { return m_packet_filter; }
    u32 receive_sections() const { return m_recv_count; }
    u32 receive_sections_in_flight() const { return m_recv_in_flight; }
    MacAddress const& mac() const { return m_config.mac; }
    u32 mtu() const { return m_config.mtu; }
    NetvscStats const& stats() const { return m_stats; }
    // Bytes of one receive sub-allocation: an RNDIS packet header + the largest frame
    // (MTU + Ethernet header + one VLAN tag), rounded up to 64 bytes, at least Linux's 1728.
    u32 receive_section_bytes() const { return m_recv_section_bytes; }

private:
    // NVSP (netvsc_device.cpp)
    void handle_nvsp(vmbus::InboundPacket const& packet);
    void handle_init(vmbus::InboundPacket const& packet);
    void handle_receive_buffer(vmbus::InboundPacket const& packet);
    void handle_send_buffer(vmbus::InboundPacket const& packet);
    void handle_revoke(vmbus::InboundPacket const& packet, bool receive);
    void handle_rndis_packet(vmbus::InboundPacket const& packet);
    void handle_completion(vmbus::InboundPacket const& packet);
    void complete(vmbus::InboundPacket const& packet, std::span<std::byte const> message);
    void release_receive_buffer();
    void release_send_buffer();
    void pump();
    bool send_to_guest(std::span<std::byte const> message, u32 channel_type);
    void refuse(char const* why, u64 detail);
    void changed()
    {
        if (m_hook)
            m_hook();
    }

    // RNDIS (rndis.cpp): one message of the stream; false = malformed (the rest is ignored).
    bool handle_rndis_message(std::span<std::byte const> message);
    void rndis_data(std::span<std::byte const> message);
    void rndis_initialize(std::span<std::byte const> message);
    void rndis_query(std::span<std::byte const> message);
    void rndis_set(std::span<std::byte const> message);
    void queue_control(std::vector<std::byte> message);
    void queue_indication(u32 status);
    bool filter_accepts(std::span<std::byte const> frame) const;

    mem::GuestMemory const* m_memory;
    NetvscConfig m_config;
    vmbus::ChannelPort* m_port { nullptr };
    std::function<void()> m_hook;
    NetvscStats m_stats;

    u32 m_nvsp_version { 0 };
    u32 m_ndis_version { 0 };
    // Receive buffer: sub-allocations of m_recv_section_bytes; each busy one remembers the
    // transaction id of the transfer-page packet that announced it (0 = free). The id is
    // (send sequence << 32) | index, the sequence never reset, so an id is never reused while
    // a stale copy of it can still come back (a repeated completion, one for a revoked buffer).
    std::optional<vmbus::GpadlView> m_recv;
    u16 m_recv_id { 0 };
    u32 m_recv_section_bytes;
    u32 m_recv_count { 0 };
    u32 m_recv_in_flight { 0 };
    u32 m_recv_sequence { 0 };        // Upper half of the next transfer-page packet's id.
    std::vector<u32> m_recv_free;     // Stack of free sub-allocation indices.
    std::vector<u64> m_recv_busy;     // Per index: the id in flight there, 0 when free.
    std::optional<vmbus::GpadlView> m_send;
    u32 m_send_count { 0 };

    bool m_rndis_initialized { false };
    u32 m_packet_filter { 0 };
    std::deque<std::vector<std::byte>> m_control; // RNDIS messages for the guest, before frames.
    std::deque<std::vector<std::byte>> m_to_guest_frames;
    std::deque<std::vector<std::byte>> m_to_host;
    std::vector<std::byte> m_stream;  // The RNDIS bytes of the packet being handled.
    std::vector<std::byte> m_scratch; // One RNDIS message being written to the guest.
};

} // namespace vmm::netvsc

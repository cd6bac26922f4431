// SPDX-License-Identifier: MIT
// TestVmbusGuest: plays the Linux 6.1 VMBus driver against a VmbusHost over fake memory and a
// FakeSynicPort (drivers/hv/connection.c, channel_mgmt.c, channel.c, ring_buffer.c): version
// negotiation newest first, REQUESTOFFERS, GPADL header + bodies, OPENCHANNEL, and both ring
// directions with Linux's signalling rules. Independent of the host's ring code on purpose.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/wire.hpp"
#include "devices/vmbus/connection.hpp"
#include "devices/vmbus/protocol.hpp"
#include "tests/support/vmbus_fakes.hpp"

namespace vmm::test {

class TestVmbusGuest {
public:
    static constexpr std::uint32_t NO_REPLY = 0xffff'ffff;
    // Linux's first GPADL id (connection.c:33).
    static constexpr std::uint32_t FIRST_GPADL = 0xe1e10;

    TestVmbusGuest(vmbus::VmbusHost& host, FakeSynicPort& synic, FakeGuestMemory& memory, std::uint32_t vp = 0)
        : m_host(host)
        , m_synic(synic)
        , m_memory(memory)
        , m_vp(vp)
    {
    }

    // ---- Messages ----
    std::uint16_t post_bytes(std::span<std::byte const> bytes, std::optional<std::uint32_t> connection_id = {});
    template<Wire T>
    std::uint16_t post(T const& message, std::optional<std::uint32_t> connection_id = {})
    {
        return post_bytes(wire_bytes(message), connection_id);
    }
    // Reads this VP's message slot, then EOMs (host.on_slot_freed).
    std::optional<FakeSynicPort::Posted> receive();
    std::vector<FakeSynicPort::Posted> receive_all();
    template<Wire T>
    static T as(FakeSynicPort::Posted const& posted)
    {
        T value {};
        std::memcpy(&value, posted.payload.data(), std::min(sizeof(T), posted.payload.size()));
        return value;
    }

    // ---- Linux sequences ----
    vmbus::InitiateContact initiate_contact_message(std::uint32_t version) const;
    // One INITIATE_CONTACT; true if VERSION_RESPONSE accepted it.
    bool initiate_contact(std::uint32_t version);
    // connection.c:166-298: newest first until one is accepted; nullopt if none.
    std::optional<std::uint32_t> negotiate(std::span<std::uint32_t const> versions);
    // REQUESTOFFERS, then every message up to ALLOFFERS_DELIVERED.
    std::vector<vmbus::OfferChannel> request_offers();
    // GPADL_HEADER (26 PFNs) + GPADL_BODY (28 each) for one page-aligned range; returns the
    // GPADL_CREATED status or NO_REPLY.
    std::uint32_t create_gpadl(std::uint32_t relid, std::uint32_t gpadl, std::span<mem::Gpn const> pages);
    std::uint32_t open_channel(std::uint32_t relid, std::uint32_t gpadl, std::uint32_t downstream_page_offset,
        std::uint32_t target_vp = 0);
    // Linux bring-up of one channel: zeroed ring pages, indices 0, feature bit 1 on both rings,
    // GPADL, open. Returns the OPENCHANNEL_RESULT status.
    std::uint32_t bring_up(vmbus::OfferChannel const& offer, std::span<mem::Gpn const> pages,
        std::uint32_t downstream_page_offset, std::uint32_t gpadl = FIRST_GPADL);

    // ---- Rings (after bring_up) ----
    // hv_ringbuffer_write + hv_signal_on_write: false if the ring is too full.
    // `header` (a multiple of 8 bytes) goes between descriptor and payload (GPA-direct ranges).
    bool write_packet(std::span<std::byte const> payload, std::uint64_t transaction_id = 0,
        std::uint16_t type = static_cast<std::uint16_t>(vmbus::VmPacketType::VM_PKT_DATA_INBAND),
        std::span<std::byte const> header = {}, std::uint16_t flags = 0);
    // hv_pkt_iter_first/next/close on the host->guest ring: one packet's payload, or nullopt.
    std::optional<std::vector<std::byte>> read_packet();
    struct FullPacket {
        vmbus::PacketDescriptor descriptor;
        std::vector<std::byte> header; // Between descriptor and offset8*8.
        std::vector<std::byte> payload;
    };
    std::optional<FullPacket> read_full_packet();
    mem::Gpa outbound_header() const { return m_pages.at(0).address(); }
    mem::Gpa inbound_header() const { return m_pages.at(m_downstream).address(); }
    std::uint32_t outbound_data_bytes() const { return (m_downstream - 1) * 4096; }
    std::uint32_t inbound_data_bytes() const { return static_cast<std::uint32_t>(m_pages.size() - m_downstream - 1) * 4096; }
    std::uint32_t header_word(mem::Gpa header, std::uint64_t offset) const;
    void set_header_word(mem::Gpa header, std::uint64_t offset, std::uint32_t value);
    std::uint32_t signals_sent() const { return m_signals; }
    std::uint32_t msg_conn_id() const { return m_msg_conn_id; }

    // Pages for a ring GPADL, deliberately not contiguous: alternating between the two RAM
    // regions, descending in the low one.
    static std::vector<mem::Gpn> scattered_pages(std::size_t count, std::uint64_t salt = 0);

private:
    void ring_copy(mem::Gpa header, std::uint32_t data_bytes, std::uint32_t offset, std::span<std::byte> out,
        std::span<std::byte const> in);

    vmbus::VmbusHost& m_host;
    FakeSynicPort& m_synic;
    FakeGuestMemory& m_memory;
    std::uint32_t m_vp;
    std::uint32_t m_msg_conn_id { vmbus::VMBUS_MESSAGE_CONNECTION_ID };
    std::vector<mem::Gpn> m_pages;
    std::uint32_t m_downstream { 0 };
    std::uint32_t m_connection_id { 0 };
    std::uint32_t m_signals { 0 };
};

} // namespace vmm::test

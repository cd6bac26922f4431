// SPDX-License-Identifier: MIT
// The synthetic NIC (devices/netvsc/) on the real VMBus host against a Linux-like netvsc guest
// (netvsc_guest.hpp): NVSP negotiation, buffers, RNDIS init/query/set/halt/keepalive, frames
// both ways, receive-buffer accounting, link indications, and hostile guests.
#include <gtest/gtest.h>

#include <cstring>
#include <set>

#include "devices/netvsc/netvsc_device.hpp"
#include "tests/unit/netvsc/netvsc_guest.hpp"

using namespace vmm;
using namespace vmm::vmbus;
using namespace vmm::netvsc;
using vmm::test::FakeGuestMemory;
using vmm::test::FakeSynicPort;
using vmm::test::NetvscGuest;
using vmm::test::TestVmbusGuest;
using vmm::test::VmbusRam;

namespace {

constexpr MacAddress MAC { 0x02, 0x15, 0x5d, 0x01, 0x02, 0x03 };

std::vector<std::byte> frame_to(MacAddress const& dst, std::size_t size, unsigned seed)
{
    std::vector<std::byte> frame(size);
    std::memcpy(frame.data(), dst.data(), 6);
    std::uint32_t x = seed * 2654435761u + 1;
    for (std::size_t i = 6; i < size; ++i) {
        x = x * 1103515245u + 12345u;
        frame[i] = static_cast<std::byte>(x >> 16);
    }
    return frame;
}

template<Wire T>
T body_as(std::vector<std::byte> const& message)
{
    T value {};
    std::memcpy(&value, message.data() + 8, std::min(sizeof(T), message.size() - 8));
    return value;
}

u32 type_of(std::vector<std::byte> const& message)
{
    u32 type = 0;
    std::memcpy(&type, message.data(), 4);
    return type;
}

// The frame inside an RNDIS_MSG_PACKET, checked like rndis_filter_receive_data().
std::optional<std::vector<std::byte>> frame_of(std::vector<std::byte> const& message)
{
    if (type_of(message) != RNDIS_MSG_PACKET || message.size() < 8 + sizeof(RndisPacket))
        return std::nullopt;
    auto packet = body_as<RndisPacket>(message);
    if (8 + u64 { packet.data_offset } + packet.data_len > message.size())
        return std::nullopt;
    auto begin = message.begin() + 8 + packet.data_offset;
    return std::vector<std::byte>(begin, begin + packet.data_len);
}

class NetvscTest : public ::testing::Test {
protected:
    NetvscConfig config()
    {
        NetvscConfig c;
        c.instance.bytes.fill(0x42);
        c.mac = MAC;
        c.rx_queue_frames = 4;
        c.tx_queue_frames = 4;
        return c;
    }
    void up()
    {
        ASSERT_TRUE(nic.bring_up_linux(host, device));
        ASSERT_TRUE(device.guest_active());
        nic.completions.clear();
    }

    FakeGuestMemory memory = VmbusRam::make();
    FakeSynicPort synic;
    VmbusHost host { memory.memory(), synic, 2 };
    TestVmbusGuest guest { host, synic, memory };
    NetvscGuest nic { guest, memory };
    NetvscDevice device { memory.memory(), config() };
};

TEST_F(NetvscTest, OfferIsTheSyntheticNic)
{
    auto offer = device.offer();
    EXPECT_EQ(offer.interface_type, NIC_CLASS_ID);
    EXPECT_EQ(offer.interface_instance.bytes[0], 0x42);
    EXPECT_NE(offer.accepted_packets & ACCEPT_GPA_DIRECT, 0u);
    EXPECT_NE(offer.accepted_packets & ACCEPT_COMPLETION, 0u);
}

TEST_F(NetvscTest, LinuxBringUpNegotiatesNewestVersionAndBuffers)
{
    up();
    EXPECT_EQ(device.nvsp_version(), NVSP_PROTOCOL_VERSION_61);
    EXPECT_EQ(device.receive_section_bytes(), 1728u); // Linux's size for MTU 1500.
    EXPECT_EQ(device.receive_sections(), NetvscGuest::RECV_PAGES * 4096 / 1728);
    EXPECT_EQ(device.packet_filter(), NDIS_PACKET_TYPE_DIRECTED | NDIS_PACKET_TYPE_BROADCAST | NDIS_PACKET_TYPE_ALL_MULTICAST);
    EXPECT_EQ(device.receive_sections_in_flight(), 0u); // Every response was completed.
    EXPECT_EQ(device.stats().guest_errors, 0u);
}

TEST_F(NetvscTest, VersionRangesAndUnknownVersions)
{
    ASSERT_TRUE(guest.initiate_contact(VERSION_WIN10_V5_3));
    (void)guest.request_offers();
    ASSERT_TRUE(host.add_device(device).has_value());
    auto offer = TestVmbusGuest::as<OfferChannel>(guest.receive_all().at(0));
    ASSERT_EQ(guest.bring_up(offer, nic.ring_pages, NetvscGuest::RING_PAGES / 2), CHANNEL_STATUS_SUCCESS);
    // Messages before INIT are refused.
    nic.send_nvsp(NvspSendNdisVersion { NVSP_MSG1_TYPE_SEND_NDIS_VER, 6, 30 }, false);
    EXPECT_EQ(device.stats().guest_errors, 1u);
    // A version nobody knows fails; a Windows-style range gets the newest inside it.
    u32 unknown[] = { 0x70000 };
    EXPECT_EQ(nic.negotiate(unknown), 0u);
    nic.send_nvsp(NvspInit { NVSP_MSG_TYPE_INIT, NVSP_PROTOCOL_VERSION_2, NVSP_PROTOCOL_VERSION_5 });
    auto reply = nic.next();
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->descriptor.type, static_cast<u16>(VmPacketType::VM_PKT_COMP));
    EXPECT_EQ(reply->payload.size(), NVSP_MESSAGE_BYTES);
    auto init = NetvscGuest::payload_as<NvspInitComplete>(*reply);
    EXPECT_EQ(init.msg_type, NVSP_MSG_TYPE_INIT_COMPLETE);
    EXPECT_EQ(init.status, NVSP_STAT_SUCCESS);
    EXPECT_EQ(init.negotiated_protocol_ver, NVSP_PROTOCOL_VERSION_5);
}

TEST_F(NetvscTest, QueriesLinuxMakesAreAnsweredHonestly)
{
    up();
    auto mac = nic.query(OID_802_3_PERMANENT_ADDRESS, 11);
    ASSERT_TRUE(mac.has_value());
    EXPECT_EQ(type_of(*mac), RNDIS_MSG_QUERY_C);
    auto qc = body_as<RndisQueryComplete>(*mac);
    EXPECT_EQ(qc.req_id, 11u);
    EXPECT_EQ(qc.status, RNDIS_STATUS_SUCCESS);
    ASSERT_EQ(qc.info_buflen, 6u);
    EXPECT_GE(qc.info_buf_offset, sizeof(RndisQueryComplete));
    EXPECT_EQ(std::memcmp(mac->data() + 8 + qc.info_buf_offset, MAC.data(), 6), 0);

    auto u32_answer = [&](u32 oid) {
        auto reply = nic.query(oid);
        EXPECT_TRUE(reply.has_value());
        auto c = body_as<RndisQueryComplete>(*reply);
        EXPECT_EQ(c.status, RNDIS_STATUS_SUCCESS) << oid;
        u32 value = 0;
        std::memcpy(&value, reply->data() + 8 + c.info_buf_offset, 4);
        return value;
    };
    EXPECT_EQ(u32_answer(OID_GEN_MAXIMUM_FRAME_SIZE), 1500u);
    EXPECT_EQ(u32_answer(OID_GEN_MEDIA_CONNECT_STATUS), 0u); // Connected.
    EXPECT_EQ(u32_answer(OID_GEN_LINK_SPEED), 100'000'000u);

    // Offload capabilities: a valid NDIS 6.0 object with nothing advertised.
    auto caps = nic.query(OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES, 3, 156);
    ASSERT_TRUE(caps.has_value());
    auto cc = body_as<RndisQueryComplete>(*caps);
    ASSERT_EQ(cc.info_buflen, NDIS_OFFLOAD_SIZE_6_0);
    auto info = std::span { *caps }.subspan(8 + cc.info_buf_offset, cc.info_buflen);
    EXPECT_EQ(static_cast<u8>(info[0]), NDIS_OBJECT_TYPE_OFFLOAD);
    EXPECT_TRUE(std::all_of(info.begin() + 4, info.end(), [](std::byte b) { return b == std::byte { 0 }; }));
    // Setting offloads off is fine; switching one on is refused.
    std::vector<std::byte> params(28, std::byte { 0 });
    params[4] = std::byte { NDIS_OFFLOAD_PARAMETERS_DISABLED };
    auto off = nic.set(OID_TCP_OFFLOAD_PARAMETERS, params);
    ASSERT_TRUE(off.has_value());
    EXPECT_EQ(body_as<RndisStatusComplete>(*off).status, RNDIS_STATUS_SUCCESS);
    params[5] = std::byte { 4 }; // TCP IPv4 checksum TX_RX_ENABLED.
    EXPECT_EQ(body_as<RndisStatusComplete>(*nic.set(OID_TCP_OFFLOAD_PARAMETERS, params)).status, RNDIS_STATUS_NOT_SUPPORTED);

    // No vRSS, no friendly name, no MAC change, unknown OIDs: NOT_SUPPORTED with a valid offset.
    for (u32 oid : { OID_GEN_RECEIVE_SCALE_CAPABILITIES, OID_GEN_FRIENDLY_NAME, 0x12345678u }) {
        auto reply = nic.query(oid);
        ASSERT_TRUE(reply.has_value());
        auto c = body_as<RndisQueryComplete>(*reply);
        EXPECT_EQ(c.status, RNDIS_STATUS_NOT_SUPPORTED);
        EXPECT_EQ(c.info_buflen, 0u);
        EXPECT_GE(c.info_buf_offset, sizeof(RndisQueryComplete));
    }
    std::vector<std::byte> name(40);
    EXPECT_EQ(body_as<RndisStatusComplete>(*nic.set(OID_GEN_RNDIS_CONFIG_PARAMETER, name)).status, RNDIS_STATUS_NOT_SUPPORTED);
    EXPECT_EQ(device.receive_sections_in_flight(), 0u);
}

TEST_F(NetvscTest, KeepaliveResetAndHalt)
{
    up();
    u32 req = 99;
    auto keep = nic.request(NetvscGuest::rndis(RNDIS_MSG_KEEPALIVE, wire_bytes(req)));
    ASSERT_TRUE(keep.has_value());
    EXPECT_EQ(type_of(*keep), RNDIS_MSG_KEEPALIVE_C);
    EXPECT_EQ(body_as<RndisStatusComplete>(*keep).req_id, 99u);
    u32 reserved = 0;
    auto reset = nic.request(NetvscGuest::rndis(RNDIS_MSG_RESET, wire_bytes(reserved)));
    ASSERT_TRUE(reset.has_value());
    EXPECT_EQ(type_of(*reset), RNDIS_MSG_RESET_C);
    // HALT: no reply, reception off; frames are then dropped.
    ASSERT_TRUE(nic.send_paged(NetvscGuest::rndis(RNDIS_MSG_HALT, wire_bytes(req))));
    EXPECT_FALSE(nic.receive().has_value());
    EXPECT_FALSE(device.guest_active());
    EXPECT_FALSE(device.deliver_frame(frame_to(MAC, 60, 1)));
    // A query after HALT is answered with a failure (out of order), not ignored.
    auto late = nic.query(OID_GEN_MAXIMUM_FRAME_SIZE);
    ASSERT_TRUE(late.has_value());
    EXPECT_EQ(body_as<RndisQueryComplete>(*late).status, RNDIS_STATUS_FAILURE);
}

TEST_F(NetvscTest, FramesFromTheGuestBySectionAndByPages)
{
    up();
    // Two frames batched in one send-buffer section (8-byte aligned like netvsc_copy_to_send_buf).
    auto a = frame_to(MacAddress { 0x02, 0, 0, 0, 0, 9 }, 100, 1);
    auto b = frame_to(MacAddress { 0x02, 0, 0, 0, 0, 9 }, 1514, 2);
    auto ma = NetvscGuest::data_message(a);
    ma.resize((ma.size() + 7) / 8 * 8);
    u32 padded = static_cast<u32>(ma.size());
    std::memcpy(ma.data() + 4, &padded, 4);
    auto mb = NetvscGuest::data_message(b);
    std::vector<std::byte> both = ma;
    both.insert(both.end(), mb.begin(), mb.end());
    ASSERT_TRUE(nic.send_in_section(both, 1));
    // A frame in guest pages, crossing a page boundary.
    auto c = frame_to(MacAddress { 0x02, 0, 0, 0, 0, 9 }, 1000, 3);
    ASSERT_TRUE(nic.send_paged(NetvscGuest::data_message(c), RMC_DATA, 4000));
    EXPECT_EQ(device.take_frame(), a);
    EXPECT_EQ(device.take_frame(), b);
    EXPECT_EQ(device.take_frame(), c);
    EXPECT_FALSE(device.take_frame().has_value());
    EXPECT_EQ(device.stats().tx_packets, 3u);
    EXPECT_EQ(device.stats().tx_bytes, 100u + 1514 + 1000);
    // Each send was completed with SEND_RNDIS_PKT_COMPLETE / success.
    std::size_t ok = 0;
    while (auto packet = nic.next()) {
        auto done = NetvscGuest::payload_as<NvspSendRndisPacketComplete>(*packet);
        ok += done.msg_type == NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE && done.status == NVSP_STAT_SUCCESS;
    }
    EXPECT_EQ(ok, 2u);
}

TEST_F(NetvscTest, GuestFramesBackPressureThroughTheRing)
{
    up();
    auto f = frame_to(MacAddress { 0x02, 0, 0, 0, 0, 9 }, 200, 4);
    for (int i = 0; i < 6; ++i)
        ASSERT_TRUE(nic.send_paged(NetvscGuest::data_message(f), RMC_DATA));
    // The queue holds 4: the rest wait in the ring, none lost.
    EXPECT_EQ(device.stats().tx_packets, 4u);
    EXPECT_FALSE(device.ready_for_packet());
    int taken = 0;
    while (device.take_frame()) {
        ++taken;
        host.resume_receive(device);
    }
    EXPECT_EQ(taken, 6);
    EXPECT_EQ(device.stats().tx_queue_full, 0u);
}

TEST_F(NetvscTest, FramesToTheGuestUseFreeSectionsUntilCompleted)
{
    up();
    u32 sections = device.receive_sections();
    std::vector<std::vector<std::byte>> sent;
    // Fill every sub-allocation without completing: the rest waits in the bounded queue.
    for (u32 i = 0; i < sections + 4; ++i) {
        sent.push_back(frame_to(MAC, 60 + i, i));
        EXPECT_TRUE(device.deliver_frame(sent.back())) << i;
    }
    EXPECT_EQ(device.receive_sections_in_flight(), sections);
    EXPECT_FALSE(device.rx_room());
    // One more is dropped and counted, never written over a busy sub-allocation.
    EXPECT_FALSE(device.deliver_frame(frame_to(MAC, 60, 99)));
    EXPECT_EQ(device.stats().rx_queue_full, 1u);
    std::vector<std::vector<std::byte>> got;
    std::set<u32> offsets;
    while (auto r = nic.receive()) {
        EXPECT_EQ(r->set_id, NetvscGuest::RECV_ID);
        EXPECT_EQ(r->offset % device.receive_section_bytes(), 0u);
        EXPECT_TRUE(offsets.insert(r->offset).second); // Every busy offset is distinct.
        auto frame = frame_of(r->rndis);
        ASSERT_TRUE(frame.has_value());
        got.push_back(*frame);
        nic.complete_receive(r->tid);
        if (got.size() == sections) // Completions free sections for the queued frames.
            offsets.clear();
    }
    EXPECT_EQ(got, sent);
    EXPECT_EQ(device.receive_sections_in_flight(), 0u);
    EXPECT_EQ(device.stats().rx_packets, sent.size());
}

TEST_F(NetvscTest, PacketFilterDecidesWhatTheGuestGets)
{
    up();
    EXPECT_TRUE(device.deliver_frame(frame_to(MAC, 60, 1)));
    EXPECT_FALSE(device.deliver_frame(frame_to(MacAddress { 0x02, 9, 9, 9, 9, 9 }, 60, 2))); // Not ours.
    EXPECT_TRUE(device.deliver_frame(frame_to(MacAddress { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, 60, 3)));
    EXPECT_TRUE(device.deliver_frame(frame_to(MacAddress { 0x01, 0, 0x5e, 0, 0, 1 }, 60, 4)));
    EXPECT_EQ(device.stats().rx_filtered, 1u);
    // Too big for a sub-allocation: dropped and counted.
    EXPECT_FALSE(device.deliver_frame(frame_to(MAC, 1700, 5)));
    EXPECT_EQ(device.stats().rx_too_big, 1u);
    // Filter 0 (interface down, rndis_filter_close_device): nothing.
    u32 zero = 0;
    nic.set(OID_GEN_CURRENT_PACKET_FILTER, wire_bytes(zero));
    EXPECT_FALSE(device.deliver_frame(frame_to(MAC, 60, 6)));
}

TEST_F(NetvscTest, LinkDownAndUpAreIndicated)
{
    up();
    device.set_link(false);
    auto down = nic.receive();
    ASSERT_TRUE(down.has_value());
    EXPECT_EQ(type_of(down->rndis), RNDIS_MSG_INDICATE);
    EXPECT_EQ(body_as<RndisIndicateStatus>(down->rndis).status, RNDIS_STATUS_MEDIA_DISCONNECT);
    nic.complete_receive(down->tid);
    EXPECT_FALSE(device.deliver_frame(frame_to(MAC, 60, 1)));
    auto status = nic.query(OID_GEN_MEDIA_CONNECT_STATUS);
    u32 value = 0;
    std::memcpy(&value, status->data() + 8 + body_as<RndisQueryComplete>(*status).info_buf_offset, 4);
    EXPECT_EQ(value, 1u);
    device.set_link(true);
    auto upm = nic.receive();
    ASSERT_TRUE(upm.has_value());
    EXPECT_EQ(body_as<RndisIndicateStatus>(upm->rndis).status, RNDIS_STATUS_MEDIA_CONNECT);
}

// Every host frame handed over is delivered or counted under exactly one reason, so rx drops
// can be explained (e-2-e: the host's IPv6 solicitations on a fresh TAP arrive before the guest's
// driver: no_driver), and a frame the guest sends with the link down is counted as such.
TEST_F(NetvscTest, EveryUndeliveredFrameIsCountedOnceByItsReason)
{
    EXPECT_FALSE(device.deliver_frame(frame_to(MAC, 60, 1))); // No channel yet.
    EXPECT_EQ(device.stats().rx_no_driver, 1u);
    up();
    EXPECT_TRUE(device.deliver_frame(frame_to(MAC, 60, 2)));
    EXPECT_FALSE(device.deliver_frame(frame_to(MacAddress { 0x02, 9, 9, 9, 9, 9 }, 60, 3)));
    EXPECT_FALSE(device.deliver_frame(frame_to(MAC, 1700, 4)));
    device.set_link(false);
    EXPECT_FALSE(device.deliver_frame(frame_to(MAC, 60, 5)));
    auto f = frame_to(MacAddress { 0x02, 0, 0, 0, 0, 9 }, 200, 6);
    ASSERT_TRUE(nic.send_paged(NetvscGuest::data_message(f), RMC_DATA));
    EXPECT_FALSE(device.take_frame().has_value());
    device.set_link(true);
    // Frames queued behind a full receive buffer are lost with the channel: no_driver.
    while (nic.receive()) { } // Drain the indications without completing: sections stay busy.
    u32 queued = 0;
    while (device.rx_room()) {
        ASSERT_TRUE(device.deliver_frame(frame_to(MAC, 60, 10 + queued)));
        ++queued;
    }
    EXPECT_FALSE(device.deliver_frame(frame_to(MAC, 60, 99)));
    auto const before_close = device.stats();
    guest.post(CloseChannel { { static_cast<u32>(MessageType::CHANNELMSG_CLOSECHANNEL), 0 }, nic.offer.child_relid });
    ASSERT_FALSE(device.open());
    auto const& s = device.stats();
    EXPECT_EQ(s.rx_filtered, 1u);
    EXPECT_EQ(s.rx_too_big, 1u);
    EXPECT_EQ(s.rx_link_down, 1u);
    EXPECT_EQ(s.rx_queue_full, 1u);
    EXPECT_EQ(s.tx_link_down, 1u);
    EXPECT_EQ(s.tx_queue_full, 0u);
    u64 const waiting = s.rx_no_driver - before_close.rx_no_driver;
    EXPECT_GT(waiting, 0u);
    // Offered = delivered + every reason.
    u64 offered = 1 + 1 + 1 + 1 + 1 + queued + 1;
    EXPECT_EQ(s.rx_packets + s.rx_no_driver + s.rx_filtered + s.rx_too_big + s.rx_link_down + s.rx_queue_full, offered);
}

TEST_F(NetvscTest, RevokeReleasesTheBuffersAndStaleCompletionsAreIgnored)
{
    up();
    ASSERT_TRUE(device.deliver_frame(frame_to(MAC, 60, 1)));
    auto r = nic.receive();
    ASSERT_TRUE(r.has_value());
    // Completions for unknown ids, twice for the same id: counted, nothing freed twice.
    nic.complete_receive(0xdead'beef'0000'0001ull);
    nic.complete_receive(r->tid);
    nic.complete_receive(r->tid);
    EXPECT_EQ(device.stats().stale_completions, 2u);
    EXPECT_EQ(device.receive_sections_in_flight(), 0u);
    // netvsc_revoke_recv_buf / _send_buf: the GPADLs are let go (their teardown is answered).
    nic.send_nvsp(NvspRevokeBuffer { NVSP_MSG1_TYPE_REVOKE_RECV_BUF, NetvscGuest::RECV_ID, 0 }, false);
    nic.send_nvsp(NvspRevokeBuffer { NVSP_MSG1_TYPE_REVOKE_SEND_BUF, 0, 0 }, false);
    EXPECT_EQ(device.receive_sections(), 0u);
    EXPECT_TRUE(nic.offer.child_relid != 0);
    // The device no longer holds them: another acquire (by a new device) would succeed.
    EXPECT_EQ(device.stats().guest_errors, 0u);
    // A completion from the revoked buffer's generation is stale too.
    nic.complete_receive(r->tid);
    EXPECT_EQ(device.stats().stale_completions, 3u);
}

// A completion repeated after its sub-allocation was announced again (same offset) is stale: it
// must not free the newer packet the guest is still reading (fuzz_netvsc's in-flight mismatch).
TEST_F(NetvscTest, ARepeatedCompletionNeverFreesTheSubAllocationsNextPacket)
{
    up();
    ASSERT_TRUE(device.deliver_frame(frame_to(MAC, 60, 1)));
    auto first = nic.receive();
    ASSERT_TRUE(first.has_value());
    nic.complete_receive(first->tid);
    ASSERT_TRUE(device.deliver_frame(frame_to(MAC, 60, 2)));
    auto second = nic.receive();
    ASSERT_TRUE(second.has_value());
    ASSERT_EQ(second->offset, first->offset); // The freed sub-allocation is the one reused.
    EXPECT_NE(second->tid, first->tid);
    nic.complete_receive(first->tid); // Late duplicate of the first completion.
    nic.complete_receive(0);          // Id 0 marks a free sub-allocation inside the device.
    EXPECT_EQ(device.stats().stale_completions, 2u);
    EXPECT_EQ(device.receive_sections_in_flight(), 1u);
    nic.complete_receive(second->tid);
    EXPECT_EQ(device.receive_sections_in_flight(), 0u);
    EXPECT_EQ(device.stats().stale_completions, 2u);
}

TEST_F(NetvscTest, HostilePacketsAreRefusedAndTheDeviceKeepsWorking)
{
    up();
    auto before = device.stats().guest_errors;
    auto f = frame_to(MAC, 100, 1);
    auto message = NetvscGuest::data_message(f);
    // A section index past the send buffer, a size past a section, a size past the message.
    nic.send_in_section(message, 2);
    nic.send_in_section(message, 0, NetvscDevice::SEND_SECTION_BYTES + 1);
    // RNDIS msg_len larger than the bytes sent.
    auto longer = message;
    u32 huge = 100000;
    std::memcpy(longer.data() + 4, &huge, 4);
    nic.send_in_section(longer, 0);
    // data_offset/data_len pointing past the message, and into the RNDIS header.
    auto bad = message;
    RndisPacket pkt {};
    pkt.data_offset = 36;
    pkt.data_len = 5000;
    std::memcpy(bad.data() + 8, &pkt, sizeof(pkt));
    nic.send_in_section(bad, 0);
    pkt.data_offset = 4;
    pkt.data_len = 20;
    std::memcpy(bad.data() + 8, &pkt, sizeof(pkt));
    nic.send_in_section(bad, 0);
    // GPA-direct page in the RAM hole; an unknown RNDIS type; a host-only type.
    nic.send_paged(message, RMC_DATA, 0, VmbusRam::HOLE_GPN);
    nic.send_paged(NetvscGuest::rndis(0x77, {}), RMC_CONTROL);
    nic.send_paged(NetvscGuest::rndis(RNDIS_MSG_INIT_C, {}), RMC_CONTROL);
    // A SET whose info buffer points past its message.
    RndisQuerySetRequest set { 5, OID_GEN_CURRENT_PACKET_FILTER, 4, 4000, 0 };
    auto set_c = nic.request(NetvscGuest::rndis(RNDIS_MSG_SET, wire_bytes(set)));
    ASSERT_TRUE(set_c.has_value());
    EXPECT_EQ(body_as<RndisStatusComplete>(*set_c).status, RNDIS_STATUS_INVALID_DATA);
    // A receive buffer that is another channel's (or no) GPADL; a second INIT.
    nic.send_nvsp(NvspSendBuffer { NVSP_MSG1_TYPE_SEND_RECV_BUF, TestVmbusGuest::FIRST_GPADL, 1, 0 });
    nic.send_nvsp(NvspInit { NVSP_MSG_TYPE_INIT, 2, 0x60001 });
    nic.send_nvsp(u32 { 9999 }); // Unknown NVSP type: a bare completion.
    EXPECT_FALSE(device.take_frame().has_value());
    EXPECT_GE(device.stats().guest_errors, before + 11);
    // Refused sends were completed with a failure status; the device still works.
    std::size_t failures = 0;
    auto count = [&](TestVmbusGuest::FullPacket const& packet) {
        if (packet.payload.size() < 8)
            return;
        auto done = NetvscGuest::payload_as<NvspSendRndisPacketComplete>(packet);
        failures += done.msg_type == NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE && done.status != NVSP_STAT_SUCCESS;
    };
    for (auto const& packet : nic.completions) // Read while waiting for the SET's response.
        count(packet);
    while (auto packet = nic.next())
        count(*packet);
    EXPECT_GE(failures, 6u);
    nic.send_in_section(message, 1);
    EXPECT_EQ(device.take_frame(), f);
}

TEST_F(NetvscTest, ControlResponsesWaitForAReceiveBufferAndAreBounded)
{
    up();
    // Requests without completing the responses: sub-allocations run out, responses queue,
    // then the bounded queue drops (counted), the host never overwrites a busy section.
    u32 sections = device.receive_sections();
    for (u32 i = 0; i < sections + NetvscDevice::MAX_CONTROL_QUEUE + 3; ++i) {
        u32 req = i;
        nic.send_paged(NetvscGuest::rndis(RNDIS_MSG_KEEPALIVE, wire_bytes(req)));
        while (auto p = nic.next()) {
        } // Drain completions so the ring has room; do not read transfer-page packets' data.
    }
    EXPECT_EQ(device.receive_sections_in_flight(), sections);
    EXPECT_EQ(device.stats().control_dropped, 3u);
}

TEST_F(NetvscTest, CloseForgetsEverythingAndReopenWorks)
{
    up();
    ASSERT_TRUE(device.deliver_frame(frame_to(MAC, 60, 1)));
    guest.post(CloseChannel { { static_cast<u32>(MessageType::CHANNELMSG_CLOSECHANNEL), 0 }, nic.offer.child_relid });
    EXPECT_FALSE(device.open());
    EXPECT_FALSE(device.guest_active());
    EXPECT_EQ(device.nvsp_version(), 0u);
    EXPECT_FALSE(device.deliver_frame(frame_to(MAC, 60, 1)));
}

} // namespace

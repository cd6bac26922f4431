// SPDX-License-Identifier: MIT
// hv_sock connections (devices/hvsock/) on the real VMBus host against the Linux-like test
// guest: port <-> service GUID, the TLNPI offer, data both ways with flow control (ring full,
// host buffer full), FIN each way, close, and hostile packets; plus the VMBus host's
// TL_CONNECT_REQUEST hand-off.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>

#include "devices/hvsock/hvsock_connection.hpp"
#include "devices/hvsock/service_id.hpp"
#include "devices/vmbus/connection.hpp"
#include "tests/support/vmbus_fakes.hpp"
#include "tests/support/vmbus_test_guest.hpp"

using namespace vmm;
using namespace vmm::vmbus;
using namespace vmm::hvsock;
using vmm::test::FakeSynicPort;
using vmm::test::TestVmbusGuest;
using vmm::test::FakeGuestMemory;
using vmm::test::VmbusRam;

namespace {

std::vector<std::byte> pattern(std::size_t n, unsigned seed)
{
    std::vector<std::byte> out(n);
    std::uint32_t x = seed * 2654435761u + 1;
    for (auto& b : out) {
        x = x * 1103515245u + 12345u;
        b = static_cast<std::byte>(x >> 16);
    }
    return out;
}

std::vector<std::byte> pipe_packet(std::uint32_t type, std::uint32_t size, std::span<std::byte const> data)
{
    std::vector<std::byte> out(8 + data.size());
    std::memcpy(out.data(), &type, 4);
    std::memcpy(out.data() + 4, &size, 4);
    if (!data.empty()) // An empty span may have no data pointer, which memcpy must not get.
        std::memcpy(out.data() + 8, data.data(), data.size());
    return out;
}

TEST(HvSockServiceId, PortRoundTripsThroughTheLinuxTemplate)
{
    // 00001388-facb-11e6-bd58-64006a7986d3 = port 5000 (hyperv_transport.c:153-168).
    Guid id = service_id_for_port(5000);
    EXPECT_EQ(id.bytes[0], 0x88);
    EXPECT_EQ(id.bytes[1], 0x13);
    EXPECT_EQ(id.bytes[4], 0xcb);
    EXPECT_EQ(id.bytes[5], 0xfa);
    EXPECT_EQ(id.bytes[15], 0xd3);
    EXPECT_EQ(port_of_service_id(id), 5000u);
    EXPECT_EQ(port_of_service_id(service_id_for_port(0xffffffffu)), 0xffffffffu);
    Guid other = id;
    other.bytes[9] ^= 1; // Not a vsock port GUID (e.g. a Windows service).
    EXPECT_FALSE(port_of_service_id(other).has_value());
}

class HvSockTest : public ::testing::Test {
protected:
    static constexpr std::uint32_t RING_PAGES = 14; // 6 data pages + header each way (Linux default).

    void open(bool from_host = true)
    {
        conn = std::make_unique<HvSockConnection>(service_id_for_port(5000), service_id_for_port(0x40000001), from_host);
        conn->set_change_hook([this] { ++changes; });
        ASSERT_TRUE(guest.initiate_contact(VERSION_WIN10_V5_3));
        ASSERT_TRUE(guest.request_offers().empty());
        ASSERT_TRUE(host.add_device(*conn).has_value());
        auto messages = guest.receive_all();
        ASSERT_EQ(messages.size(), 1u);
        offer = TestVmbusGuest::as<OfferChannel>(messages[0]);
        ASSERT_EQ(guest.bring_up(offer, ring_pages, RING_PAGES / 2), CHANNEL_STATUS_SUCCESS);
        ASSERT_EQ(conn->state(), HvSockState::Open);
    }
    // Reads every host->guest packet: data appended to `out`, returns FINs seen.
    int read_all(std::vector<std::byte>& out)
    {
        int fins = 0;
        while (auto packet = guest.read_packet()) {
            EXPECT_GE(packet->size(), 8u);
            std::uint32_t type, size;
            std::memcpy(&type, packet->data(), 4);
            std::memcpy(&size, packet->data() + 4, 4);
            EXPECT_EQ(type, 1u);
            if (size == 0)
                ++fins;
            out.insert(out.end(), packet->begin() + 8, packet->begin() + 8 + size);
        }
        return fins;
    }
    std::vector<std::byte> take_all()
    {
        std::vector<std::byte> out;
        std::byte buffer[7000];
        for (;;) {
            std::size_t n = conn->take_from_guest(buffer);
            if (n == 0)
                break;
            out.insert(out.end(), buffer, buffer + n);
            host.resume_receive(*conn);
        }
        return out;
    }

    FakeGuestMemory memory = VmbusRam::make();
    FakeSynicPort synic;
    VmbusHost host { memory.memory(), synic, 2 };
    TestVmbusGuest guest { host, synic, memory };
    std::vector<mem::Gpn> ring_pages = TestVmbusGuest::scattered_pages(RING_PAGES);
    std::unique_ptr<HvSockConnection> conn;
    OfferChannel offer {};
    int changes = 0;
};

TEST_F(HvSockTest, OfferIsAnHvSockPipeOffer)
{
    open(true);
    EXPECT_EQ(offer.chn_flags & VMBUS_CHANNEL_TLNPI_PROVIDER_OFFER, VMBUS_CHANNEL_TLNPI_PROVIDER_OFFER);
    EXPECT_EQ(port_of_service_id(Guid { offer.if_type }), 5000u);
    EXPECT_EQ(port_of_service_id(Guid { offer.if_instance }), 0x40000001u);
    // Pipe mode byte (0) in user_def[0..3], "connection from host" in the pipe's user_def[0].
    EXPECT_EQ(offer.user_def[0], 0);
    EXPECT_EQ(offer.user_def[4], 1);
    EXPECT_GE(changes, 1); // Opened.
}

TEST_F(HvSockTest, GuestInitiatedOfferClearsFromHost)
{
    open(false);
    EXPECT_EQ(offer.user_def[4], 0);
}

TEST_F(HvSockTest, BytesBothWaysInOrderWithFlowControl)
{
    open();
    // Host -> guest: 1 MiB through a 24 KiB ring and a 256 KiB buffer.
    auto sent = pattern(1 << 20, 1);
    std::vector<std::byte> got;
    std::size_t offset = 0;
    int rounds = 0;
    while (offset < sent.size() || !conn->to_guest_idle()) {
        if (offset < sent.size() && conn->to_guest_room() > 0) {
            std::size_t n = conn->send_to_guest(std::span(sent).subspan(offset, std::min<std::size_t>(sent.size() - offset, 100'000)));
            EXPECT_LE(n, DEFAULT_BUFFER_BYTES);
            offset += n;
        }
        // Frees ring space: the guest's signal (pending_send_sz) makes the host refill the
        // ring from its buffer (on_ring_space) with no further host call.
        read_all(got);
        ASSERT_LT(++rounds, 10'000);
    }
    conn->finish_to_guest();
    EXPECT_EQ(read_all(got), 1);
    EXPECT_TRUE(conn->fin_sent());
    EXPECT_EQ(got, sent);

    // Guest -> host: the host stops taking packets when its buffer is full (the guest's ring
    // fills, nothing is dropped), and resumes when the owner takes bytes.
    auto up = pattern(2 << 20, 2);
    std::vector<std::byte> received;
    offset = 0;
    rounds = 0;
    while (offset < up.size()) {
        std::size_t chunk = std::min<std::size_t>(4088, up.size() - offset);
        auto packet = pipe_packet(1, static_cast<std::uint32_t>(chunk), std::span(up).subspan(offset, chunk));
        if (guest.write_packet(packet)) {
            offset += chunk;
            continue;
        }
        auto more = take_all(); // Ring full: the host must have paused on its own full buffer.
        ASSERT_FALSE(more.empty());
        received.insert(received.end(), more.begin(), more.end());
        ASSERT_LT(++rounds, 10'000);
    }
    ASSERT_TRUE(guest.write_packet(pipe_packet(1, 0, {})));
    auto rest = take_all();
    received.insert(received.end(), rest.begin(), rest.end());
    EXPECT_EQ(received, up);
    EXPECT_TRUE(conn->guest_finished());
    EXPECT_TRUE(conn->done());
    EXPECT_EQ(conn->stats().bytes_from_guest, up.size());
    EXPECT_EQ(conn->stats().bytes_to_guest, sent.size());
}

TEST_F(HvSockTest, HostBytesQueuedBeforeOpenFlowAfterIt)
{
    conn = std::make_unique<HvSockConnection>(service_id_for_port(7), service_id_for_port(8), true);
    auto early = pattern(1000, 3);
    EXPECT_EQ(conn->send_to_guest(early), early.size());
    ASSERT_TRUE(guest.initiate_contact(VERSION_WIN10_V5_3));
    guest.request_offers();
    ASSERT_TRUE(host.add_device(*conn).has_value());
    offer = TestVmbusGuest::as<OfferChannel>(guest.receive_all().at(0));
    ASSERT_EQ(guest.bring_up(offer, ring_pages, RING_PAGES / 2), CHANNEL_STATUS_SUCCESS);
    std::vector<std::byte> got;
    read_all(got);
    EXPECT_EQ(got, early);
}

TEST_F(HvSockTest, GuestCloseEndsTheConnectionButKeepsReceivedBytes)
{
    open();
    auto data = pattern(300, 4);
    ASSERT_TRUE(guest.write_packet(pipe_packet(1, 300, data)));
    auto close = CloseChannel { { static_cast<u32>(MessageType::CHANNELMSG_CLOSECHANNEL), 0 }, offer.child_relid };
    ASSERT_EQ(guest.post(close), HV_STATUS_SUCCESS);
    EXPECT_EQ(conn->state(), HvSockState::Closed);
    EXPECT_FALSE(conn->failed());
    EXPECT_EQ(take_all(), data);
    EXPECT_EQ(conn->send_to_guest(data), 0u); // Nowhere to go any more.
    host.rescind(*conn);
    bool rescinded = false;
    for (auto const& message : guest.receive_all())
        rescinded |= message.msgtype() == static_cast<u32>(MessageType::CHANNELMSG_RESCIND_CHANNELOFFER);
    EXPECT_TRUE(rescinded);
}

struct Hostile {
    char const* name;
    std::vector<std::byte> payload;
};

class HvSockHostileTest : public HvSockTest, public ::testing::WithParamInterface<int> {};

TEST_P(HvSockHostileTest, HostilePacketResetsTheConnectionOnly)
{
    open();
    auto data = pattern(64, 5);
    std::vector<std::byte> payload;
    switch (GetParam()) {
    case 0: payload = {}; break; // No vmpipe header at all (payloads are 8-byte granular).
    case 1: payload = pipe_packet(2, 64, data); break;                       // Unknown pkt_type.
    case 2: payload = pipe_packet(1, 65, data); break;                       // data_size past the packet.
    case 3: payload = pipe_packet(1, 0x7fffffff, data); break;               // Absurd size.
    case 4: payload = pipe_packet(1, 20000, pattern(20000, 6)); break;       // Beyond the 16 KiB MTU.
    default: break;
    }
    ASSERT_TRUE(guest.write_packet(payload));
    EXPECT_TRUE(conn->failed());
    EXPECT_EQ(conn->state(), HvSockState::Closed);
    EXPECT_EQ(conn->stats().bytes_from_guest, 0u);
    EXPECT_EQ(conn->stats().packets_refused, 1u);
    // Later packets are not looked at; the host stays sound and the owner can rescind.
    EXPECT_TRUE(guest.write_packet(pipe_packet(1, 64, data)));
    EXPECT_EQ(conn->stats().bytes_from_guest, 0u);
    host.rescind(*conn);
    EXPECT_EQ(host.channel_of(*conn), nullptr);
}

INSTANTIATE_TEST_SUITE_P(Packets, HvSockHostileTest, ::testing::Range(0, 5));

TEST_F(HvSockTest, DataAfterTheGuestFinIsRefused)
{
    open();
    ASSERT_TRUE(guest.write_packet(pipe_packet(1, 0, {})));
    EXPECT_TRUE(conn->guest_finished());
    ASSERT_TRUE(guest.write_packet(pipe_packet(1, 8, pattern(8, 7))));
    EXPECT_TRUE(conn->failed());
}

TEST_F(HvSockTest, OtherPacketKindsAreDroppedByTheChannel)
{
    open();
    auto data = pattern(16, 8);
    ASSERT_TRUE(guest.write_packet(pipe_packet(1, 16, data), 0, static_cast<std::uint16_t>(VmPacketType::VM_PKT_COMP)));
    EXPECT_FALSE(conn->failed());
    EXPECT_EQ(conn->stats().bytes_from_guest, 0u);
}

// ---- VMBus host: TL_CONNECT_REQUEST hand-off and rescinded devices ----

struct RecordingSink final : TlConnectSink {
    void on_tl_connect_request(Guid const& endpoint, Guid const& service) override { requests.emplace_back(endpoint, service); }
    std::vector<std::pair<Guid, Guid>> requests;
};

TlConnectRequest tl_request(std::uint32_t local_port, std::uint32_t remote_port)
{
    TlConnectRequest request {};
    request.header.msgtype = static_cast<u32>(MessageType::CHANNELMSG_TL_CONNECT_REQUEST);
    request.guest_endpoint_id = service_id_for_port(local_port).bytes;
    request.host_service_id = service_id_for_port(remote_port).bytes;
    return request;
}

TEST_F(HvSockTest, TlConnectRequestReachesTheSinkOnlyWhenConnected)
{
    RecordingSink sink;
    host.set_tl_connect_sink(&sink);
    EXPECT_EQ(guest.post(tl_request(1234, 6000)), HV_STATUS_SUCCESS); // Before contact: refused.
    EXPECT_TRUE(sink.requests.empty());
    ASSERT_TRUE(guest.initiate_contact(VERSION_WIN10_V5_3));
    guest.request_offers();
    EXPECT_EQ(guest.post(tl_request(1234, 6000)), HV_STATUS_SUCCESS);
    ASSERT_EQ(sink.requests.size(), 1u);
    EXPECT_EQ(port_of_service_id(sink.requests[0].first), 1234u);
    EXPECT_EQ(port_of_service_id(sink.requests[0].second), 6000u);
    // Short message: malformed, dropped.
    auto const short_request = tl_request(1, 2); // Named: wire_bytes() is a view of it.
    auto bytes = wire_bytes(short_request);
    EXPECT_EQ(guest.post_bytes(std::span(bytes).first(20)), HV_STATUS_SUCCESS);
    EXPECT_EQ(sink.requests.size(), 1u);
    host.set_tl_connect_sink(nullptr);
    u64 ignored = host.stats().messages_ignored;
    EXPECT_EQ(guest.post(tl_request(1234, 6000)), HV_STATUS_SUCCESS);
    EXPECT_EQ(host.stats().messages_ignored, ignored + 1);
}

TEST_F(HvSockTest, TlConnectRequestBeforeWin10IsRefused)
{
    RecordingSink sink;
    host.set_tl_connect_sink(&sink);
    ASSERT_TRUE(guest.initiate_contact(VERSION_WIN8_1));
    guest.request_offers();
    EXPECT_EQ(guest.post(tl_request(1, 2)), HV_STATUS_SUCCESS);
    EXPECT_TRUE(sink.requests.empty());
}

TEST_F(HvSockTest, ARescindedDeviceMayBeFreedAndItsAddressReused)
{
    open();
    host.rescind(*conn);
    // Same address, same instance GUID, before the guest's RELID_RELEASED: a new connection.
    conn->~HvSockConnection();
    new (conn.get()) HvSockConnection(service_id_for_port(5000), service_id_for_port(0x40000001), true);
    EXPECT_TRUE(host.add_device(*conn).has_value());
    EXPECT_NE(host.channel_of(*conn), nullptr);
}

} // namespace

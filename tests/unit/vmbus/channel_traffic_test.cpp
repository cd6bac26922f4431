// SPDX-License-Identifier: MIT
// Channel traffic through VmbusHost: echo over both rings, wrap-around, backpressure in both
// directions, signalling, and rings the guest corrupts (channel closed, memory untouched).
#include "devices/vmbus/connection.hpp"

#include <cstring>

#include "tests/unit/vmbus/vmbus_rig.hpp"

using namespace vmm;
using namespace vmm::vmbus;
using vmm::test::TestVmbusGuest;

namespace {

class ChannelTrafficTest : public vmm::test::VmbusRig {
protected:
    static std::vector<std::byte> pattern(std::size_t size, u8 seed)
    {
        std::vector<std::byte> bytes(size);
        for (std::size_t i = 0; i < size; ++i)
            bytes[i] = std::byte { static_cast<u8>(seed * 31 + i) };
        return bytes;
    }
    static bool same_prefix(std::vector<std::byte> const& padded, std::vector<std::byte> const& original)
    {
        return padded.size() == (original.size() + 7) / 8 * 8
            && std::memcmp(padded.data(), original.data(), original.size()) == 0;
    }
};

} // namespace

TEST_F(ChannelTrafficTest, EchoSignalsTheTargetVpWithTheRelidFlag)
{
    auto offer = open_echo();
    synic.events.clear();
    auto payload = pattern(100, 1);
    ASSERT_TRUE(guest.write_packet(payload));
    ASSERT_EQ(echo.received.size(), 1u);
    EXPECT_EQ(echo.received[0].size(), 104u); // Payload as the guest padded it.
    ASSERT_EQ(synic.events.size(), 1u);
    EXPECT_EQ(synic.events[0].vp, 0u);
    EXPECT_EQ(synic.events[0].sint, VMBUS_MESSAGE_SINT);
    EXPECT_EQ(synic.events[0].flag, offer.child_relid);
    auto reply = guest.read_packet();
    ASSERT_TRUE(reply.has_value());
    EXPECT_TRUE(same_prefix(*reply, payload));
    auto const& stats = host.channel(offer.child_relid)->stats();
    EXPECT_EQ(stats.packets_received, 1u);
    EXPECT_EQ(stats.bytes_received, 104u);
    EXPECT_EQ(stats.packets_sent, 1u);
}

TEST_F(ChannelTrafficTest, RingsWrapAroundInBothDirectionsManyTimes)
{
    open_echo();
    for (int i = 0; i < 300; ++i) {
        auto payload = pattern(static_cast<std::size_t>(1 + (i * 97) % 3000), static_cast<u8>(i));
        ASSERT_TRUE(guest.write_packet(payload)) << i;
        auto reply = guest.read_packet();
        ASSERT_TRUE(reply.has_value()) << i;
        ASSERT_TRUE(same_prefix(*reply, echo.received.back())) << i;
        ASSERT_EQ(std::memcmp(reply->data(), payload.data(), payload.size()), 0) << i;
    }
    // 300 packets of ~1.5 KiB went through 16 KiB rings: both wrapped repeatedly.
    EXPECT_EQ(echo.echoed, 300u);
}

TEST_F(ChannelTrafficTest, FullHostToGuestRingIsBusyUntilTheGuestReads)
{
    auto offer = open_echo();
    auto payload = pattern(2000, 3);
    int sent = 0;
    while (guest.write_packet(payload)) { // The guest never reads: host replies pile up.
        if (++sent > 20)
            break;
    }
    EXPECT_EQ(echo.last_error, Errc::Busy);
    EXPECT_FALSE(echo.backlog.empty());
    std::size_t waiting = echo.backlog.size();
    EXPECT_LT(echo.port()->send_space_bytes(), 2008u);
    // Reading frees space past pending_send_sz: the guest signals, the device gets on_ring_space.
    std::size_t read = 0;
    while (guest.read_packet())
        ++read;
    EXPECT_GE(echo.ring_space_calls, 1u);
    while (guest.read_packet())
        ++read;
    EXPECT_EQ(echo.echoed, echo.received.size());
    EXPECT_TRUE(echo.backlog.empty());
    EXPECT_GE(read, waiting);
    EXPECT_GT(host.channel(offer.child_relid)->stats().busy_sends, 0u);
}

TEST_F(ChannelTrafficTest, GuestWaitingOnPendingSendSizeIsSignalledWhenTheHostDrains)
{
    auto offer = open_echo();
    echo.echo = false;
    // Fill the guest->host ring while the host has it masked (so no signal reaches it), then
    // ask for room through pending_send_sz the way a netvsc-style guest writer would.
    std::vector<std::byte> payload = pattern(1000, 4);
    guest.set_header_word(guest.outbound_header(), RING_INTERRUPT_MASK_OFFSET, 1);
    for (int i = 0; i < 15; ++i)
        ASSERT_TRUE(guest.write_packet(payload)) << i;
    EXPECT_FALSE(guest.write_packet(payload)); // 16 KiB ring: a 16th 1024-byte packet does not fit.
    u32 write = 15 * 1024;
    EXPECT_TRUE(echo.received.empty());
    guest.set_header_word(guest.outbound_header(), RING_PENDING_SEND_SZ_OFFSET, 3000);
    synic.events.clear();
    EXPECT_EQ(host.handle_signal_event(offer.connection_id), HV_STATUS_SUCCESS);
    EXPECT_EQ(echo.received.size(), 15u);
    EXPECT_EQ(synic.events_with_flag(offer.child_relid), 1u); // "Room now" signal.
    EXPECT_EQ(guest.header_word(guest.outbound_header(), RING_READ_INDEX_OFFSET), write % guest.outbound_data_bytes());
    EXPECT_EQ(guest.header_word(guest.outbound_header(), RING_INTERRUPT_MASK_OFFSET), 0u); // Unmasked after draining.
}

TEST_F(ChannelTrafficTest, NonInbandPacketsAreCountedButNotDelivered)
{
    auto offer = open_echo();
    auto payload = pattern(16, 5);
    ASSERT_TRUE(guest.write_packet(payload, 1, static_cast<u16>(VmPacketType::VM_PKT_COMP)));
    EXPECT_TRUE(echo.received.empty());
    EXPECT_EQ(host.channel(offer.child_relid)->stats().packets_ignored, 1u);
    ASSERT_TRUE(guest.write_packet(payload));
    EXPECT_EQ(echo.received.size(), 1u);
}

TEST_F(ChannelTrafficTest, CorruptGuestToHostIndicesCloseTheChannelWithoutTouchingMemory)
{
    auto offer = open_echo();
    auto before = memory.snapshot();
    guest.set_header_word(guest.outbound_header(), RING_WRITE_INDEX_OFFSET, 0x7fff'fff8);
    before = memory.snapshot();
    EXPECT_EQ(host.handle_signal_event(offer.connection_id), HV_STATUS_SUCCESS);
    EXPECT_EQ(host.channel(offer.child_relid)->state(), ChannelState::Broken);
    EXPECT_EQ(echo.closes, 1u);
    EXPECT_EQ(host.stats().rings_broken, 1u);
    // Only the interrupt mask of the guest->host header page may have been written.
    for (auto page : memory.changed_pages(before))
        EXPECT_EQ(page, ring_pages[0].raw());
    // The guest's own CLOSECHANNEL + teardown still complete.
    auto close = with_type<CloseChannel>(MessageType::CHANNELMSG_CLOSECHANNEL);
    close.child_relid = offer.child_relid;
    guest.post(close);
    auto teardown = with_type<GpadlTeardown>(MessageType::CHANNELMSG_GPADL_TEARDOWN);
    teardown.gpadl = TestVmbusGuest::FIRST_GPADL;
    guest.post(teardown);
    EXPECT_EQ(count_sent(MessageType::CHANNELMSG_GPADL_TORNDOWN, guest.receive_all()), 1u);
    EXPECT_EQ(echo.closes, 1u);
}

TEST_F(ChannelTrafficTest, PacketLengthLieClosesTheChannel)
{
    auto offer = open_echo();
    // A descriptor claiming 64 KiB in a ring with 40 bytes published.
    PacketDescriptor lie { 6, 2, 0x2000, 0, 0 };
    (void)memory.memory().write(ring_pages[1].address(), wire_bytes(lie));
    guest.set_header_word(guest.outbound_header(), RING_WRITE_INDEX_OFFSET, 40);
    host.handle_signal_event(offer.connection_id);
    EXPECT_EQ(host.channel(offer.child_relid)->state(), ChannelState::Broken);
    EXPECT_TRUE(echo.received.empty());
}

TEST_F(ChannelTrafficTest, CorruptHostToGuestReadIndexBreaksTheChannelOnSend)
{
    auto offer = open_echo();
    guest.set_header_word(guest.inbound_header(), RING_READ_INDEX_OFFSET, 13);
    auto payload = pattern(8, 6);
    ASSERT_TRUE(guest.write_packet(payload)); // The echo reply hits the bad index.
    EXPECT_EQ(host.channel(offer.child_relid)->state(), ChannelState::Broken);
    EXPECT_EQ(echo.closes, 1u);
    EXPECT_EQ(echo.port(), nullptr);
}

TEST_F(ChannelTrafficTest, PortRefusesSendsAfterClose)
{
    auto offer = open_echo();
    ChannelPort* port = echo.port();
    ASSERT_NE(port, nullptr);
    auto close = with_type<CloseChannel>(MessageType::CHANNELMSG_CLOSECHANNEL);
    close.child_relid = offer.child_relid;
    guest.post(close);
    auto payload = pattern(8, 7);
    // The channel object outlives the close; the stale port answers with an error.
    EXPECT_FALSE(port->send_packet(payload, 1).has_value());
    EXPECT_EQ(port->send_space_bytes(), 0u);
}

TEST_F(ChannelTrafficTest, PacketsQueuedBeforeOpenAreDrainedAtOpen)
{
    auto offers = connect();
    for (auto page : ring_pages)
        memory.fill_page(page, std::byte { 0 });
    // Hand-place one packet in the guest->host ring before OPENCHANNEL.
    PacketDescriptor descriptor { 6, 2, 3, 0, 9 };
    std::array<std::byte, 40> packet {};
    std::memcpy(packet.data(), &descriptor, 16);
    packet[16] = std::byte { 0x42 };
    (void)memory.memory().write(ring_pages[1].address(), packet);
    (void)memory.memory().write_obj(ring_pages[0].address(), u32 { 32 });
    ASSERT_EQ(guest.create_gpadl(1, TestVmbusGuest::FIRST_GPADL, ring_pages), CHANNEL_STATUS_SUCCESS);
    ASSERT_EQ(guest.open_channel(1, TestVmbusGuest::FIRST_GPADL, RING_PAGES / 2), CHANNEL_STATUS_SUCCESS);
    ASSERT_EQ(echo.received.size(), 1u);
    EXPECT_EQ(echo.received[0][0], std::byte { 0x42 });
    (void)offers;
}

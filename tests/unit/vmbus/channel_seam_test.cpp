// SPDX-License-Identifier: MIT
// The widened VMBus channel seam (ChannelDevice/ChannelPort): per-device offers and ring
// bounds, several channels at once, packet kinds (GPA-direct, transfer pages, completions),
// and GPADL access with deferred teardown. Hostile inputs for the packet parsers.
#include <cstring>

#include "devices/vmbus/connection.hpp"
#include "devices/vmbus/packet.hpp"
#include "tests/unit/vmbus/vmbus_rig.hpp"

using namespace vmm;
using namespace vmm::vmbus;
using vmm::test::EchoDevice;
using vmm::test::TestVmbusGuest;

namespace {

class ChannelSeamTest : public vmm::test::VmbusRig {
protected:
    template<typename T>
    static void put(std::vector<std::byte>& out, T value)
    {
        auto at = out.size();
        out.resize(at + sizeof(T));
        std::memcpy(out.data() + at, &value, sizeof(T));
    }
    // A GPA-direct header: reserved, count, then {len, offset, pfns...} per range.
    struct Range {
        u32 len;
        u32 offset;
        std::vector<u64> pfns;
    };
    static std::vector<std::byte> gpa_header(std::vector<Range> const& ranges, std::optional<u32> count = {})
    {
        std::vector<std::byte> out;
        put<u32>(out, 0);
        put<u32>(out, count.value_or(static_cast<u32>(ranges.size())));
        for (auto const& range : ranges) {
            put<u32>(out, range.len);
            put<u32>(out, range.offset);
            for (u64 pfn : range.pfns)
                put<u64>(out, pfn);
        }
        return out;
    }
    std::size_t torndown_for(u32 gpadl)
    {
        std::size_t count = 0;
        for (auto const& message : guest.receive_all())
            if (message.msgtype() == static_cast<u32>(MessageType::CHANNELMSG_GPADL_TORNDOWN)
                && TestVmbusGuest::as<GpadlTorndown>(message).gpadl == gpadl)
                ++count;
        return count;
    }
    void teardown(u32 relid, u32 gpadl)
    {
        auto message = with_type<GpadlTeardown>(MessageType::CHANNELMSG_GPADL_TEARDOWN);
        message.child_relid = relid;
        message.gpadl = gpadl;
        ASSERT_EQ(guest.post(message), HV_STATUS_SUCCESS);
    }
};

InboundPacket gpa_packet(std::span<std::byte const> header)
{
    return InboundPacket { VmPacketType::VM_PKT_DATA_USING_GPA_DIRECT, 0, 1, header, {} };
}

} // namespace

TEST_F(ChannelSeamTest, OffersCarryEachDevicesGuidsFlagsAndUserBytes)
{
    EchoDevice second { 2 };
    second.offer_params().channel_flags = 0x2000; // VMBUS_CHANNEL_TLNPI_PROVIDER_OFFER
    second.offer_params().user_defined[0] = 0x11;
    second.offer_params().user_defined[119] = 0x22;
    ASSERT_TRUE(host.add_device(second).has_value());
    auto offers = connect();
    ASSERT_EQ(offers.size(), 2u);
    EXPECT_NE(offers[0].child_relid, offers[1].child_relid);
    EXPECT_NE(offers[0].connection_id, offers[1].connection_id);
    auto const& theirs = offers[0].if_instance[0] == 2 ? offers[0] : offers[1];
    auto const& ours = offers[0].if_instance[0] == 2 ? offers[1] : offers[0];
    EXPECT_EQ(theirs.chn_flags, 0x2000);
    EXPECT_EQ(theirs.user_def[0], 0x11);
    EXPECT_EQ(theirs.user_def[119], 0x22);
    EXPECT_EQ(ours.chn_flags, 0);
    EXPECT_EQ(ours.user_def[0], 0);
}

TEST_F(ChannelSeamTest, TwoChannelsCarryTrafficIndependently)
{
    EchoDevice second { 2 };
    ASSERT_TRUE(host.add_device(second).has_value());
    auto offers = connect();
    ASSERT_EQ(offers.size(), 2u);
    TestVmbusGuest other { host, synic, memory };
    auto other_pages = TestVmbusGuest::scattered_pages(RING_PAGES, 1);
    ASSERT_EQ(guest.bring_up(offers[0], ring_pages, RING_PAGES / 2), CHANNEL_STATUS_SUCCESS);
    ASSERT_EQ(other.bring_up(offers[1], other_pages, RING_PAGES / 2, TestVmbusGuest::FIRST_GPADL + 1), CHANNEL_STATUS_SUCCESS);
    std::vector<std::byte> a(40, std::byte { 0xaa }), b(24, std::byte { 0xbb });
    ASSERT_TRUE(guest.write_packet(a));
    ASSERT_TRUE(other.write_packet(b));
    EchoDevice& first_device = offers[0].if_instance[0] == 1 ? echo : second;
    EchoDevice& second_device = offers[0].if_instance[0] == 1 ? second : echo;
    ASSERT_EQ(first_device.received.size(), 1u);
    ASSERT_EQ(second_device.received.size(), 1u);
    EXPECT_EQ(first_device.received[0], a);
    EXPECT_EQ(second_device.received[0], b);
    EXPECT_EQ(guest.read_packet(), a);
    EXPECT_EQ(other.read_packet(), b);
}

TEST_F(ChannelSeamTest, RingsOutsideTheDevicesBoundsAreRefused)
{
    echo.offer_params().min_ring_data_bytes = 8 * 4096; // 5+5 pages give 4 data pages each way.
    auto offers = connect();
    ASSERT_EQ(offers.size(), 1u);
    EXPECT_NE(guest.bring_up(offers[0], ring_pages, RING_PAGES / 2), CHANNEL_STATUS_SUCCESS);
    EXPECT_EQ(echo.opens, 0u);
}

TEST_F(ChannelSeamTest, UnacceptedPacketKindsAreCountedNotDelivered)
{
    auto offer = open_echo();
    std::vector<std::byte> payload(16, std::byte { 1 });
    auto header = gpa_header({ { 100, 0, { 3 } } });
    ASSERT_TRUE(guest.write_packet(payload, 5, static_cast<u16>(VmPacketType::VM_PKT_DATA_USING_GPA_DIRECT), header));
    ASSERT_TRUE(guest.write_packet(payload, 6, static_cast<u16>(VmPacketType::VM_PKT_COMP)));
    EXPECT_TRUE(echo.received.empty());
    EXPECT_EQ(host.channel(offer.child_relid)->stats().packets_ignored, 2u);
}

TEST_F(ChannelSeamTest, GpaDirectPacketsReachADeviceThatAcceptsThem)
{
    echo.offer_params().accepted_packets = ACCEPT_INBAND | ACCEPT_GPA_DIRECT;
    echo.echo = false;
    open_echo();
    std::vector<std::byte> payload(8, std::byte { 7 });
    auto header = gpa_header({ { 5000, 100, { 3, 4 } }, { 10, 0, { 9 } } });
    ASSERT_TRUE(guest.write_packet(payload, 9, static_cast<u16>(VmPacketType::VM_PKT_DATA_USING_GPA_DIRECT), header,
        VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED));
    ASSERT_EQ(echo.kinds.size(), 1u);
    EXPECT_EQ(echo.kinds[0], VmPacketType::VM_PKT_DATA_USING_GPA_DIRECT);
    EXPECT_EQ(echo.received[0], payload);
    ASSERT_EQ(echo.headers.size(), 1u);
    InboundPacket packet { VmPacketType::VM_PKT_DATA_USING_GPA_DIRECT, 0, 9, echo.headers[0], payload };
    auto ranges = parse_gpa_direct(packet);
    ASSERT_TRUE(ranges.has_value()) << ranges.error().what();
    ASSERT_EQ(ranges->size(), 2u);
    EXPECT_EQ((*ranges)[0].byte_count, 5000u);
    EXPECT_EQ((*ranges)[0].byte_offset, 100u);
    ASSERT_EQ((*ranges)[0].pages.size(), 2u);
    EXPECT_EQ((*ranges)[0].pages[1].raw(), 4u);
    EXPECT_EQ((*ranges)[1].pages[0].raw(), 9u);
    EXPECT_TRUE(echo.completion_requested.at(0));
}

TEST_F(ChannelSeamTest, GpaDirectParserRefusesHostileHeaders)
{
    auto bad = [](std::vector<std::byte> const& header) { return !parse_gpa_direct(gpa_packet(header)).has_value(); };
    EXPECT_TRUE(bad({}));                                               // No fixed part.
    EXPECT_TRUE(bad(gpa_header({}, 0)));                                // Zero ranges.
    EXPECT_TRUE(bad(gpa_header({}, MAX_PACKET_RANGES + 1)));             // Too many.
    EXPECT_TRUE(bad(gpa_header({ { 10, 0, { 1 } } }, 2)));              // Count lies.
    EXPECT_TRUE(bad(gpa_header({ { 0, 0, { 1 } } })));                  // Empty range.
    EXPECT_TRUE(bad(gpa_header({ { 10, 4096, { 1 } } })));              // Offset past the first page.
    EXPECT_TRUE(bad(gpa_header({ { 8192, 1, { 1, 2 } } })));            // Needs 3 pages, has 2.
    EXPECT_TRUE(bad(gpa_header({ { 10, 0, { mem::MAX_GPN } } })));      // Not a physical page.
    EXPECT_TRUE(bad(gpa_header({ { 0xffff'ffff, 4095, {} } })));        // Huge count, no pages.
    EXPECT_FALSE(bad(gpa_header({ { 4096, 0, { 1 } } })));
    // The wrong kind is a host bug, reported as such.
    InboundPacket inband { VmPacketType::VM_PKT_DATA_INBAND, 0, 0, {}, {} };
    EXPECT_EQ(parse_gpa_direct(inband).error().code(), Errc::InvalidArgument);
}

TEST_F(ChannelSeamTest, CompletionsAndTransferPagePacketsReachTheGuest)
{
    open_echo();
    auto* port = echo.port();
    ASSERT_NE(port, nullptr);
    std::vector<std::byte> body(12, std::byte { 0x5a });
    ASSERT_TRUE(port->send_completion(0x77, body).has_value());
    auto completion = guest.read_full_packet();
    ASSERT_TRUE(completion.has_value());
    EXPECT_EQ(completion->descriptor.type, static_cast<u16>(VmPacketType::VM_PKT_COMP));
    EXPECT_EQ(completion->descriptor.trans_id, 0x77u);
    EXPECT_TRUE(completion->header.empty());
    EXPECT_EQ(completion->payload.size(), 16u);

    std::vector<TransferPageRange> ranges { { 1500, 0 }, { 60, 4096 } };
    auto header = transfer_page_header(0xcafe, ranges);
    ASSERT_TRUE(port->send(OutboundPacket { VmPacketType::VM_PKT_DATA_USING_XFER_PAGES,
                               VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, 0x88, header, {} })
                    .has_value());
    auto xfer = guest.read_full_packet();
    ASSERT_TRUE(xfer.has_value());
    EXPECT_EQ(xfer->descriptor.type, static_cast<u16>(VmPacketType::VM_PKT_DATA_USING_XFER_PAGES));
    EXPECT_EQ(xfer->descriptor.flags, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED);
    InboundPacket seen { VmPacketType::VM_PKT_DATA_USING_XFER_PAGES, 0, 0x88, xfer->header, xfer->payload };
    auto parsed = parse_transfer_pages(seen);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(parsed->set_id, 0xcafe);
    ASSERT_EQ(parsed->ranges.size(), 2u);
    EXPECT_EQ(parsed->ranges[1].byte_offset, 4096u);
    // A header that is not 8-byte sized is a host bug: refused, the ring untouched.
    std::vector<std::byte> odd(5);
    EXPECT_EQ(port->send(OutboundPacket { VmPacketType::VM_PKT_DATA_INBAND, 0, 0, odd, {} }).error().code(),
        Errc::InvalidArgument);
    EXPECT_FALSE(guest.read_packet().has_value());
}

TEST_F(ChannelSeamTest, TransferPageParserRefusesHostileHeaders)
{
    auto parse = [](std::vector<std::byte> header) {
        InboundPacket packet { VmPacketType::VM_PKT_DATA_USING_XFER_PAGES, 0, 0, header, {} };
        return parse_transfer_pages(packet).has_value();
    };
    TransferPageRange one { 10, 0 };
    EXPECT_FALSE(parse({}));
    auto header = transfer_page_header(1, std::span { &one, 1 });
    EXPECT_TRUE(parse(header));
    header.resize(header.size() - 1);
    EXPECT_FALSE(parse(header));
    EXPECT_FALSE(parse(transfer_page_header(1, {})));
}

TEST_F(ChannelSeamTest, AcquiredGpadlIsReadableAndItsTeardownWaitsForRelease)
{
    auto offer = open_echo();
    auto data_pages = TestVmbusGuest::scattered_pages(3, 2);
    constexpr u32 DATA_GPADL = 0x4242;
    ASSERT_EQ(guest.create_gpadl(offer.child_relid, DATA_GPADL, data_pages), CHANNEL_STATUS_SUCCESS);
    (void)guest.receive_all();
    auto* port = echo.port();
    // Not a ring, not unknown, not twice.
    EXPECT_FALSE(port->acquire_gpadl(TestVmbusGuest::FIRST_GPADL).has_value());
    EXPECT_FALSE(port->acquire_gpadl(0x9999).has_value());
    auto view = port->acquire_gpadl(DATA_GPADL);
    ASSERT_TRUE(view.has_value()) << view.error().what();
    EXPECT_FALSE(port->acquire_gpadl(DATA_GPADL).has_value());
    EXPECT_EQ(view->size_bytes(), 3u * 4096);
    // A write across a page boundary lands in the two (scattered) guest pages.
    std::vector<std::byte> bytes(100, std::byte { 0x3c });
    ASSERT_TRUE(view->write(4096 - 50, bytes).has_value());
    EXPECT_EQ(memory.memory().read_obj<u8>(mem::Gpa { data_pages[0].address().raw() + 4095 }).value(), 0x3c);
    EXPECT_EQ(memory.memory().read_obj<u8>(mem::Gpa { data_pages[1].address().raw() + 49 }).value(), 0x3c);
    std::vector<std::byte> back(100);
    ASSERT_TRUE(view->read(4096 - 50, back).has_value());
    EXPECT_EQ(back, bytes);
    EXPECT_FALSE(view->read(3 * 4096 - 10, back).has_value()); // Past the end.
    EXPECT_FALSE(view->write(~u64 { 0 }, bytes).has_value());  // Offset overflow.
    // The guest tears it down while held: deferred until the device lets go.
    teardown(offer.child_relid, DATA_GPADL);
    EXPECT_EQ(torndown_for(DATA_GPADL), 0u);
    port->release_gpadl(DATA_GPADL);
    host.close_broken_channels(); // The host's sweep sends the deferred TORNDOWN.
    EXPECT_EQ(torndown_for(DATA_GPADL), 1u);
    EXPECT_EQ(host.gpadls().find_created(DATA_GPADL), nullptr);
}

TEST_F(ChannelSeamTest, ClosingTheChannelReleasesHeldGpadls)
{
    auto offer = open_echo();
    constexpr u32 DATA_GPADL = 0x4343;
    ASSERT_EQ(guest.create_gpadl(offer.child_relid, DATA_GPADL, TestVmbusGuest::scattered_pages(1, 3)),
        CHANNEL_STATUS_SUCCESS);
    ASSERT_TRUE(echo.port()->acquire_gpadl(DATA_GPADL).has_value());
    teardown(offer.child_relid, DATA_GPADL);
    (void)guest.receive_all();
    auto close = with_type<CloseChannel>(MessageType::CHANNELMSG_CLOSECHANNEL);
    close.child_relid = offer.child_relid;
    ASSERT_EQ(guest.post(close), HV_STATUS_SUCCESS);
    EXPECT_EQ(echo.closes, 1u);
    EXPECT_EQ(torndown_for(DATA_GPADL), 1u);
}

TEST_F(ChannelSeamTest, AnotherChannelsGpadlCannotBeAcquired)
{
    EchoDevice second { 2 };
    ASSERT_TRUE(host.add_device(second).has_value());
    auto offers = connect();
    ASSERT_EQ(guest.bring_up(offers[0], ring_pages, RING_PAGES / 2), CHANNEL_STATUS_SUCCESS);
    ASSERT_EQ(guest.create_gpadl(offers[1].child_relid, 0x5151, TestVmbusGuest::scattered_pages(1, 2)),
        CHANNEL_STATUS_SUCCESS);
    EchoDevice& opened = offers[0].if_instance[0] == 1 ? echo : second;
    EXPECT_FALSE(opened.port()->acquire_gpadl(0x5151).has_value());
}

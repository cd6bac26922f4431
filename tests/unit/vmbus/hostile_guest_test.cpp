// SPDX-License-Identifier: MIT
// A hostile or buggy guest: garbage, out-of-state messages, bogus relids/GPADLs, and memory it
// must not have the host touch. Every case: refused without a crash, state intact, guard bytes
// unchanged.
#include "devices/vmbus/connection.hpp"

#include <algorithm>

#include "tests/unit/vmbus/vmbus_rig.hpp"

using namespace vmm;
using namespace vmm::vmbus;
using vmm::test::TestVmbusGuest;

namespace {

class HostileGuestTest : public vmm::test::VmbusRig {
protected:
    OpenChannel open_request(u32 relid, u32 gpadl, u32 downstream = RING_PAGES / 2, u32 target_vp = 0)
    {
        auto open = with_type<OpenChannel>(MessageType::CHANNELMSG_OPENCHANNEL);
        open.child_relid = relid;
        open.openid = relid;
        open.ringbuffer_gpadlhandle = gpadl;
        open.target_vp = target_vp;
        open.downstream_ringbuffer_pageoffset = downstream;
        return open;
    }
    // Status of the OPENCHANNEL_RESULT among the replies, or NO_REPLY.
    u32 open_status()
    {
        for (auto const& reply : guest.receive_all())
            if (reply.msgtype() == static_cast<u32>(MessageType::CHANNELMSG_OPENCHANNEL_RESULT))
                return TestVmbusGuest::as<OpenResult>(reply).status;
        return TestVmbusGuest::NO_REPLY;
    }
    void zero_ring_pages()
    {
        for (auto page : ring_pages)
            memory.fill_page(page, std::byte { 0 });
    }
};

} // namespace

TEST_F(HostileGuestTest, GarbageMessagesAreDroppedCountedAndChangeNothing)
{
    auto before = memory.snapshot();
    std::vector<std::vector<std::byte>> garbage {
        {},                                            // empty
        std::vector<std::byte>(7, std::byte { 14 }),   // shorter than a header
        std::vector<std::byte>(240, std::byte { 0xff }), // unknown type 0xffffffff
    };
    for (u32 type : { 0u, 1u, 6u, 15u, 17u, 19u, 24u, 99u }) {
        std::vector<std::byte> message(40, std::byte { 0 });
        std::memcpy(message.data(), &type, 4);
        garbage.push_back(message);
    }
    std::vector<std::byte> short_open(147, std::byte { 0 });
    u32 open_type = 5;
    std::memcpy(short_open.data(), &open_type, 4);
    garbage.push_back(short_open);
    for (auto const& message : garbage)
        EXPECT_EQ(guest.post_bytes(message), HV_STATUS_SUCCESS);
    std::vector<std::byte> oversize(241, std::byte { 0 });
    EXPECT_EQ(guest.post_bytes(oversize), HV_STATUS_INVALID_PARAMETER);
    EXPECT_EQ(host.stats().messages_rejected, garbage.size() + 1);
    EXPECT_EQ(host.state(), ConnectionState::Disconnected);
    EXPECT_TRUE(guest.receive_all().empty());
    EXPECT_TRUE(memory.changed_pages(before).empty());
}

TEST_F(HostileGuestTest, MessagesBeforeInitiateContactAreRejectedWithoutReplies)
{
    guest.post(header_only(MessageType::CHANNELMSG_REQUESTOFFERS));
    guest.post(open_request(1, TestVmbusGuest::FIRST_GPADL));
    EXPECT_EQ(guest.create_gpadl(1, TestVmbusGuest::FIRST_GPADL, ring_pages), TestVmbusGuest::NO_REPLY);
    auto teardown = with_type<GpadlTeardown>(MessageType::CHANNELMSG_GPADL_TEARDOWN);
    guest.post(teardown);
    EXPECT_TRUE(guest.receive_all().empty());
    EXPECT_EQ(host.state(), ConnectionState::Disconnected);
    EXPECT_EQ(host.gpadls().created_count() + host.gpadls().in_progress_count(), 0u);
    EXPECT_EQ(host.stats().messages_rejected, 4u); // REQUESTOFFERS, OPEN, HEADER (10 PFNs fit), TEARDOWN
}

TEST_F(HostileGuestTest, OpenBeforeGpadlCreatedFailsAndLeavesTheChannelClosed)
{
    auto offers = connect();
    guest.post(open_request(offers[0].child_relid, TestVmbusGuest::FIRST_GPADL));
    EXPECT_NE(open_status(), CHANNEL_STATUS_SUCCESS);
    // GPADL still in progress (header only, bodies missing): not usable either.
    std::vector<std::byte> header(20 + 8 + 26 * 8, std::byte { 0 });
    auto fixed = with_type<GpadlHeader>(MessageType::CHANNELMSG_GPADL_HEADER);
    fixed.child_relid = offers[0].child_relid;
    fixed.gpadl = TestVmbusGuest::FIRST_GPADL;
    fixed.range_buflen = 8 + 40 * 8;
    fixed.rangecount = 1;
    std::memcpy(header.data(), &fixed, sizeof(fixed));
    guest.post_bytes(header);
    guest.post(open_request(offers[0].child_relid, TestVmbusGuest::FIRST_GPADL));
    EXPECT_NE(open_status(), CHANNEL_STATUS_SUCCESS);
    EXPECT_EQ(host.channel(offers[0].child_relid)->state(), ChannelState::Closed);
    EXPECT_EQ(echo.opens, 0u);
}

TEST_F(HostileGuestTest, OpenWithBogusRelidGpadlTargetOrLayoutIsRefused)
{
    auto offers = connect();
    u32 relid = offers[0].child_relid;
    zero_ring_pages();
    ASSERT_EQ(guest.create_gpadl(relid, TestVmbusGuest::FIRST_GPADL, ring_pages), CHANNEL_STATUS_SUCCESS);
    for (u32 bogus_relid : { 0u, 2u, 2047u, 5000u, 0xffff'ffffu }) {
        guest.post(open_request(bogus_relid, TestVmbusGuest::FIRST_GPADL));
        EXPECT_EQ(open_status(), TestVmbusGuest::NO_REPLY) << bogus_relid; // Unmatchable: dropped.
    }
    guest.post(open_request(relid, 0x999));
    EXPECT_NE(open_status(), CHANNEL_STATUS_SUCCESS);
    guest.post(open_request(relid, TestVmbusGuest::FIRST_GPADL, RING_PAGES / 2, VCPUS));
    EXPECT_NE(open_status(), CHANNEL_STATUS_SUCCESS);
    for (u32 downstream : { 0u, 1u, RING_PAGES - 1, RING_PAGES, 0xffff'ffffu }) {
        guest.post(open_request(relid, TestVmbusGuest::FIRST_GPADL, downstream));
        EXPECT_NE(open_status(), CHANNEL_STATUS_SUCCESS) << downstream;
    }
    EXPECT_EQ(echo.opens, 0u);
    EXPECT_FALSE(host.gpadls().find_created(TestVmbusGuest::FIRST_GPADL)->in_use);
}

TEST_F(HostileGuestTest, GpadlOfAnotherRelidCannotBackAChannel)
{
    vmm::test::EchoDevice other { 2 };
    ASSERT_TRUE(host.add_device(other).has_value());
    auto offers = connect();
    ASSERT_EQ(offers.size(), 2u);
    zero_ring_pages();
    ASSERT_EQ(guest.create_gpadl(2, TestVmbusGuest::FIRST_GPADL, ring_pages), CHANNEL_STATUS_SUCCESS);
    guest.post(open_request(1, TestVmbusGuest::FIRST_GPADL));
    EXPECT_NE(open_status(), CHANNEL_STATUS_SUCCESS);
}

TEST_F(HostileGuestTest, DoubleOpenIsRefusedAndTheOpenChannelKeepsWorking)
{
    auto offer = open_echo();
    ASSERT_EQ(guest.create_gpadl(offer.child_relid, TestVmbusGuest::FIRST_GPADL + 1, TestVmbusGuest::scattered_pages(4, 1)),
        CHANNEL_STATUS_SUCCESS);
    guest.post(open_request(offer.child_relid, TestVmbusGuest::FIRST_GPADL + 1, 2));
    EXPECT_NE(open_status(), CHANNEL_STATUS_SUCCESS);
    EXPECT_EQ(echo.opens, 1u);
    std::array<std::byte, 8> ping { std::byte { 1 } };
    ASSERT_TRUE(guest.write_packet(ping));
    EXPECT_TRUE(guest.read_packet().has_value());
}

TEST_F(HostileGuestTest, DuplicateGpadlIdIsRefusedAndTheFirstStillOpens)
{
    auto offers = connect();
    zero_ring_pages();
    ASSERT_EQ(guest.create_gpadl(1, TestVmbusGuest::FIRST_GPADL, ring_pages), CHANNEL_STATUS_SUCCESS);
    EXPECT_NE(guest.create_gpadl(1, TestVmbusGuest::FIRST_GPADL, TestVmbusGuest::scattered_pages(4, 1)), CHANNEL_STATUS_SUCCESS);
    EXPECT_EQ(host.gpadls().page_count(TestVmbusGuest::FIRST_GPADL), RING_PAGES);
    EXPECT_EQ(guest.bring_up(offers[0], ring_pages, RING_PAGES / 2, TestVmbusGuest::FIRST_GPADL + 5), CHANNEL_STATUS_SUCCESS);
}

TEST_F(HostileGuestTest, GpadlPagesOutsideGuestRamAreRefusedAndNothingIsWritten)
{
    connect();
    auto before = memory.snapshot();
    auto pages = ring_pages;
    pages[7] = mem::Gpn { vmm::test::VmbusRam::HOLE_GPN };
    EXPECT_NE(guest.create_gpadl(1, TestVmbusGuest::FIRST_GPADL, pages), CHANNEL_STATUS_SUCCESS);
    pages[7] = mem::Gpn { (vmm::test::VmbusRam::HIGH_GPA + vmm::test::VmbusRam::HIGH_BYTES) / 4096 };
    EXPECT_NE(guest.create_gpadl(1, TestVmbusGuest::FIRST_GPADL, pages), CHANNEL_STATUS_SUCCESS);
    pages[30 % pages.size()] = mem::Gpn { ~u64 { 0 } };
    EXPECT_NE(guest.create_gpadl(1, TestVmbusGuest::FIRST_GPADL, pages), CHANNEL_STATUS_SUCCESS);
    EXPECT_EQ(host.gpadls().created_count(), 0u);
    EXPECT_TRUE(memory.changed_pages(before).empty());
}

TEST_F(HostileGuestTest, BogusRelidsInCloseReleaseAndTeardownAreHarmless)
{
    auto offer = open_echo();
    for (u32 relid : { 0u, 3u, 2048u, 0xffff'ffffu }) {
        auto close = with_type<CloseChannel>(MessageType::CHANNELMSG_CLOSECHANNEL);
        close.child_relid = relid;
        guest.post(close);
        auto released = with_type<RelidReleased>(MessageType::CHANNELMSG_RELID_RELEASED);
        released.child_relid = relid;
        guest.post(released);
    }
    auto released = with_type<RelidReleased>(MessageType::CHANNELMSG_RELID_RELEASED);
    released.child_relid = offer.child_relid; // Not rescinded: refused.
    guest.post(released);
    EXPECT_EQ(host.channel(offer.child_relid)->state(), ChannelState::Open);
    EXPECT_EQ(host.stats().messages_rejected, 9u);
    auto teardown = with_type<GpadlTeardown>(MessageType::CHANNELMSG_GPADL_TEARDOWN);
    teardown.gpadl = 0x4242; // Unknown ids are answered so the guest never hangs.
    guest.post(teardown);
    auto replies = guest.receive_all();
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(TestVmbusGuest::as<GpadlTorndown>(replies[0]).gpadl, 0x4242u);
}

TEST_F(HostileGuestTest, SignalsOnUnknownConnectionIdsAreRefused)
{
    open_echo();
    for (u32 id : { 0u, 1u, 3u, 0x10000u, 0x10002u, 0xffff'ffffu })
        EXPECT_EQ(host.handle_signal_event(id), HV_STATUS_INVALID_CONNECTION_ID) << id;
    EXPECT_EQ(host.handle_signal_event(0x10001), HV_STATUS_SUCCESS);
    EXPECT_EQ(host.stats().signals_unknown, 6u);
}

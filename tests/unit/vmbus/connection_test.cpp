// SPDX-License-Identifier: MIT
// VmbusHost transcripts with the Linux-like test guest: version negotiation, offers, GPADL,
// open/close/teardown, rescind, MODIFYCHANNEL, UNLOAD and reset, with a busy SynIC slot.
#include "devices/vmbus/connection.hpp"

#include <cstring>

#include "tests/unit/vmbus/vmbus_rig.hpp"

using namespace vmm;
using namespace vmm::vmbus;
using vmm::test::TestVmbusGuest;

namespace {
class VmbusHostTest : public vmm::test::VmbusRig { };
} // namespace

TEST_F(VmbusHostTest, HandshakeOpenAndEchoWorkWithEverySupportedVersion)
{
    for (u32 version : SUPPORTED_VERSIONS) {
        host.reset();
        open_echo(version);
        EXPECT_EQ(host.version(), version);
        EXPECT_EQ(guest.msg_conn_id(), version >= VERSION_WIN10_V5 ? VMBUS_MESSAGE_CONNECTION_ID_4 : VMBUS_MESSAGE_CONNECTION_ID);
        EXPECT_EQ(host.state(), ConnectionState::OffersDelivered);
        std::array<std::byte, 3> hello { std::byte { 'h' }, std::byte { 'i' }, std::byte { '!' } };
        ASSERT_TRUE(guest.write_packet(hello));
        auto reply = guest.read_packet();
        ASSERT_TRUE(reply.has_value()) << std::hex << version;
        EXPECT_EQ(std::memcmp(reply->data(), hello.data(), hello.size()), 0);
        EXPECT_EQ(echo.opens, 1u);
        host.reset();
        EXPECT_EQ(echo.closes, 1u);
        echo.opens = echo.closes = 0;
    }
}

TEST_F(VmbusHostTest, LinuxNegotiationNewestFirstSettlesOnFiveThree)
{
    std::array<u32, 3> newest_first { make_version(6, 0), VERSION_WIN10_V5_3, VERSION_WIN10_V5_2 };
    EXPECT_EQ(guest.negotiate(newest_first), VERSION_WIN10_V5_3);
    EXPECT_EQ(host.stats().versions_refused, 1u);
}

TEST_F(VmbusHostTest, UnsupportedVersionIsRefusedAndStateIsUnchanged)
{
    for (u32 version : { VERSION_WIN7, VERSION_WS2008, make_version(6, 0), 0xffff'ffffu, 0u }) {
        EXPECT_FALSE(guest.initiate_contact(version)) << std::hex << version;
        EXPECT_EQ(host.state(), ConnectionState::Disconnected);
    }
    EXPECT_EQ(host.stats().versions_refused, 5u);
    EXPECT_EQ(host.queued_messages(), 0u);
}

TEST_F(VmbusHostTest, RefusalWhileConnectedKeepsTheConnection)
{
    open_echo();
    EXPECT_FALSE(guest.initiate_contact(make_version(9, 9)));
    EXPECT_EQ(host.state(), ConnectionState::OffersDelivered);
    EXPECT_EQ(echo.closes, 0u);
}

TEST_F(VmbusHostTest, VersionResponseBytesMatchTheContract)
{
    ASSERT_EQ(guest.post(guest.initiate_contact_message(VERSION_WIN10_V5_3), VMBUS_MESSAGE_CONNECTION_ID_4), HV_STATUS_SUCCESS);
    auto response = guest.receive();
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->sint, VMBUS_MESSAGE_SINT);
    EXPECT_EQ(response->message_type, HVMSG_VMBUS);
    // Contract Appendix A: 0F 00 00 00 00 00 00 00 01 00 00 00 04 00 00 00.
    std::array<u8, 16> expected { 0x0f, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0 };
    ASSERT_EQ(response->payload.size(), 16u);
    EXPECT_EQ(std::memcmp(response->payload.data(), expected.data(), 16), 0);
}

TEST_F(VmbusHostTest, VersionWithWrongSintOrUnknownTargetVcpuIsRefused)
{
    auto wrong_sint = guest.initiate_contact_message(VERSION_WIN10_V5_3);
    wrong_sint.interrupt_page_or_sint = 3;
    guest.post(wrong_sint, VMBUS_MESSAGE_CONNECTION_ID_4);
    auto bad_vp = guest.initiate_contact_message(VERSION_WIN10_V5_3);
    bad_vp.target_vcpu = VCPUS;
    guest.post(bad_vp, VMBUS_MESSAGE_CONNECTION_ID_4);
    auto replies = guest.receive_all();
    ASSERT_EQ(replies.size(), 2u);
    EXPECT_EQ(TestVmbusGuest::as<VersionResponse>(replies[0]).version_supported, 0);
    EXPECT_EQ(TestVmbusGuest::as<VersionResponse>(replies[1]).version_supported, 0);
    EXPECT_EQ(host.state(), ConnectionState::Disconnected);
}

TEST_F(VmbusHostTest, PostsOnOtherConnectionIdsOrMessageTypesAreRefusedByStatus)
{
    auto message = guest.initiate_contact_message(VERSION_WIN10_V5_3);
    EXPECT_EQ(guest.post(message, 2), HV_STATUS_INVALID_CONNECTION_ID);
    EXPECT_EQ(guest.post(message, 0x10001), HV_STATUS_INVALID_CONNECTION_ID);
    EXPECT_EQ(host.handle_post_message(0, 4, 2, wire_bytes(message)), HV_STATUS_INVALID_PARAMETER);
    EXPECT_EQ(host.state(), ConnectionState::Disconnected);
    EXPECT_FALSE(guest.receive().has_value());
}

TEST_F(VmbusHostTest, OfferMatchesContractAppendixAAndComesOnlyAfterRequestOffers)
{
    ASSERT_TRUE(guest.initiate_contact(VERSION_WIN10_V5_3));
    EXPECT_FALSE(guest.receive().has_value()); // Registered device, but no REQUESTOFFERS yet.
    auto offers = guest.request_offers();
    ASSERT_EQ(offers.size(), 1u);
    auto const& offer = offers[0];
    EXPECT_EQ(offer.child_relid, 1u);
    EXPECT_EQ(offer.connection_id, 0x10001u);
    EXPECT_EQ(offer.monitor_flags, 0);   // monitor_allocated = 0
    EXPECT_EQ(offer.interrupt_flags, 1); // is_dedicated_interrupt = 1
    EXPECT_EQ(offer.if_type, echo.offer().interface_type.bytes);
    EXPECT_EQ(offer.if_instance, echo.offer().interface_instance.bytes);
    auto raw = wire_bytes(offer);
    EXPECT_EQ(raw[188], std::byte { 0 });
    EXPECT_EQ(raw[190], std::byte { 1 });
    EXPECT_EQ(host.state(), ConnectionState::OffersDelivered);
}

TEST_F(VmbusHostTest, SecondRequestOffersDoesNotDuplicateOffers)
{
    connect();
    guest.post(header_only(MessageType::CHANNELMSG_REQUESTOFFERS));
    EXPECT_TRUE(guest.receive_all().empty());
    EXPECT_EQ(host.stats().messages_rejected, 1u);
}

TEST_F(VmbusHostTest, DeviceAddedAfterOffersIsOfferedAtOnceWithTheNextRelid)
{
    connect();
    vmm::test::EchoDevice late { 2 };
    ASSERT_EQ(host.add_device(late).value(), 2u);
    auto messages = guest.receive_all();
    ASSERT_EQ(messages.size(), 1u);
    EXPECT_EQ(TestVmbusGuest::as<OfferChannel>(messages[0]).child_relid, 2u);
    vmm::test::EchoDevice twin { 2 };
    EXPECT_FALSE(host.add_device(twin).has_value()); // Same instance GUID.
    EXPECT_FALSE(host.add_device(late).has_value()); // Same device.
}

TEST_F(VmbusHostTest, HandshakeSurvivesABusySlotPartOfTheTime)
{
    synic.refuse_every_nth = 3;
    auto offer = open_echo();
    EXPECT_GT(host.stats().post_busy, 0u);
    std::array<std::byte, 8> ping {};
    ASSERT_TRUE(guest.write_packet(ping));
    EXPECT_TRUE(guest.read_packet().has_value());
    EXPECT_EQ(offer.child_relid, 1u);
}

TEST_F(VmbusHostTest, FullOutgoingQueueThrottlesGuestPosts)
{
    // The guest never EOMs: every refused version reply waits in the queue.
    auto message = guest.initiate_contact_message(0x1234);
    std::uint16_t status = HV_STATUS_SUCCESS;
    int accepted = 0;
    for (int i = 0; i < 200 && status == HV_STATUS_SUCCESS; ++i) {
        status = guest.post(message, VMBUS_MESSAGE_CONNECTION_ID);
        accepted += status == HV_STATUS_SUCCESS ? 1 : 0;
    }
    EXPECT_EQ(status, HV_STATUS_INSUFFICIENT_BUFFERS);
    EXPECT_EQ(accepted, static_cast<int>(VmbusHost::MAX_QUEUED_MESSAGES) + 1); // One sits in the slot.
    EXPECT_EQ(guest.receive_all().size(), static_cast<std::size_t>(accepted));
    EXPECT_EQ(guest.post(message, VMBUS_MESSAGE_CONNECTION_ID), HV_STATUS_SUCCESS);
}

TEST_F(VmbusHostTest, CloseThenTeardownAnswersAndTheChannelCanReopen)
{
    auto offer = open_echo();
    auto close = with_type<CloseChannel>(MessageType::CHANNELMSG_CLOSECHANNEL);
    close.child_relid = offer.child_relid;
    guest.post(close);
    EXPECT_EQ(echo.closes, 1u);
    auto teardown = with_type<GpadlTeardown>(MessageType::CHANNELMSG_GPADL_TEARDOWN);
    teardown.child_relid = offer.child_relid;
    teardown.gpadl = TestVmbusGuest::FIRST_GPADL;
    guest.post(teardown);
    auto replies = guest.receive_all();
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(TestVmbusGuest::as<GpadlTorndown>(replies[0]).gpadl, TestVmbusGuest::FIRST_GPADL);
    EXPECT_EQ(host.gpadls().created_count(), 0u);
    // Driver rebind: a new GPADL and open on the same offer.
    EXPECT_EQ(guest.bring_up(offer, ring_pages, RING_PAGES / 2, TestVmbusGuest::FIRST_GPADL + 1), CHANNEL_STATUS_SUCCESS);
    EXPECT_EQ(echo.opens, 2u);
}

TEST_F(VmbusHostTest, TeardownOfAnInUseGpadlIsAnsweredOnlyAfterClose)
{
    auto offer = open_echo();
    auto teardown = with_type<GpadlTeardown>(MessageType::CHANNELMSG_GPADL_TEARDOWN);
    teardown.gpadl = TestVmbusGuest::FIRST_GPADL;
    guest.post(teardown);
    EXPECT_TRUE(guest.receive_all().empty());
    EXPECT_EQ(host.channel(offer.child_relid)->state(), ChannelState::Open);
    auto close = with_type<CloseChannel>(MessageType::CHANNELMSG_CLOSECHANNEL);
    close.child_relid = offer.child_relid;
    guest.post(close);
    auto replies = guest.receive_all();
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(replies[0].msgtype(), static_cast<u32>(MessageType::CHANNELMSG_GPADL_TORNDOWN));
}

TEST_F(VmbusHostTest, UnloadClosesEverythingAnswersAndAFreshHandshakeWorks)
{
    open_echo();
    guest.post(header_only(MessageType::CHANNELMSG_UNLOAD));
    auto replies = guest.receive_all();
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(replies[0].msgtype(), static_cast<u32>(MessageType::CHANNELMSG_UNLOAD_RESPONSE));
    EXPECT_EQ(host.state(), ConnectionState::Disconnected);
    EXPECT_EQ(echo.closes, 1u);
    EXPECT_EQ(host.gpadls().created_count(), 0u);
    open_echo(VERSION_WIN10_V5_2); // kexec'd kernel.
    EXPECT_EQ(echo.opens, 2u);
}

TEST_F(VmbusHostTest, ResetDropsStateSilentlyAndAFreshHandshakeWorks)
{
    synic.refuse_every_nth = 1; // Messages pile up in the queue...
    guest.post(guest.initiate_contact_message(VERSION_WIN10_V5_3), VMBUS_MESSAGE_CONNECTION_ID_4);
    EXPECT_EQ(host.queued_messages(), 1u);
    synic.refuse_every_nth = 0;
    host.reset(); // ...and a reboot forgets them.
    EXPECT_EQ(host.queued_messages(), 0u);
    EXPECT_EQ(host.state(), ConnectionState::Disconnected);
    open_echo();
    host.reset();
    EXPECT_EQ(echo.closes, 1u);
    EXPECT_FALSE(guest.receive().has_value());
    open_echo();
    EXPECT_EQ(echo.opens, 2u);
}

TEST_F(VmbusHostTest, InitiateContactWhileConnectedIsAnImplicitUnload)
{
    open_echo();
    EXPECT_TRUE(guest.initiate_contact(VERSION_WIN10_V5_3));
    EXPECT_EQ(echo.closes, 1u);
    EXPECT_EQ(host.state(), ConnectionState::Connected);
    EXPECT_EQ(guest.request_offers().size(), 1u);
}

TEST_F(VmbusHostTest, RescindClosesSendsRescindAndFreesTheRelidAfterRelease)
{
    auto offer = open_echo();
    host.rescind(echo);
    EXPECT_EQ(echo.closes, 1u);
    auto replies = guest.receive_all();
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(TestVmbusGuest::as<RescindChannelOffer>(replies[0]).child_relid, offer.child_relid);
    EXPECT_EQ(host.gpadls().created_count(), 0u); // The guest skips teardown after a rescind.
    auto close = with_type<CloseChannel>(MessageType::CHANNELMSG_CLOSECHANNEL);
    close.child_relid = offer.child_relid;
    guest.post(close); // vmbus_close after rescind: ignored.
    EXPECT_EQ(host.stats().messages_ignored, 1u);
    auto released = with_type<RelidReleased>(MessageType::CHANNELMSG_RELID_RELEASED);
    released.child_relid = offer.child_relid;
    guest.post(released);
    EXPECT_EQ(host.channel(offer.child_relid), nullptr);
    EXPECT_EQ(echo.closes, 1u);
    vmm::test::EchoDevice again { 1 };
    EXPECT_EQ(host.add_device(again).value(), offer.child_relid);
}

TEST_F(VmbusHostTest, ModifyChannelRetargetsAndAnswersFromFiveThree)
{
    auto offer = open_echo(VERSION_WIN10_V5_3);
    auto modify = with_type<ModifyChannel>(MessageType::CHANNELMSG_MODIFYCHANNEL);
    modify.child_relid = offer.child_relid;
    modify.target_vp = 1;
    guest.post(modify);
    auto replies = guest.receive_all();
    ASSERT_EQ(replies.size(), 1u);
    auto response = TestVmbusGuest::as<ModifyChannelResponse>(replies[0]);
    EXPECT_EQ(response.child_relid, offer.child_relid);
    EXPECT_EQ(response.status, CHANNEL_STATUS_SUCCESS);
    EXPECT_EQ(host.channel(offer.child_relid)->target_vp(), 1u);
    modify.target_vp = 7;
    guest.post(modify);
    replies = guest.receive_all();
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_NE(TestVmbusGuest::as<ModifyChannelResponse>(replies[0]).status, CHANNEL_STATUS_SUCCESS);
    EXPECT_EQ(host.channel(offer.child_relid)->target_vp(), 1u);
    // Host->guest events now go to VP 1.
    synic.events.clear();
    std::array<std::byte, 8> ping {};
    ASSERT_TRUE(guest.write_packet(ping));
    ASSERT_FALSE(synic.events.empty());
    EXPECT_EQ(synic.events.back().vp, 1u);
}

TEST_F(VmbusHostTest, ModifyChannelBeforeFourOneIsRejectedAndFourOneGetsNoResponse)
{
    auto offer = open_echo(VERSION_WIN10);
    auto modify = with_type<ModifyChannel>(MessageType::CHANNELMSG_MODIFYCHANNEL);
    modify.child_relid = offer.child_relid;
    modify.target_vp = 1;
    guest.post(modify);
    EXPECT_TRUE(guest.receive_all().empty());
    EXPECT_EQ(host.channel(offer.child_relid)->target_vp(), 0u);
    host.reset();
    open_echo(VERSION_WIN10_V4_1);
    guest.post(modify);
    EXPECT_TRUE(guest.receive_all().empty());
    EXPECT_EQ(host.channel(offer.child_relid)->target_vp(), 1u);
}

TEST_F(VmbusHostTest, RingGpadlSpanningAHeaderAndTwoBodiesOpensAndCarriesTraffic)
{
    auto offers = connect();
    ASSERT_EQ(offers.size(), 1u);
    // 60 pages in descending order: 26 PFNs in the header, then bodies of 28 and 6.
    std::vector<mem::Gpn> pages;
    for (u64 i = 0; i < 60; ++i)
        pages.push_back(mem::Gpn { 100 - i });
    ASSERT_EQ(guest.bring_up(offers[0], pages, 30), CHANNEL_STATUS_SUCCESS);
    EXPECT_EQ(host.gpadls().page_count(TestVmbusGuest::FIRST_GPADL), 60u);
    for (int i = 0; i < 20; ++i) {
        std::vector<std::byte> payload(9000 + static_cast<std::size_t>(i), std::byte { static_cast<u8>(i) });
        ASSERT_TRUE(guest.write_packet(payload)) << i;
        auto reply = guest.read_packet();
        ASSERT_TRUE(reply.has_value()) << i;
        ASSERT_GE(reply->size(), payload.size());
        EXPECT_EQ((*reply)[payload.size() - 1], std::byte { static_cast<u8>(i) });
    }
}

TEST_F(VmbusHostTest, UnloadWhileDisconnectedIsStillAnswered)
{
    guest.post(header_only(MessageType::CHANNELMSG_UNLOAD));
    auto replies = guest.receive_all();
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(replies[0].msgtype(), static_cast<u32>(MessageType::CHANNELMSG_UNLOAD_RESPONSE));
    EXPECT_EQ(host.state(), ConnectionState::Disconnected);
}

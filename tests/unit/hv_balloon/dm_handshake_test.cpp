// SPDX-License-Identifier: MIT
#include "devices/hv_balloon/dynamic_memory.hpp"

#include <gtest/gtest.h>

#include "tests/support/dm_rig.hpp"

using namespace vmm;
using namespace vmm::hv_balloon;
using namespace vmm::test;

TEST(DmHandshake, LinuxGuestConnectsWithVersionTwoAndGetsCapsAndInfoOnce)
{
    DmRig rig;
    EXPECT_EQ(rig.engine.state(), State::Closed);
    rig.connect();
    EXPECT_EQ(rig.guest.version, DYNMEM_PROTOCOL_VERSION_3);
    EXPECT_TRUE(rig.guest.caps_accepted);
    EXPECT_EQ(rig.guest.info_max_pages, rig.map.max_pages().raw());
    EXPECT_EQ(rig.port.sent_total, 3u); // Exactly one version response, one caps response, one INFO.
    auto status = rig.status();
    EXPECT_TRUE(status.connected);
    EXPECT_EQ(status.state, State::Idle);
    EXPECT_EQ(status.protocol_version, DYNMEM_PROTOCOL_VERSION_3);
    ASSERT_TRUE(status.caps);
    EXPECT_EQ(status.caps->hot_add_alignment_bytes(), 128ull << 20);
    EXPECT_EQ(rig.count_events<DmConnected>(), 1u);
    EXPECT_TRUE(rig.guest.violations.empty());
}

TEST(DmHandshake, UnknownVersionsAreRejectedSoTheGuestFallsBack)
{
    FakeGuestOptions options;
    options.versions = { 0x00030000, 0x00010000 };
    DmRig rig { DmConfig::linux_profile(), options };
    rig.connect();
    EXPECT_EQ(rig.guest.version, DYNMEM_PROTOCOL_VERSION_2);
    EXPECT_TRUE(rig.guest.caps_accepted);
    EXPECT_EQ(rig.status().protocol_version, DYNMEM_PROTOCOL_VERSION_2);
}

TEST(DmHandshake, OldestVersionGetsNoInfoMessage)
{
    FakeGuestOptions options;
    options.versions = { DYNMEM_PROTOCOL_VERSION_1 };
    DmRig rig { DmConfig::linux_profile(), options };
    rig.connect();
    EXPECT_EQ(rig.guest.version, DYNMEM_PROTOCOL_VERSION_1);
    EXPECT_FALSE(rig.guest.info_max_pages);
}

TEST(DmHandshake, GuestOfferingOnlyUnknownVersionsNeverConnects)
{
    FakeGuestOptions options;
    options.versions = { 0x00050000, 0x00000001 };
    DmRig rig { DmConfig::linux_profile(), options };
    rig.connect();
    EXPECT_FALSE(rig.guest.version);
    EXPECT_EQ(rig.engine.state(), State::WaitVersion);
    EXPECT_FALSE(rig.status().connected);
}

TEST(DmHandshake, CapsBeforeVersionAndDuplicateCapsAreIgnored)
{
    DmRig rig;
    rig.engine.on_open(rig.port);
    rig.engine.on_packet(dm_caps_report(1, 0x1F));
    EXPECT_TRUE(rig.port.sent.empty());
    EXPECT_EQ(rig.status().counters.unsolicited_messages, 1u);
    rig.connect();
    auto sent = rig.port.sent_total;
    rig.engine.on_packet(dm_caps_report(9, 0x1F));
    EXPECT_EQ(rig.port.sent_total, sent); // Never a second response.
    EXPECT_EQ(rig.status().counters.unsolicited_messages, 2u);
}

TEST(DmHandshake, StatusReportsAreKeptWithTheirAgeAndEventsAreRateLimited)
{
    DmRig rig;
    rig.connect();
    rig.guest.send_status(1000, 2000);
    rig.advance(std::chrono::milliseconds { 300 });
    rig.guest.send_status(1100, 2100);
    rig.advance(std::chrono::milliseconds { 500 });
    auto status = rig.status();
    ASSERT_TRUE(status.guest_status);
    EXPECT_EQ(status.guest_status->num_avail.raw(), 1100u);
    EXPECT_EQ(status.guest_status->num_committed.raw(), 2100u);
    EXPECT_EQ(status.guest_status_age, std::chrono::milliseconds { 500 });
    EXPECT_EQ(status.counters.status_reports, 2u);
    EXPECT_EQ(rig.count_events<DmStatusReported>(), 1u);
    rig.advance(std::chrono::milliseconds { 1000 });
    rig.guest.send_status(1, 2);
    EXPECT_EQ(rig.count_events<DmStatusReported>(), 2u);
}

TEST(DmHandshake, WindowsProfileHoldsRequestsForFiftySecondsAfterCaps)
{
    DmRig rig { DmConfig::windows_profile() };
    rig.connect();
    EXPECT_EQ(rig.engine.state(), State::PostConnectDelay);
    EXPECT_TRUE(rig.status().connected);
    rig.engine.set_target(rig.boot() - mem::PageCount { 4096 }).value();
    EXPECT_TRUE(rig.port.sent.empty());
    rig.advance(std::chrono::seconds { 49 });
    EXPECT_TRUE(rig.port.sent.empty());
    rig.advance(std::chrono::seconds { 1 });
    EXPECT_EQ(rig.port.sent.size(), 1u);
    rig.guest.pump();
    EXPECT_EQ(rig.map.current_pages(), rig.boot() - mem::PageCount { 4096 });
    rig.expect_consistent();
}

TEST(DmHandshake, ResponsesQueuedWhileTheRingIsFullGoOutInOrder)
{
    DmRig rig;
    rig.engine.on_open(rig.port);
    rig.port.busy = true;
    rig.engine.on_packet(dm_version_request(1, DYNMEM_PROTOCOL_VERSION_3, false));
    rig.engine.on_packet(dm_caps_report(2, 0x1F));
    EXPECT_TRUE(rig.port.sent.empty());
    rig.port.busy = false;
    rig.engine.on_ring_space();
    ASSERT_EQ(rig.port.sent.size(), 3u);
    EXPECT_EQ(std::uint16_t { wire_from<DmHeader>(rig.port.sent[0]).type }, 2);
    EXPECT_EQ(std::uint16_t { wire_from<DmHeader>(rig.port.sent[1]).type }, 4);
    EXPECT_EQ(std::uint16_t { wire_from<DmHeader>(rig.port.sent[2]).type }, 12);
}

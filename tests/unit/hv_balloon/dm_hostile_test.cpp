// SPDX-License-Identifier: MIT
// Hostile or broken guests: malformed packets, lying size fields, unknown types, unsolicited
// responses and bad page ranges. State and counters change as documented; nothing the guest
// did not legitimately give is ever discarded.
#include "devices/hv_balloon/dynamic_memory.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "tests/support/dm_rig.hpp"

using namespace vmm;
using namespace vmm::hv_balloon;
using namespace vmm::test;
using mem::PageCount;
using mem::RejectReason;

namespace {

std::uint64_t rejected(DmRig const& rig, RejectReason reason)
{
    return rig.status().counters.rejected_ranges[static_cast<std::size_t>(reason)];
}

// A connected rig with one balloon request of `pages` outstanding (the guest stays silent).
struct Outstanding : DmRig {
    explicit Outstanding(std::uint64_t pages_requested = 4096)
    {
        connect();
        guest.options.ignore_balloon = true;
        target(boot() - PageCount { pages_requested });
        EXPECT_EQ(engine.state(), State::BalloonWaitReply);
    }
    void respond(std::vector<DmPageRange> ranges, bool more = false)
    {
        guest.send(dm_balloon_response(guest.next_trans_id(), more, ranges));
    }
};

} // namespace

TEST(DmHostile, ShortPacketsAndLyingSizeFieldsAreCountedAndDropped)
{
    DmRig rig;
    rig.connect();
    std::vector<std::byte> tiny(4);
    rig.guest.send(tiny);
    auto status_report = dm_status_report(1, 5, 6);
    auto lying = status_report;
    std::uint16_t big = 200;
    std::memcpy(lying.data() + 2, &big, 2); // hdr.size beyond the packet
    rig.guest.send(lying);
    auto small = status_report;
    std::uint16_t four = 4;
    std::memcpy(small.data() + 2, &four, 2); // hdr.size below the header
    rig.guest.send(small);
    auto truncated = status_report;
    std::uint16_t sixteen = 16;
    std::memcpy(truncated.data() + 2, &sixteen, 2); // a status report claiming 16 bytes
    rig.guest.send(truncated);
    auto status = rig.status();
    EXPECT_EQ(status.counters.malformed_packets, 4u);
    EXPECT_FALSE(status.guest_status);
    EXPECT_EQ(status.state, State::Idle);
    // Padding after hdr.size is fine (VMBus pads payloads to 8 bytes).
    auto padded = status_report;
    padded.resize(padded.size() + 8);
    rig.guest.send(padded);
    EXPECT_TRUE(rig.status().guest_status);
}

TEST(DmHostile, UnknownAndHostOnlyMessageTypesAreIgnored)
{
    DmRig rig;
    rig.connect();
    for (std::uint16_t type : { 0, 2, 4, 6, 8, 10, 12, 13, 14, 0xFFFF }) {
        DmHeader header { type, 8, 1 };
        std::vector<std::byte> message(8);
        std::memcpy(message.data(), &header, 8);
        rig.guest.send(message);
    }
    auto status = rig.status();
    EXPECT_EQ(status.counters.unknown_messages, 10u);
    EXPECT_EQ(status.state, State::Idle);
    EXPECT_TRUE(rig.port.sent.empty());
}

TEST(DmHostile, UnsolicitedResponsesChangeNothing)
{
    DmRig rig;
    rig.connect();
    rig.guest.send(dm_unballoon_response(1));
    rig.guest.send(dm_hot_add_response(2, BLOCK_PAGES, 1));
    std::array ranges { DmPageRange::make(GUEST_FREE.start.raw(), 512) };
    rig.guest.send(dm_balloon_response(3, false, ranges)); // Valid RAM, but nobody asked.
    auto status = rig.status();
    EXPECT_EQ(status.counters.unsolicited_messages, 3u);
    EXPECT_EQ(rejected(rig, RejectReason::Unsolicited), 1u);
    EXPECT_EQ(status.ballooned.raw(), 0u);
    EXPECT_EQ(status.hot_added.raw(), 0u);
    EXPECT_TRUE(rig.discard.calls.empty());
    EXPECT_EQ(status.state, State::Idle);
}

TEST(DmHostile, PacketsBeforeOpenOrAfterCloseAreIgnored)
{
    DmRig rig;
    rig.guest.send(dm_version_request(1, DYNMEM_PROTOCOL_VERSION_3, false));
    EXPECT_EQ(rig.engine.state(), State::Closed);
    EXPECT_TRUE(rig.port.sent.empty());
    rig.connect();
    rig.engine.on_close();
    rig.guest.send(dm_status_report(5, 1, 1));
    EXPECT_FALSE(rig.status().guest_status);
}

TEST(DmHostile, BalloonRangesOutsideRamAreRefusedAndNeverDiscarded)
{
    Outstanding rig { 200000 };
    rig.respond({
        DmPageRange::make(160, 1),                                    // legacy hole [640 KiB, 1 MiB)
        DmPageRange::make(GIB_PAGES, 512),                            // above boot RAM (MMIO/hole)
        DmPageRange::make(GIB_PAGES - 1, 2),                          // straddles the RAM end
        DmPageRange::make(WINDOW.start.raw(), 512),                   // unplugged hot-add space
        DmPageRange::make(DmPageRange::MAX_START, DmPageRange::MAX_COUNT), // start + count past MAX_GPN
        DmPageRange::make(0, DmPageRange::MAX_COUNT),                 // huge count over holes
        DmPageRange::make(GUEST_FREE.start.raw(), 0),                 // count 0
    });
    EXPECT_EQ(rejected(rig, RejectReason::OutsideRam), 5u);
    EXPECT_EQ(rejected(rig, RejectReason::Malformed), 2u);
    EXPECT_TRUE(rig.discard.calls.empty());
    EXPECT_EQ(rig.status().ballooned.raw(), 0u);
    EXPECT_EQ(rig.count_events<DmRejectedGuestRange>(), 1u);
    auto found = std::find_if(rig.events.begin(), rig.events.end(),
        [](DmEvent const& e) { return std::holds_alternative<DmRejectedGuestRange>(e); });
    ASSERT_NE(found, rig.events.end());
    auto const& event = std::get<DmRejectedGuestRange>(*found);
    EXPECT_EQ(event.rejected_in_message, 7u);
    EXPECT_EQ(event.reason, RejectReason::OutsideRam);
}

TEST(DmHostile, DoubleAndOverlappingReportsAreRefusedAndCountedOnce)
{
    Outstanding rig { 200000 };
    auto base = GUEST_FREE.start.raw();
    rig.respond({ DmPageRange::make(base, 512), DmPageRange::make(base, 512) }, true);
    rig.respond({ DmPageRange::make(base + 256, 512), DmPageRange::make(base + 100, 1) }, false);
    EXPECT_EQ(rejected(rig, RejectReason::AlreadyBallooned), 2u);
    EXPECT_EQ(rejected(rig, RejectReason::OverlapsBallooned), 1u);
    EXPECT_EQ(rig.status().ballooned.raw(), 512u);
    EXPECT_EQ(rig.discard.discarded.total().raw(), 512u);
    EXPECT_EQ(rig.discard.calls.size(), 1u);
}

TEST(DmHostile, PagesBeyondTheRequestAreRefused)
{
    Outstanding rig { 1000 };
    auto base = GUEST_FREE.start.raw();
    rig.respond({ DmPageRange::make(base, 512), DmPageRange::make(base + 512, 512), DmPageRange::make(base + 2048, 488) });
    EXPECT_EQ(rejected(rig, RejectReason::ExceedsRequest), 1u);
    EXPECT_EQ(rig.status().ballooned.raw(), 1000u);
    EXPECT_EQ(rig.discard.discarded.total().raw(), 1000u);
    EXPECT_EQ(rig.status().operation->state, OperationState::Done);
}

TEST(DmHostile, RangeCountThatDoesNotFitTheMessageIsMalformed)
{
    Outstanding rig;
    auto message = dm_balloon_response(9, false, std::array { DmPageRange::make(GUEST_FREE.start.raw(), 512) });
    std::uint32_t lying = (100u << 1);
    std::memcpy(message.data() + 12, &lying, 4);
    rig.guest.send(message);
    EXPECT_EQ(rig.status().counters.malformed_packets, 1u);
    EXPECT_TRUE(rig.discard.calls.empty());
    EXPECT_EQ(rig.engine.state(), State::BalloonWaitReply);
}

TEST(DmHostile, EmptyFinalBalloonResponseEndsTheOperationShort)
{
    Outstanding rig { 4096 };
    rig.respond({});
    auto status = rig.status();
    EXPECT_EQ(status.state, State::Idle);
    EXPECT_EQ(status.operation->state, OperationState::Failed);
    EXPECT_TRUE(rig.discard.calls.empty());
}

TEST(DmHostile, BalloonedRangesFromHotAddedMemoryAreAcceptedOnlyAfterTheAdd)
{
    DmRig rig;
    rig.connect();
    rig.target(rig.boot() + PageCount { BLOCK_PAGES });
    rig.guest.options.ignore_balloon = true;
    rig.target(rig.boot());
    std::array ranges { DmPageRange::make(WINDOW.start.raw(), 512), DmPageRange::make(WINDOW.start.raw() + BLOCK_PAGES, 512) };
    rig.guest.send(dm_balloon_response(4, false, ranges));
    EXPECT_EQ(rig.status().ballooned.raw(), 512u);
    EXPECT_EQ(rejected(rig, RejectReason::OutsideRam), 1u);
    EXPECT_TRUE(rig.discard.discarded.contains_all(pages(WINDOW.start.raw(), 512)));
    EXPECT_FALSE(rig.discard.discarded.intersects(pages(WINDOW.start.raw() + BLOCK_PAGES, 512)));
}

TEST(DmHostile, SetTargetRejectsZeroAndMoreThanMax)
{
    DmRig rig;
    EXPECT_FALSE(rig.engine.set_target(PageCount { 0 }));
    EXPECT_FALSE(rig.engine.set_target(rig.map.max_pages() + PageCount { 1 }));
    EXPECT_TRUE(rig.engine.set_target(rig.map.max_pages()));
    EXPECT_FALSE(rig.engine.set_target_mib(~0ull));
}

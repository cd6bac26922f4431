// SPDX-License-Identifier: MIT
#include "devices/hv_balloon/protocol.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "tests/support/dm_rig.hpp"

using namespace vmm;
using namespace vmm::hv_balloon;
using namespace vmm::test;

namespace {
std::vector<std::uint8_t> raw(std::vector<std::byte> const& bytes)
{
    std::vector<std::uint8_t> out(bytes.size());
    std::memcpy(out.data(), bytes.data(), bytes.size());
    return out;
}
std::uint16_t type_of(std::vector<std::byte> const& message) { return std::uint16_t { wire_from<DmHeader>(message).type }; }
} // namespace

TEST(DmProtocol, PageRangePacksFortyBitStartAndTwentyFourBitCount)
{
    auto range = DmPageRange::make(0x123456, 0x8000);
    EXPECT_EQ(range.raw, 0x0080000000123456ull);
    EXPECT_EQ(range.start(), 0x123456u);
    EXPECT_EQ(range.count(), 0x8000u);
    EXPECT_EQ(DmPageRange { ~0ull }.count(), 0xFFFFFFu);
    EXPECT_EQ(DmPageRange { ~0ull }.start(), 0xFFFFFFFFFFull);
}

TEST(DmProtocol, BalloonResponseRangeCountIsBitsOneToThirtyOne)
{
    std::array ranges { DmPageRange::make(512, 512), DmPageRange::make(1024, 512), DmPageRange::make(7, 1) };
    auto message = dm_balloon_response(9, true, ranges);
    // Linux layout: hdr {7, 40, 9}, reserved, (3 << 1) | 1, ranges.
    auto bytes = raw(message);
    std::vector<std::uint8_t> head(bytes.begin(), bytes.begin() + 16);
    EXPECT_EQ(head, (std::vector<std::uint8_t> { 7, 0, 40, 0, 9, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0 }));
    auto parsed = wire_from<DmBalloonResponse>(message);
    EXPECT_TRUE(parsed.more_pages());
    EXPECT_EQ(parsed.range_count(), 3u);
}

TEST(DmProtocol, HostMessagesHaveLinuxByteLayouts)
{
    DmRig rig;
    rig.engine.on_open(rig.port);
    rig.engine.on_packet(dm_version_request(1, DYNMEM_PROTOCOL_VERSION_3, false));
    ASSERT_EQ(rig.port.sent.size(), 1u);
    // VERSION_RESPONSE: type 2, size 16, trans_id, is_accepted = 1.
    auto version = raw(rig.port.sent.front());
    EXPECT_EQ(std::vector<std::uint8_t>(version.begin(), version.begin() + 4), (std::vector<std::uint8_t> { 2, 0, 16, 0 }));
    EXPECT_EQ(std::vector<std::uint8_t>(version.begin() + 8, version.end()), (std::vector<std::uint8_t> { 1, 0, 0, 0, 0, 0, 0, 0 }));
    rig.port.sent.clear();
    rig.engine.on_packet(dm_caps_report(2, 0x1F));
    ASSERT_EQ(rig.port.sent.size(), 2u);
    EXPECT_EQ(type_of(rig.port.sent[0]), 4);
    EXPECT_EQ(rig.port.sent[0].size(), 16u);
    // INFO_MESSAGE: 32 bytes, info_size 16, type 0 (MAX_PAGE_CNT), data_size 8, max pages.
    auto info = wire_from<DmInfoMaxPageCount>(rig.port.sent[1]);
    EXPECT_EQ(std::uint16_t { info.hdr.type }, 12);
    EXPECT_EQ(std::uint16_t { info.hdr.size }, 32);
    EXPECT_EQ(std::uint32_t { info.info_size }, 16u);
    EXPECT_EQ(std::uint32_t { info.info_type }, 0u);
    EXPECT_EQ(std::uint32_t { info.data_size }, 8u);
    EXPECT_EQ(std::uint64_t { info.max_page_count }, rig.map.max_pages().raw());
    rig.port.sent.clear();

    ASSERT_TRUE(rig.engine.set_target(rig.boot() - mem::PageCount { 1000 }));
    ASSERT_EQ(rig.port.sent.size(), 1u);
    auto balloon = raw(rig.port.sent.front());
    ASSERT_EQ(balloon.size(), 16u);
    EXPECT_EQ(std::vector<std::uint8_t>(balloon.begin(), balloon.begin() + 4), (std::vector<std::uint8_t> { 6, 0, 16, 0 }));
    EXPECT_EQ(std::vector<std::uint8_t>(balloon.begin() + 8, balloon.end()), (std::vector<std::uint8_t> { 0xE8, 0x03, 0, 0, 0, 0, 0, 0 }));
}

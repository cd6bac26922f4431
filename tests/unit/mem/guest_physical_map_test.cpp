// SPDX-License-Identifier: MIT
#include "mem/guest_physical_map.hpp"

#include <gtest/gtest.h>

#include <array>

using namespace vmm;
using namespace vmm::mem;

namespace {

PageRange range(std::uint64_t start, std::uint64_t count) { return { Gpn { start }, PageCount { count } }; }

constexpr std::uint64_t GIB_PAGES = (1ull << 30) / PAGE_SIZE;
// PC-like layout: low RAM, RAM up to 3 GiB, MMIO hole [3 GiB, 4 GiB), RAM [4 GiB, 6 GiB), and a
// hot-add window [8 GiB, 16 GiB).
constexpr std::array BOOT_RAM { PageRange { Gpn { 0 }, PageCount { 160 } },
    PageRange { Gpn { 256 }, PageCount { 3 * GIB_PAGES - 256 } },
    PageRange { Gpn { 4 * GIB_PAGES }, PageCount { 2 * GIB_PAGES } } };
constexpr PageRange WINDOW { Gpn { 8 * GIB_PAGES }, PageCount { 8 * GIB_PAGES } };

GuestPhysicalMap make_map() { return GuestPhysicalMap::create(BOOT_RAM, WINDOW).value(); }

} // namespace

TEST(GuestPhysicalMap, CreateRejectsOverlappingBootRamAndWindowOnRam)
{
    std::array overlapping { range(0, 100), range(50, 100) };
    EXPECT_EQ(GuestPhysicalMap::create(overlapping, std::nullopt).error().code(), Errc::Overlap);
    EXPECT_EQ(GuestPhysicalMap::create(BOOT_RAM, range(5 * GIB_PAGES, 10)).error().code(), Errc::Overlap);
    std::array empty { range(0, 0) };
    EXPECT_FALSE(GuestPhysicalMap::create(empty, std::nullopt));
}

TEST(GuestPhysicalMap, SizesAreBootPlusHotAddedMinusBallooned)
{
    auto map = make_map();
    PageCount boot { 160 + 3 * GIB_PAGES - 256 + 2 * GIB_PAGES };
    EXPECT_EQ(map.boot_pages(), boot);
    EXPECT_EQ(map.max_pages(), boot + WINDOW.count);
    ASSERT_TRUE(map.add_hot_added(range(WINDOW.start.raw(), 32768)));
    ASSERT_TRUE(map.balloon(300, 512));
    EXPECT_EQ(map.current_pages(), boot + PageCount { 32768 } - PageCount { 512 });
}

TEST(GuestPhysicalMap, BalloonRefusesRangesOutsideRamAndCountsThemByReason)
{
    auto map = make_map();
    // The legacy hole [640 KiB, 1 MiB), the MMIO hole, straddling RAM end, unplugged window space.
    EXPECT_EQ(map.balloon(160, 1).error(), RejectReason::OutsideRam);
    EXPECT_EQ(map.balloon(3 * GIB_PAGES, 512).error(), RejectReason::OutsideRam);
    EXPECT_EQ(map.balloon(3 * GIB_PAGES - 1, 2).error(), RejectReason::OutsideRam);
    EXPECT_EQ(map.balloon(WINDOW.start.raw(), 512).error(), RejectReason::OutsideRam);
    EXPECT_EQ(map.balloon(6 * GIB_PAGES - 10, 11).error(), RejectReason::OutsideRam);
    EXPECT_EQ(map.rejected(RejectReason::OutsideRam), 5u);
    EXPECT_EQ(map.ballooned_pages().raw(), 0u);
}

TEST(GuestPhysicalMap, BalloonRefusesMalformedRanges)
{
    auto map = make_map();
    EXPECT_EQ(map.balloon(300, 0).error(), RejectReason::Malformed);
    EXPECT_EQ(map.balloon(~0ull - 5, 10).error(), RejectReason::Malformed); // start + count wraps
    EXPECT_EQ(map.balloon(MAX_GPN - 1, 2).error(), RejectReason::Malformed);
    EXPECT_EQ(map.balloon(0, 0xFFFFFF).error(), RejectReason::OutsideRam); // huge count over the hole
    EXPECT_EQ(map.rejected(RejectReason::Malformed), 3u);
}

TEST(GuestPhysicalMap, BalloonRefusesDoubleReportsAndOverlapsWithoutChangingState)
{
    auto map = make_map();
    ASSERT_TRUE(map.balloon(1024, 512));
    EXPECT_EQ(map.balloon(1024, 512).error(), RejectReason::AlreadyBallooned);
    EXPECT_EQ(map.balloon(1100, 1).error(), RejectReason::AlreadyBallooned);
    EXPECT_EQ(map.balloon(1500, 100).error(), RejectReason::OverlapsBallooned);
    EXPECT_EQ(map.balloon(1000, 30).error(), RejectReason::OverlapsBallooned);
    EXPECT_EQ(map.ballooned_pages().raw(), 512u);
    ASSERT_TRUE(map.balloon(1536, 1)); // adjacent is fine
    EXPECT_EQ(map.ballooned().node_count(), 1u);
}

TEST(GuestPhysicalMap, BalloonRefusesMoreThanTheRequestAllows)
{
    auto map = make_map();
    EXPECT_EQ(map.balloon(1024, 512, PageCount { 511 }).error(), RejectReason::ExceedsRequest);
    EXPECT_TRUE(map.balloon(1024, 512, PageCount { 512 }));
    EXPECT_EQ(map.rejected(RejectReason::ExceedsRequest), 1u);
}

TEST(GuestPhysicalMap, HotAddedMemoryBecomesBalloonableOnlyOnceAdded)
{
    auto map = make_map();
    auto chunk = range(WINDOW.start.raw(), 32768);
    EXPECT_FALSE(map.balloon(chunk.start.raw(), 512));
    ASSERT_TRUE(map.add_hot_added(chunk));
    EXPECT_TRUE(map.balloon(chunk.start.raw(), 512));
    EXPECT_EQ(map.add_hot_added(chunk).error().code(), Errc::Overlap);
    EXPECT_EQ(map.add_hot_added(range(WINDOW.end().raw() - 1, 2)).error().code(), Errc::OutOfRange);
    // Ballooning across the boundary between added and not-yet-added window space is refused.
    EXPECT_EQ(map.balloon(chunk.end().raw() - 1, 2).error(), RejectReason::OutsideRam);
}

TEST(GuestPhysicalMap, UnballoonTakesLowestRangesAndRestoreOrForgetGivesThemBack)
{
    auto map = make_map();
    ASSERT_TRUE(map.balloon(5000, 100));
    ASSERT_TRUE(map.balloon(1000, 100));
    EXPECT_EQ(map.take_ballooned(PageCount { 60 }), range(1000, 60));
    map.restore_ballooned(range(1000, 60));
    EXPECT_EQ(map.ballooned_pages().raw(), 200u);
    EXPECT_EQ(map.forget_ballooned().raw(), 200u);
    EXPECT_EQ(map.ballooned_pages().raw(), 0u);
    EXPECT_EQ(map.current_pages(), map.boot_pages());
}

TEST(GuestPhysicalMap, ReleaseHotAddedDropsAddedAndBalloonedWindowPages)
{
    auto map = make_map();
    ASSERT_TRUE(map.add_hot_added(range(WINDOW.start.raw(), 65536)));
    ASSERT_TRUE(map.balloon(WINDOW.start.raw() + 100, 512));
    ASSERT_TRUE(map.balloon(2000, 8));
    auto released = map.release_hot_added();
    EXPECT_EQ(released.total().raw(), 65536u);
    EXPECT_EQ(map.hot_added_pages().raw(), 0u);
    EXPECT_EQ(map.ballooned_pages().raw(), 8u);
    EXPECT_FALSE(map.balloon(WINDOW.start.raw(), 1));
}

TEST(GuestPhysicalMap, FirmwareReservedPagesCountAsBootRamButCannotBeBallooned)
{
    std::array low { range(0, 256) };
    std::array reserved { range(0x9F, 0x100 - 0x9F) };
    auto map = GuestPhysicalMap::create(low, std::nullopt, reserved).value();
    EXPECT_EQ(map.boot_pages(), PageCount { 256 });
    EXPECT_EQ(map.balloon(0x9F, 1).error(), RejectReason::OutsideRam);
    EXPECT_EQ(map.balloon(0x90, 0x10).error(), RejectReason::OutsideRam) << "straddling into the reserved pages";
    EXPECT_EQ(map.check_balloon(0xFF, 1).error(), RejectReason::OutsideRam);
    EXPECT_EQ(map.rejected(RejectReason::OutsideRam), 2u);
    EXPECT_EQ(map.ballooned_pages(), PageCount { 0 });
    EXPECT_EQ(map.balloon(0x8F, 0x10).value(), range(0x8F, 0x10)) << "the pages below are the guest's";

    std::array outside { range(300, 1) };
    EXPECT_EQ(GuestPhysicalMap::create(low, std::nullopt, outside).error().code(), Errc::InvalidArgument);
}

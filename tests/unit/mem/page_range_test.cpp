// SPDX-License-Identifier: MIT
#include "mem/page_range.hpp"

#include <gtest/gtest.h>

#include <fmt/format.h>

using namespace vmm::mem;

namespace {
constexpr PageRange range(std::uint64_t start, std::uint64_t count) { return { Gpn { start }, PageCount { count } }; }
} // namespace

TEST(PageRange, FromGuestRejectsZeroCountAndEndsAboveMaxGpn)
{
    EXPECT_FALSE(PageRange::from_guest(5, 0));
    EXPECT_FALSE(PageRange::from_guest(MAX_GPN, 1));
    EXPECT_FALSE(PageRange::from_guest(MAX_GPN - 10, 11));
    EXPECT_FALSE(PageRange::from_guest(~0ull - 1, 4)); // start + count wraps
    EXPECT_FALSE(PageRange::from_guest(1, ~0ull));
    ASSERT_TRUE(PageRange::from_guest(MAX_GPN - 10, 10));
    EXPECT_EQ(PageRange::from_guest(MAX_GPN - 10, 10)->end(), Gpn { MAX_GPN });
    EXPECT_EQ(*PageRange::from_guest(0, 1), range(0, 1));
}

TEST(PageRange, IntersectPartsAndAdjacencyAreHalfOpen)
{
    constexpr auto a = range(100, 50);
    static_assert(a.end() == Gpn { 150 });
    static_assert(a.contains(Gpn { 100 }) && a.contains(Gpn { 149 }) && !a.contains(Gpn { 150 }));
    static_assert(a.contains(range(120, 30)) && !a.contains(range(120, 31)));
    static_assert(a.intersect(range(150, 10)).empty());
    static_assert(a.intersect(range(90, 20)) == range(100, 10));
    static_assert(a.part_before(range(120, 10)) == range(100, 20));
    static_assert(a.part_after(range(120, 10)) == range(130, 20));
    static_assert(a.part_before(range(50, 10)).empty());
    static_assert(a.part_after(range(200, 10)).empty());
    static_assert(a.adjacent_to(range(150, 1)) && a.adjacent_to(range(90, 10)) && !a.adjacent_to(range(151, 1)));
    static_assert(!a.overlaps(range(150, 1)) && a.overlaps(range(149, 1)));
    EXPECT_EQ(fmt::format("{}", a), "[gpn 0x64, +50)");
}

// SPDX-License-Identifier: MIT
#include "vmm/machine.hpp" // Header under test first (plan_memory).

#include <gtest/gtest.h>

#include "firmware/layout.hpp"

namespace vmm {
namespace {

TEST(MemoryLayout, SmallGuestGetsTheHotAddWindowRightAfterRam)
{
    auto layout = plan_memory(512, 2048);
    EXPECT_EQ(layout.ram_bytes, 512 * MIB);
    EXPECT_EQ(layout.ram_end_gpa, 512 * MIB);
    EXPECT_EQ(layout.hot_add_base_gpa, 512 * MIB);
    EXPECT_EQ(layout.hot_add_size_bytes, 1536 * MIB);
}

TEST(MemoryLayout, WindowStartsOnA128MiBBoundary)
{
    auto layout = plan_memory(500, 1524);
    EXPECT_EQ(layout.hot_add_base_gpa, 512 * MIB);
    EXPECT_EQ(layout.hot_add_base_gpa % HOT_ADD_CHUNK_BYTES, 0u);
    EXPECT_EQ(layout.hot_add_size_bytes, 1024 * MIB); // Whole chunks only.
}

TEST(MemoryLayout, WindowThatWouldCrossTheMmioHoleMovesAbove4GiB)
{
    auto layout = plan_memory(2048, 4096);
    EXPECT_EQ(layout.hot_add_base_gpa, firmware::MMIO_HOLE_END);
    EXPECT_EQ(layout.hot_add_size_bytes, 2048 * MIB);
}

TEST(MemoryLayout, RamCrossingTheHoleContinuesAbove4GiBAndTheWindowFollows)
{
    auto layout = plan_memory(4096, 8192);
    EXPECT_EQ(layout.ram_end_gpa, 5 * GIB);
    EXPECT_EQ(layout.hot_add_base_gpa, 5 * GIB);
    EXPECT_EQ(layout.hot_add_size_bytes, 4 * GIB);
}

TEST(MemoryLayout, NoMaximumAboveRamMeansNoWindow)
{
    auto layout = plan_memory(512, 512);
    EXPECT_EQ(layout.hot_add_size_bytes, 0u);
    EXPECT_EQ(plan_memory(512, 600).hot_add_size_bytes, 0u); // Less than one chunk.
}

} // namespace
} // namespace vmm

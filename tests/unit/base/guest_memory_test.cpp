// SPDX-License-Identifier: MIT
#include "mem/guest_memory.hpp"

#include <gtest/gtest.h>

#include <array>
#include <vector>

using namespace vmm;
using namespace vmm::mem;

namespace {

struct TwoRegions {
    // [0x0, 0x2000) and [0x3000, 0x5000); a hole at [0x2000, 0x3000).
    std::vector<std::byte> low = std::vector<std::byte>(0x2000);
    std::vector<std::byte> high = std::vector<std::byte>(0x2000);
    GuestMemory memory = GuestMemory::from_regions({ { Gpa { 0 }, low }, { Gpa { 0x3000 }, high } }).value();
};

} // namespace

TEST(GuestMemory, ReadWriteInsideRegion)
{
    TwoRegions fixture;
    std::uint32_t value = 0xdeadbeef;
    ASSERT_TRUE(fixture.memory.write_obj(Gpa { 0x100 }, value));
    EXPECT_EQ(fixture.memory.read_obj<std::uint32_t>(Gpa { 0x100 }).value(), 0xdeadbeefu);
}

TEST(GuestMemory, AccessIntoHoleFailsWithNotMapped)
{
    TwoRegions fixture;
    std::array<std::byte, 16> buffer {};
    auto result = fixture.memory.read(Gpa { 0x1ff8 }, buffer);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), Errc::NotMapped);
    EXPECT_EQ(result.error().detail(), 0x2000u);
    EXPECT_FALSE(fixture.memory.is_ram(Gpa { 0x1000 }, 0x1001));
    EXPECT_TRUE(fixture.memory.is_ram(Gpa { 0x3000 }, 0x2000));
}

TEST(GuestMemory, AccessPastEndAndWrappingFail)
{
    TwoRegions fixture;
    std::array<std::byte, 8> buffer {};
    EXPECT_FALSE(fixture.memory.read(Gpa { 0x4ffc }, buffer));
    EXPECT_FALSE(fixture.memory.read(Gpa { ~std::uint64_t { 0 } - 2 }, buffer));
    EXPECT_FALSE(fixture.memory.contiguous(Gpa { 0x1000 }, 0x2000));
}

TEST(GuestMemory, OverlappingRegionsAreRefused)
{
    std::vector<std::byte> a(0x2000), b(0x2000);
    EXPECT_FALSE(GuestMemory::from_regions({ { Gpa { 0 }, a }, { Gpa { 0x1000 }, b } }));
}

TEST(GuestMemory, UnpluggedChunksAreNotAccessible)
{
    std::vector<std::byte> ram(0x1000), window(0x4000);
    auto memory = GuestMemory::from_regions({ { Gpa { 0 }, ram }, { Gpa { 0x10000 }, window } }).value();
    ASSERT_TRUE(memory.make_pluggable(1, 0x2000));
    EXPECT_FALSE(memory.is_ram(Gpa { 0x10000 }, 8));
    ASSERT_TRUE(memory.set_plugged(Gpa { 0x10000 }, 0x1000, true));
    EXPECT_TRUE(memory.is_ram(Gpa { 0x10000 }, 0x2000));
    EXPECT_FALSE(memory.is_ram(Gpa { 0x10000 }, 0x2001));
    ASSERT_TRUE(memory.set_plugged(Gpa { 0x10000 }, 0x1000, false));
    EXPECT_FALSE(memory.is_ram(Gpa { 0x10000 }, 8));
}

TEST(GuestMemory, AccessToGpaZeroOutsideRamSaysGpaZero)
{
    std::vector<std::byte> high(0x1000);
    auto memory = GuestMemory::from_regions({ { Gpa { 0x1000 }, high } }).value();
    std::array<std::byte, 8> buffer {};
    auto result = memory.read(Gpa { 0 }, buffer);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().message(), "guest memory access: not mapped (detail 0x0)");
}

// SPDX-License-Identifier: MIT
#include "firmware/e820.hpp"

#include <gtest/gtest.h>

using namespace vmm;
using namespace vmm::firmware;

TEST(E820, SmallGuestHasLowRamReservedBiosAreaAndRamFromOneMiB)
{
    auto map = build_e820(256 * MIB);
    std::vector<E820Entry> expected {
        { 0, 0x9FC00, E820_RAM },
        { 0x9FC00, 0x100000 - 0x9FC00, E820_RESERVED },
        { 0x100000, 256 * MIB - 0x100000, E820_RAM },
    };
    EXPECT_EQ(map, expected);
}

TEST(E820, RamAboveThreeGiBIsRelocatedAboveFourGiB)
{
    auto map = build_e820(5 * GIB);
    ASSERT_EQ(map.size(), 4u);
    EXPECT_EQ(map[2], (E820Entry { 0x100000, 3 * GIB - 0x100000, E820_RAM }));
    EXPECT_EQ(map[3], (E820Entry { 4 * GIB, 2 * GIB, E820_RAM }));
}

TEST(E820, ExactlyThreeGiBHasNoHighRange)
{
    auto map = build_e820(3 * GIB);
    ASSERT_EQ(map.size(), 3u);
    EXPECT_EQ(map.back().addr + map.back().size, 3 * GIB);
}

TEST(E820, RamRangesBackLowMemoryAndTheRelocatedPart)
{
    EXPECT_EQ(ram_ranges(64 * MIB), (std::vector<RamRange> { { mem::Gpa { 0 }, 64 * MIB } }));
    EXPECT_EQ(ram_ranges(4 * GIB),
        (std::vector<RamRange> { { mem::Gpa { 0 }, 3 * GIB }, { mem::Gpa { 4 * GIB }, 1 * GIB } }));
}

TEST(E820, RamSizeCheckRefusesTinyUnalignedAndHugeSizes)
{
    EXPECT_TRUE(check_ram_bytes(64 * MIB));
    EXPECT_EQ(check_ram_bytes(1 * MIB).error().code(), Errc::Config);
    EXPECT_EQ(check_ram_bytes(64 * MIB + 1).error().code(), Errc::Config);
    EXPECT_EQ(check_ram_bytes(u64 { 1 } << 53).error().code(), Errc::Config);
}

TEST(E820, EntriesAreSortedAndDisjoint)
{
    for (u64 ram : { 2 * MIB, 128 * MIB, 3 * GIB + 4096, 64 * GIB }) {
        auto map = build_e820(ram);
        for (std::size_t i = 1; i < map.size(); ++i)
            EXPECT_LE(map[i - 1].addr + map[i - 1].size, map[i].addr) << ram;
    }
}

TEST(E820, FirmwareReservedPagesAreTheBackedPagesE820DoesNotCallRam)
{
    // RAM ends at 0x9FC00 inside page 0x9F, so that page is reserved whole, up to 1 MiB.
    std::vector<mem::PageRange> const expected { { mem::Gpn { 0x9F }, mem::PageCount { 0x100 - 0x9F } } };
    EXPECT_EQ(firmware_reserved_pages(512 * MIB), expected);
    EXPECT_EQ(firmware_reserved_pages(8 * GIB), expected) << "nothing reserved above the MMIO hole";
}

TEST(E820, PciReservesTheEcamInTheHoleAndStaysSorted)
{
    for (u64 ram : { 256 * MIB, 5 * GIB }) {
        auto const map = build_e820(ram, true);
        auto const ecam = std::ranges::find(map, E820Entry { PCI_ECAM_BASE, PCI_ECAM_SIZE, E820_RESERVED });
        ASSERT_NE(ecam, map.end()) << ram;
        for (std::size_t i = 1; i < map.size(); ++i)
            EXPECT_LE(map[i - 1].addr + map[i - 1].size, map[i].addr) << "entries overlap or are unsorted";
        for (auto const& entry : map)
            if (entry.type == E820_RAM)
                EXPECT_TRUE(entry.addr + entry.size <= MMIO_HOLE_START || entry.addr >= MMIO_HOLE_END);
    }
    EXPECT_EQ(build_e820(256 * MIB, false).size(), 3u) << "no PCI: the map is unchanged";
}

// SPDX-License-Identifier: MIT
// Host memory use: the smaps parser on crafted text, then both figures on real memory (a memfd
// BootRam and a reserved window with a plugged, touched chunk, read from /proc/self/smaps).
#include "vmm/host_memory_use.hpp"

#include <sys/mman.h>

#include <cstring>

#include <gtest/gtest.h>

#include "base/types.hpp"

using namespace vmm;

namespace {

constexpr char const* SMAPS = "00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/microvmm\n"
                              "Size:                328 kB\n"
                              "Rss:                 300 kB\n"
                              "7f0000000000-7f0000200000 rw-p 00000000 00:00 0\n"
                              "Size:               2048 kB\n"
                              "Rss:                1024 kB\n"
                              "Pss:                1024 kB\n"
                              "7f0000200000-7f0000400000 ---p 00000000 00:00 0\n"
                              "Rss:                   0 kB\n"
                              "7f0000400000-7f0000600000 rw-p 00000000 00:00 0\n"
                              "Rss:                  12 kB\n"
                              "VmFlags: rd wr mr mw me nr\n"
                              "7fff00000000-7fff00021000 rw-p 00000000 00:00 0 [stack]\n"
                              "Rss:                 132 kB\n";

} // namespace

TEST(HostMemoryUse, SumsTheRssOfMappingsInsideTheRange)
{
    EXPECT_EQ(smaps_resident_bytes(SMAPS, 0x7f0000000000, 0x7f0000600000), (1024 + 12) * KIB);
    EXPECT_EQ(smaps_resident_bytes(SMAPS, 0x7f0000200000, 0x7f0000400000), 0u);
    // A mapping overlapping the range's edge counts whole.
    EXPECT_EQ(smaps_resident_bytes(SMAPS, 0x7f00001ff000, 0x7f0000201000), 1024 * KIB);
    EXPECT_EQ(smaps_resident_bytes(SMAPS, 0x10000000, 0x20000000), 0u);
    EXPECT_EQ(smaps_resident_bytes("", 0, ~std::uintptr_t { 0 }), 0u);
}

TEST(HostMemoryUse, SkipsLinesItDoesNotUnderstand)
{
    constexpr char const* garbled = "zz-7f rw-p\n"
                                    "Rss: 5 kB\n" // Belongs to no parsed mapping: skipped.
                                    "1000-2000 rw-p 0 0:0 0\n"
                                    "Rss: lots kB\n"
                                    "Rss: 7 MB\n"
                                    "Rss:   8 kB\n"
                                    "2000-1000 rw-p\n" // start >= end: not a header.
                                    "Rss:   16 kB";     // No final newline; still mapping 1000-2000.
    EXPECT_EQ(smaps_resident_bytes(garbled, 0x1000, 0x2000), 24 * KIB);
}

TEST(HostMemoryUse, ReadsTheMemfdAndTheWindowOfThisProcess)
{
    std::vector<mem::BootRam::Range> ranges { { mem::Gpa { 0 }, 16 * MIB } };
    auto ram = mem::BootRam::create(ranges).value();
    auto window = Mapping::reserve(256 * MIB).value();
    auto use = read_host_memory_use(ram, window).value();
    EXPECT_EQ(use.boot_ram_resident_bytes, 0u);
    EXPECT_EQ(use.hot_add_resident_bytes, 0u);

    std::memset(ram.regions().front().host.data(), 0x11, 3 * MIB);
    // Plug 128 MiB in the middle, as OnDemandMemslots does, and let the "guest" touch 5 MiB.
    ASSERT_TRUE(window.protect(64 * MIB, 128 * MIB, PROT_READ | PROT_WRITE));
    std::memset(window.base() + 64 * MIB, 0x22, 5 * MIB);
    use = read_host_memory_use(ram, window).value();
    EXPECT_EQ(use.boot_ram_resident_bytes, 3 * MIB);
    EXPECT_EQ(use.hot_add_resident_bytes, 5 * MIB);

    // Ballooned (punched) and unplugged (DONTNEED) memory is no longer counted.
    ASSERT_TRUE(ram.discard(mem::Gpa { MIB }, 2 * MIB));
    ASSERT_TRUE(window.advise(64 * MIB, 4 * MIB, MADV_DONTNEED));
    use = read_host_memory_use(ram, window).value();
    EXPECT_EQ(use.boot_ram_resident_bytes, MIB);
    EXPECT_EQ(use.hot_add_resident_bytes, MIB);

    EXPECT_EQ(read_host_memory_use(ram, Mapping {}).value().hot_add_resident_bytes, 0u);
}

// SPDX-License-Identifier: MIT
#include "firmware/kernel_image.hpp"

#include <gtest/gtest.h>

#include <random>

#include "firmware/layout.hpp"
#include "synthetic_images.hpp"
#include "test_memory.hpp"

using namespace vmm;
using namespace vmm::firmware;
using firmware::test::SyntheticBzImage;

namespace {

Result<KernelImage> load(SyntheticBzImage const& bz, firmware::test::FakeGuestMemory const& ram = firmware::test::guest_ram())
{
    return load_kernel(ram.memory(), bz.build());
}

} // namespace

TEST(BzImageLoader, ValidImageLoadsAtOneMiBWithEntryAt0x100200)
{
    SyntheticBzImage bz;
    auto ram = firmware::test::guest_ram();
    auto kernel = load_kernel(ram.memory(), bz.build()).value();
    EXPECT_EQ(kernel.kind, KernelImage::Kind::BzImage);
    EXPECT_EQ(kernel.entry, 0x100200u);
    EXPECT_EQ(kernel.load_start, 0x100000u);
    // The decompressor runs at pref_address (16 MiB) and needs init_size there.
    EXPECT_EQ(kernel.load_end, 0x100'0000u + bz.init_size);
    EXPECT_EQ(ram.read_bytes(0x100000, bz.payload.size()), bz.payload);
    ASSERT_TRUE(kernel.setup_header);
    EXPECT_EQ(kernel.setup_header->header, SETUP_HEADER_MAGIC);
    EXPECT_EQ(kernel.setup_header->version, 0x020F);
    EXPECT_EQ(kernel.initrd_addr_max(), 0x7FFF'FFFFu);
    EXPECT_EQ(kernel.cmdline_limit_bytes(), 2048u);
}

TEST(BzImageLoader, SetupSectsZeroMeansFour)
{
    SyntheticBzImage bz;
    bz.setup_sects = 0;
    auto ram = firmware::test::guest_ram();
    ASSERT_TRUE(load_kernel(ram.memory(), bz.build()));
    EXPECT_EQ(ram.read_bytes(0x100000, bz.payload.size()), bz.payload);
}

TEST(BzImageLoader, BootProtocolOlderThan212IsRefused)
{
    SyntheticBzImage bz;
    bz.version = 0x020B;
    auto result = load(bz);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), Errc::Unsupported);
}

TEST(BzImageLoader, ImageWithout64BitEntryIsRefused)
{
    SyntheticBzImage bz;
    bz.xloadflags = 0;
    auto result = load(bz);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), Errc::Unsupported);
}

TEST(BzImageLoader, ImageNotLoadableHighIsRefused)
{
    SyntheticBzImage bz;
    bz.loadflags = 0;
    EXPECT_EQ(load(bz).error().code(), Errc::Unsupported);
}

TEST(BzImageLoader, MissingPayloadOrTruncatedHeaderIsRefused)
{
    SyntheticBzImage bz;
    bz.payload.clear();
    EXPECT_EQ(load(bz).error().code(), Errc::InvalidArgument);

    auto image = SyntheticBzImage {}.build();
    image.resize(0x210); // Magic present, header cut short.
    auto ram = firmware::test::guest_ram();
    EXPECT_EQ(load_kernel(ram.memory(), image).error().code(), Errc::InvalidArgument);
}

TEST(BzImageLoader, KernelNeedingMoreRamThanTheGuestHasIsRefused)
{
    SyntheticBzImage bz;
    bz.init_size = 60 * 1024 * 1024; // 16 MiB + 60 MiB > 64 MiB of guest RAM.
    EXPECT_EQ(load(bz).error().code(), Errc::NotMapped);
    bz.init_size = 0x1000;
    bz.pref_address = ~u64 { 0 } - 0x10; // Overflows with init_size.
    EXPECT_EQ(load(bz).error().code(), Errc::InvalidArgument);
}

TEST(BzImageLoader, HeaderBytesPastTheHeaderEndAreNotCopied)
{
    SyntheticBzImage bz;
    auto image = bz.build();
    // Shorten the header to end at 0x264 (jump offset 0x62): kernel_info_offset is then setup
    // code, and must read as 0 in the copied header.
    image[0x201] = std::byte { 0x62 };
    firmware::test::put(image, 0x268, u32 { 0xDEAD'BEEF });
    auto ram = firmware::test::guest_ram();
    auto kernel = load_kernel(ram.memory(), image).value();
    EXPECT_EQ(kernel.setup_header->kernel_info_offset, 0u);
    EXPECT_EQ(kernel.setup_header->init_size, bz.init_size);
}

TEST(BzImageLoader, CmdlineLimitComesFromTheHeader)
{
    SyntheticBzImage bz;
    bz.cmdline_size = 255;
    auto ram = firmware::test::guest_ram();
    EXPECT_EQ(load_kernel(ram.memory(), bz.build()).value().cmdline_limit_bytes(), 256u);
}

TEST(BzImageLoader, RandomCorruptionOfTheSetupHeaderNeverCrashesOrWritesOutsideRam)
{
    auto image = SyntheticBzImage {}.build();
    std::mt19937 random { 11 };
    auto ram = firmware::test::guest_ram();
    int loaded = 0;
    for (int round = 0; round < 2000; ++round) {
        auto copy = image;
        for (int flips = 0; flips < 3; ++flips)
            copy[SETUP_HEADER_OFFSET + random() % sizeof(SetupHeader)] = std::byte { static_cast<u8>(random()) };
        if (random() % 8 == 0)
            copy.resize(random() % copy.size());
        if (auto kernel = load_kernel(ram.memory(), copy)) {
            ++loaded;
            // Whatever was accepted must describe RAM the guest really has.
            EXPECT_TRUE(ram.memory().is_ram(mem::Gpa { kernel->load_start }, kernel->load_end - kernel->load_start));
        }
    }
    EXPECT_GT(loaded, 0) << "some corruptions hit fields the loader does not check";
}

// SPDX-License-Identifier: MIT
#include "vmm/guest_images.hpp" // Header under test first.

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/unit/firmware/synthetic_images.hpp"
#include "tests/unit/firmware/test_memory.hpp"

namespace vmm {
namespace {

constexpr u64 RAM = 64 * MIB;

class GuestImages : public ::testing::Test {
protected:
    void SetUp() override
    {
        m_dir = std::filesystem::temp_directory_path() / ("microvmm-guest-images-" + std::to_string(::getpid()));
        std::filesystem::create_directories(m_dir);
        firmware::test::SyntheticElf elf;
        elf.e_entry = 0x100'0000;
        elf.segments.push_back({ 0x100'0000, 0xFFFF'FFFF'8100'0000, std::vector<std::byte>(0x2000), 0x40'0000 });
        elf.pvh_entry = 0x100'0100;
        m_boot.kernel = m_dir / "vmlinux";
        write(m_boot.kernel, elf.build());
        m_boot.cmdline = "console=ttyS0";
    }
    void TearDown() override { std::filesystem::remove_all(m_dir); }

    static void write(std::filesystem::path const& path, std::vector<std::byte> const& bytes)
    {
        std::ofstream out { path, std::ios::binary };
        out.write(reinterpret_cast<char const*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        ASSERT_TRUE(out.good());
    }
    // A sparse file of `size` bytes: large initrds cost no disk.
    std::filesystem::path sparse_initrd(u64 size)
    {
        auto path = m_dir / "initrd.cpio";
        { std::ofstream create { path }; }
        std::filesystem::resize_file(path, size);
        return path;
    }
    Result<firmware::BootCpuState> load() { return load_guest_images(m_ram.memory(), m_boot, { RAM, 1, true }); }

    std::filesystem::path m_dir;
    BootSection m_boot;
    vmm::test::FakeGuestMemory m_ram = firmware::test::guest_ram(RAM);
};

TEST_F(GuestImages, InitrdThatFitsIsLoaded)
{
    m_boot.initrd = sparse_initrd(1 * MIB);
    auto state = load();
    ASSERT_TRUE(state) << state.error().message();
}

TEST_F(GuestImages, InitrdTooLargeNamesTheFileItsSizeAndTheRam)
{
    u64 const size = 70 * MIB;
    m_boot.initrd = sparse_initrd(size);
    auto state = load();
    ASSERT_FALSE(state);
    std::string const message = state.error().message();
    EXPECT_EQ(state.error().code(), Errc::OutOfRange);
    EXPECT_NE(message.find("boot.initrd " + m_boot.initrd->string()), std::string::npos) << message;
    EXPECT_NE(message.find(std::to_string(size) + " bytes"), std::string::npos) << message;
    EXPECT_NE(message.find("64 MiB of RAM"), std::string::npos) << message;
}

TEST_F(GuestImages, KernelThatDoesNotFitNamesTheKernelAndTheRam)
{
    firmware::test::SyntheticElf elf;
    elf.e_entry = 0x100'0000;
    // Loads at 1 MiB but claims 100 MiB of memory: past the 64 MiB of RAM.
    elf.segments.push_back({ 0x100'0000, 0xFFFF'FFFF'8100'0000, std::vector<std::byte>(0x1000), 100 * MIB });
    elf.pvh_entry = 0x100'0100;
    write(m_boot.kernel, elf.build());
    auto state = load();
    ASSERT_FALSE(state);
    std::string const message = state.error().message();
    EXPECT_NE(message.find("loading boot.kernel " + m_boot.kernel.string()), std::string::npos) << message;
    EXPECT_NE(message.find("64 MiB of RAM"), std::string::npos) << message;
}

TEST_F(GuestImages, MissingInitrdNamesTheConfigKeyAndPath)
{
    m_boot.initrd = m_dir / "missing.cpio";
    auto state = load();
    ASSERT_FALSE(state);
    EXPECT_EQ(state.error().message(), "boot.initrd: cannot open " + m_boot.initrd->string());
}

} // namespace
} // namespace vmm

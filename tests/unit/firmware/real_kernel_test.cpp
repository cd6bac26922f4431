// SPDX-License-Identifier: MIT
// Loads the real test-guest kernel (build/guest/vmlinux and bzImage, built separately) when
// it exists; skips with a message otherwise. MICROVMM_GUEST_DIR overrides the directory.
#include "firmware/kernel_image.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>

#include "firmware/boot_info.hpp"
#include "firmware/layout.hpp"
#include "test_memory.hpp"

using namespace vmm;
using namespace vmm::firmware;

namespace {

constexpr u64 RAM = 256 * MIB;
// __START_KERNEL_map (arch/x86/include/asm/page_64_types.h): kernel virtual = physical + this.
constexpr u64 START_KERNEL_MAP = 0xFFFF'FFFF'8000'0000;

std::filesystem::path guest_dir()
{
    if (char const* dir = std::getenv("MICROVMM_GUEST_DIR"))
        return dir;
    return std::filesystem::path { MICROVMM_SOURCE_ROOT } / "build" / "guest";
}

std::optional<std::vector<std::byte>> read_file(std::filesystem::path const& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return std::nullopt;
    std::vector<char> chars { std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>() };
    std::vector<std::byte> bytes(chars.size());
    std::memcpy(bytes.data(), chars.data(), chars.size());
    return bytes;
}

// Address of `symbol` in System.map ("ffffffff81000250 t pvh_start_xen").
std::optional<u64> symbol_address(std::filesystem::path const& map, std::string_view symbol)
{
    std::ifstream in(map);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string address, type, name;
        if (fields >> address >> type >> name && name == symbol)
            return std::stoull(address, nullptr, 16);
    }
    return std::nullopt;
}

} // namespace

TEST(RealKernel, VmlinuxHasPvhEntryAtPvhStartXen)
{
    auto image = read_file(guest_dir() / "vmlinux");
    if (!image)
        GTEST_SKIP() << "no " << (guest_dir() / "vmlinux") << " (build the test guest first)";
    auto ram = firmware::test::guest_ram(RAM);
    auto kernel = load_kernel(ram.memory(), *image);
    ASSERT_TRUE(kernel) << kernel.error().message();
    EXPECT_EQ(kernel->kind, KernelImage::Kind::ElfPvh);
    EXPECT_GE(kernel->load_start, 0x100'0000u); // LOAD_PHYSICAL_ADDR.
    if (auto pvh_start_xen = symbol_address(guest_dir() / "System.map", "pvh_start_xen"))
        EXPECT_EQ(kernel->entry, *pvh_start_xen - START_KERNEL_MAP);
    else
        std::cout << "[ INFO ] no System.map: PVH entry not compared with pvh_start_xen\n";

    auto cpu = write_boot_info(ram.memory(), *kernel, { .cmdline = "console=ttyS0", .initrd = {}, .ram_bytes = RAM, .rsdp_gpa = ACPI_RSDP_GPA });
    ASSERT_TRUE(cpu) << cpu.error().message();
    EXPECT_EQ(cpu->rip, kernel->entry);
}

TEST(RealKernel, BzImageLoadsWithItsSetupHeader)
{
    auto image = read_file(guest_dir() / "bzImage");
    if (!image)
        GTEST_SKIP() << "no " << (guest_dir() / "bzImage") << " (build the test guest first)";
    auto ram = firmware::test::guest_ram(RAM);
    auto kernel = load_kernel(ram.memory(), *image);
    ASSERT_TRUE(kernel) << kernel.error().message();
    EXPECT_EQ(kernel->kind, KernelImage::Kind::BzImage);
    EXPECT_EQ(kernel->entry, 0x100200u);
    ASSERT_TRUE(kernel->setup_header);
    EXPECT_GE(kernel->setup_header->version, 0x020C);
    auto cpu = write_boot_info(ram.memory(), *kernel, { .cmdline = "console=ttyS0", .initrd = {}, .ram_bytes = RAM, .rsdp_gpa = ACPI_RSDP_GPA });
    ASSERT_TRUE(cpu) << cpu.error().message();
}

// SPDX-License-Identifier: MIT
#include "firmware/boot_info.hpp"

#include <gtest/gtest.h>

#include <string>

#include "firmware/boot_params.hpp"
#include "firmware/cpu_setup.hpp"
#include "firmware/e820.hpp"
#include "firmware/layout.hpp"
#include "firmware/start_info.hpp"
#include "synthetic_images.hpp"
#include "test_memory.hpp"

using namespace vmm;
using namespace vmm::firmware;

namespace {

constexpr u64 RAM = 64 * MIB;
constexpr u64 RSDP = 0xE0000;

KernelImage load(firmware::test::FakeGuestMemory const& ram, bool pvh)
{
    firmware::test::SyntheticElf elf;
    elf.e_entry = 0x100'0000;
    elf.segments.push_back({ 0x100'0000, 0xFFFF'FFFF'8100'0000, std::vector<std::byte>(0x2000), 0x40'0000 });
    if (pvh)
        elf.pvh_entry = 0x100'0100;
    return load_kernel(ram.memory(), elf.build()).value();
}

std::string read_cstring(firmware::test::FakeGuestMemory const& ram, u64 gpa, std::size_t max)
{
    auto bytes = ram.read_bytes(gpa, max);
    std::string out;
    for (std::byte b : bytes) {
        if (b == std::byte { 0 })
            return out;
        out.push_back(static_cast<char>(b));
    }
    ADD_FAILURE() << "no NUL within " << max << " bytes";
    return out;
}

std::vector<std::byte> initrd_bytes(std::size_t size)
{
    std::vector<std::byte> out(size);
    for (std::size_t i = 0; i < size; ++i)
        out[i] = std::byte { static_cast<u8>(i * 13 + 5) };
    return out;
}

} // namespace

TEST(PvhBoot, StartInfoHasMagicVersionCmdlineRsdpMemmapAndInitrdModule)
{
    auto ram = firmware::test::guest_ram(RAM);
    auto kernel = load(ram, true);
    auto initrd = initrd_bytes(10'000);
    SpanSource initrd_source { initrd };
    auto cpu = write_boot_info(ram.memory(), kernel, { .cmdline = "console=ttyS0 quiet", .initrd = &initrd_source, .ram_bytes = RAM, .rsdp_gpa = RSDP }).value();

    auto info = ram.read<HvmStartInfo>(PVH_START_INFO_GPA);
    EXPECT_EQ(info.magic, 0x336EC578u);
    EXPECT_EQ(info.version, 1u);
    EXPECT_EQ(info.flags, 0u);
    EXPECT_EQ(info.rsdp_paddr, RSDP);
    EXPECT_EQ(info.reserved, 0u);
    EXPECT_EQ(read_cstring(ram, info.cmdline_paddr, 64), "console=ttyS0 quiet");

    auto e820 = build_e820(RAM);
    ASSERT_EQ(info.memmap_entries, e820.size());
    for (std::size_t i = 0; i < e820.size(); ++i) {
        auto entry = ram.read<HvmMemmapTableEntry>(info.memmap_paddr + i * sizeof(HvmMemmapTableEntry));
        EXPECT_EQ(entry.addr, e820[i].addr);
        EXPECT_EQ(entry.size, e820[i].size);
        EXPECT_EQ(entry.type, e820[i].type);
        EXPECT_EQ(entry.reserved, 0u);
    }

    ASSERT_EQ(info.nr_modules, 1u);
    auto module = ram.read<HvmModlistEntry>(info.modlist_paddr);
    EXPECT_EQ(module.size, initrd.size());
    EXPECT_EQ(module.paddr % 4096, 0u);
    EXPECT_GE(module.paddr, kernel.load_end);
    EXPECT_LE(module.paddr + module.size, RAM);
    EXPECT_EQ(ram.read_bytes(module.paddr, initrd.size()), initrd);

    EXPECT_EQ(cpu.rbx, PVH_START_INFO_GPA);
    EXPECT_EQ(cpu.rip, 0x100'0100u);
}

TEST(PvhBoot, NoInitrdMeansNoModules)
{
    auto ram = firmware::test::guest_ram(RAM);
    auto kernel = load(ram, true);
    ASSERT_TRUE(write_boot_info(ram.memory(), kernel, { .cmdline = "", .initrd = {}, .ram_bytes = RAM, .rsdp_gpa = RSDP }));
    auto info = ram.read<HvmStartInfo>(PVH_START_INFO_GPA);
    EXPECT_EQ(info.nr_modules, 0u);
    EXPECT_EQ(info.modlist_paddr, 0u);
    EXPECT_EQ(read_cstring(ram, info.cmdline_paddr, 4), "");
}

TEST(PvhBoot, CpuStateIsFlat32BitProtectedModeWithPagingOff)
{
    auto ram = firmware::test::guest_ram(RAM);
    auto kernel = load(ram, true);
    auto cpu = write_boot_info(ram.memory(), kernel, { .cmdline = "x", .initrd = {}, .ram_bytes = RAM, .rsdp_gpa = 0 }).value();
    EXPECT_EQ(cpu.cr0 & X86_CR0_PE, X86_CR0_PE);
    EXPECT_EQ(cpu.cr0 & X86_CR0_PG, 0u);
    EXPECT_EQ(cpu.cr4, 0u);
    EXPECT_EQ(cpu.efer, 0u);
    EXPECT_EQ(cpu.rflags, 0x2u);
    EXPECT_EQ(cpu.cs.base, 0u);
    EXPECT_EQ(cpu.cs.limit, 0xFFFF'FFFFu);
    EXPECT_EQ(cpu.cs.db, 1);
    EXPECT_EQ(cpu.cs.l, 0);
    EXPECT_EQ(cpu.cs.type, 0xB);
    EXPECT_EQ(cpu.cs.selector, BOOT_CS32_SELECTOR);
    for (auto const& data : { cpu.ds, cpu.es, cpu.ss }) {
        EXPECT_EQ(data.base, 0u);
        EXPECT_EQ(data.limit, 0xFFFF'FFFFu);
        EXPECT_EQ(data.db, 1);
        EXPECT_EQ(data.type, 0x3);
        EXPECT_EQ(data.s, 1);
        EXPECT_EQ(data.present, 1);
    }
}

TEST(LinuxBoot, ZeroPageHasE820CmdlinePointerInitrdRsdpAndLoaderType)
{
    auto ram = firmware::test::guest_ram(RAM);
    auto kernel = load(ram, false);
    auto initrd = initrd_bytes(5000);
    SpanSource initrd_source { initrd };
    auto cpu = write_boot_info(ram.memory(), kernel, { .cmdline = "root=/dev/ram0", .initrd = &initrd_source, .ram_bytes = RAM, .rsdp_gpa = RSDP }).value();

    auto params = ram.read<BootParams>(ZERO_PAGE_GPA);
    auto e820 = build_e820(RAM);
    ASSERT_EQ(params.e820_entries, e820.size());
    for (std::size_t i = 0; i < e820.size(); ++i) {
        BootE820Entry entry = params.e820_table[i];
        EXPECT_EQ(entry.addr, e820[i].addr);
        EXPECT_EQ(entry.size, e820[i].size);
        EXPECT_EQ(entry.type, e820[i].type);
    }
    EXPECT_EQ(params.hdr.cmd_line_ptr, CMDLINE_GPA);
    EXPECT_EQ(read_cstring(ram, params.hdr.cmd_line_ptr, 64), "root=/dev/ram0");
    EXPECT_EQ(params.hdr.type_of_loader, 0xFF);
    EXPECT_EQ(params.hdr.boot_flag, 0xAA55);
    EXPECT_EQ(params.hdr.header, SETUP_HEADER_MAGIC);
    EXPECT_NE(params.hdr.version, 0) << "a zero version makes Linux copy the zero page twice";
    EXPECT_EQ(params.acpi_rsdp_addr, RSDP);
    EXPECT_EQ(params.hdr.ramdisk_size, initrd.size());
    EXPECT_EQ(ram.read_bytes(params.hdr.ramdisk_image, initrd.size()), initrd);
    // ElfLinux64 has no header limit: the old default ceiling applies.
    EXPECT_LE(params.hdr.ramdisk_image + initrd.size(), DEFAULT_INITRD_ADDR_MAX + 1);
    EXPECT_EQ(cpu.rsi, ZERO_PAGE_GPA);
}

TEST(LinuxBoot, BzImageZeroPageKeepsTheImageSetupHeader)
{
    auto ram = firmware::test::guest_ram(RAM);
    firmware::test::SyntheticBzImage bz;
    bz.initrd_addr_max = 0x2FF'FFFF; // 48 MiB - 1: below the 64 MiB of RAM.
    auto kernel = load_kernel(ram.memory(), bz.build()).value();
    auto initrd = initrd_bytes(4096 * 3);
    SpanSource initrd_source { initrd };
    ASSERT_TRUE(write_boot_info(ram.memory(), kernel, { .cmdline = "quiet", .initrd = &initrd_source, .ram_bytes = RAM, .rsdp_gpa = RSDP }));
    auto params = ram.read<BootParams>(ZERO_PAGE_GPA);
    EXPECT_EQ(params.hdr.version, bz.version);
    EXPECT_EQ(params.hdr.init_size, bz.init_size);
    EXPECT_EQ(params.hdr.xloadflags, bz.xloadflags);
    EXPECT_EQ(params.hdr.type_of_loader, 0xFF);
    EXPECT_EQ(params.hdr.cmd_line_ptr, CMDLINE_GPA);
    // Highest page-aligned spot under initrd_addr_max + 1.
    EXPECT_EQ(params.hdr.ramdisk_image, 0x300'0000u - initrd.size());
}

TEST(LinuxBoot, CpuStateIsLongModeWithIdentityMapAndBootSelectors)
{
    auto ram = firmware::test::guest_ram(RAM);
    auto kernel = load(ram, false);
    auto cpu = write_boot_info(ram.memory(), kernel, { .cmdline = "", .initrd = {}, .ram_bytes = RAM, .rsdp_gpa = 0 }).value();
    EXPECT_EQ(cpu.rip, 0x100'0000u);
    EXPECT_EQ(cpu.cr0 & (X86_CR0_PE | X86_CR0_PG), X86_CR0_PE | X86_CR0_PG);
    EXPECT_EQ(cpu.cr4 & X86_CR4_PAE, X86_CR4_PAE);
    EXPECT_EQ(cpu.efer, X86_EFER_LME | X86_EFER_LMA);
    EXPECT_EQ(cpu.cr3, BOOT_PML4_GPA);
    EXPECT_EQ(cpu.cs.selector, 0x10);
    EXPECT_EQ(cpu.cs.l, 1);
    EXPECT_EQ(cpu.cs.db, 0);
    EXPECT_EQ(cpu.ds.selector, 0x18);
    EXPECT_EQ(cpu.ss.selector, 0x18);

    // Walk the page tables for a few addresses: each must map 1:1 with a 2 MiB page.
    for (u64 address : { u64 { 0 }, u64 { 0x100'0000 }, u64 { 0xBFE0'0000 }, u64 { 0xFEE0'0000 } }) {
        u64 pml4e = ram.read<u64>(cpu.cr3 + ((address >> 39) & 511) * 8);
        ASSERT_EQ(pml4e & 1, 1u) << address;
        u64 pdpte = ram.read<u64>((pml4e & ~u64 { 0xFFF }) + ((address >> 30) & 511) * 8);
        ASSERT_EQ(pdpte & 1, 1u) << address;
        u64 pde = ram.read<u64>((pdpte & ~u64 { 0xFFF }) + ((address >> 21) & 511) * 8);
        EXPECT_EQ(pde & 0x83, 0x83u) << address;
        EXPECT_EQ(pde & ~u64 { 0x1F'FFFF }, address & ~u64 { 0x1F'FFFF }) << address;
    }
}

TEST(BootGdt, DescriptorsInMemoryMatchTheSegmentStateHandedToKvm)
{
    auto ram = firmware::test::guest_ram(RAM);
    auto kernel = load(ram, false);
    auto cpu = write_boot_info(ram.memory(), kernel, { .cmdline = "", .initrd = {}, .ram_bytes = RAM, .rsdp_gpa = 0 }).value();
    EXPECT_EQ(cpu.gdt_base, BOOT_GDT_GPA);
    EXPECT_EQ(cpu.gdt_limit, BOOT_GDT_ENTRIES * 8 - 1);
    for (auto const& segment : { cpu.cs, cpu.ds, cpu.tr }) {
        u64 descriptor = ram.read<u64>(cpu.gdt_base + segment.selector);
        EXPECT_EQ(segment_from_descriptor(descriptor, segment.selector), segment) << segment.selector;
    }
    // The well-known encodings (Linux GDT_ENTRY(0xa09b, 0, 0xfffff) etc.).
    EXPECT_EQ(ram.read<u64>(BOOT_GDT_GPA + 0x08), 0x00CF'9B00'0000'FFFFu);
    EXPECT_EQ(ram.read<u64>(BOOT_GDT_GPA + 0x10), 0x00AF'9B00'0000'FFFFu);
    EXPECT_EQ(ram.read<u64>(BOOT_GDT_GPA + 0x18), 0x00CF'9300'0000'FFFFu);
    EXPECT_EQ(cpu.tr.type, 0xB);
    EXPECT_EQ(cpu.tr.limit, 0x67u);
}

TEST(BootInfo, CmdlineLongerThanTheLimitIsRefused)
{
    auto ram = firmware::test::guest_ram(RAM);
    auto kernel = load(ram, true);
    std::string fits(2047, 'a');
    EXPECT_TRUE(write_boot_info(ram.memory(), kernel, { .cmdline = fits, .initrd = {}, .ram_bytes = RAM, .rsdp_gpa = 0 }));
    std::string too_long(2048, 'a');
    auto result = write_boot_info(ram.memory(), kernel, { .cmdline = too_long, .initrd = {}, .ram_bytes = RAM, .rsdp_gpa = 0 });
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), Errc::InvalidArgument);
}

TEST(BootInfo, BzImageCmdlineLimitComesFromItsHeader)
{
    auto ram = firmware::test::guest_ram(RAM);
    firmware::test::SyntheticBzImage bz;
    bz.cmdline_size = 10;
    auto kernel = load_kernel(ram.memory(), bz.build()).value();
    EXPECT_TRUE(write_boot_info(ram.memory(), kernel, { .cmdline = "0123456789", .initrd = {}, .ram_bytes = RAM, .rsdp_gpa = 0 }));
    EXPECT_FALSE(write_boot_info(ram.memory(), kernel, { .cmdline = "0123456789A", .initrd = {}, .ram_bytes = RAM, .rsdp_gpa = 0 }));
}

TEST(BootInfo, CmdlineWithEmbeddedNulIsRefused)
{
    auto ram = firmware::test::guest_ram(RAM);
    auto kernel = load(ram, true);
    std::string_view with_nul { "a\0b", 3 };
    EXPECT_EQ(write_boot_info(ram.memory(), kernel, { .cmdline = with_nul, .initrd = {}, .ram_bytes = RAM, .rsdp_gpa = 0 }).error().code(),
        Errc::InvalidArgument);
}

TEST(BootInfo, InitrdThatDoesNotFitAboveTheKernelIsRefused)
{
    auto ram = firmware::test::guest_ram(RAM);
    auto kernel = load(ram, true); // Occupies up to 20 MiB.
    auto placement = place_initrd(kernel, RAM, 45 * MIB);
    ASSERT_FALSE(placement);
    EXPECT_EQ(placement.error().code(), Errc::OutOfRange);
    EXPECT_TRUE(place_initrd(kernel, RAM, 44 * MIB));
    EXPECT_FALSE(place_initrd(kernel, RAM, ~u64 { 0 }));
}

TEST(BootInfo, InitrdStaysBelowTheMmioHoleInLargeGuests)
{
    KernelImage pvh { KernelImage::Kind::ElfPvh, 0x100'0000, 0x100'0000, 0x200'0000, std::nullopt };
    auto placement = place_initrd(pvh, 8 * GIB, 100 * MIB).value();
    EXPECT_EQ(placement.gpa + placement.size_bytes, MMIO_HOLE_START);
    KernelImage linux64 { KernelImage::Kind::ElfLinux64, 0x100'0000, 0x100'0000, 0x200'0000, std::nullopt };
    EXPECT_LE(place_initrd(linux64, 8 * GIB, 4096).value().gpa, DEFAULT_INITRD_ADDR_MAX);
}

TEST(PvhBoot, GuestAboveThreeGiBGetsRelocatedRamInItsMemmapAndInitrdBelowTheHole)
{
    constexpr u64 BIG_RAM = 5 * GIB; // Mapped lazily: only touched pages cost memory.
    auto ram = firmware::test::guest_ram(BIG_RAM);
    auto kernel = load(ram, true);
    auto initrd = initrd_bytes(8192);
    SpanSource initrd_source { initrd };
    ASSERT_TRUE(write_boot_info(ram.memory(), kernel, { .cmdline = "", .initrd = &initrd_source, .ram_bytes = BIG_RAM, .rsdp_gpa = RSDP }));
    auto info = ram.read<HvmStartInfo>(PVH_START_INFO_GPA);
    ASSERT_EQ(info.memmap_entries, 4u);
    auto high = ram.read<HvmMemmapTableEntry>(info.memmap_paddr + 3 * sizeof(HvmMemmapTableEntry));
    EXPECT_EQ(high.addr, 4 * GIB);
    EXPECT_EQ(high.size, 2 * GIB);
    EXPECT_EQ(high.type, E820_RAM);
    auto module = ram.read<HvmModlistEntry>(info.modlist_paddr);
    EXPECT_EQ(module.paddr + module.size, MMIO_HOLE_START);
    EXPECT_EQ(ram.read_bytes(module.paddr, initrd.size()), initrd);
}

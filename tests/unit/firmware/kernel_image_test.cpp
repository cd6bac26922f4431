// SPDX-License-Identifier: MIT
#include "firmware/kernel_image.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <random>

#include "base/read_only_file.hpp"
#include "firmware/layout.hpp"
#include "synthetic_images.hpp"
#include "test_memory.hpp"

using namespace vmm;
using namespace vmm::firmware;
using firmware::test::SyntheticElf;
using firmware::test::SyntheticSegment;

namespace {

constexpr u64 KERNEL_PADDR = 0x100'0000; // 16 MiB, where a vmlinux loads.
constexpr u64 KERNEL_VADDR = 0xFFFF'FFFF'8100'0000;

std::vector<std::byte> pattern(std::size_t size, u8 seed)
{
    std::vector<std::byte> out(size);
    for (std::size_t i = 0; i < size; ++i)
        out[i] = std::byte { static_cast<u8>(seed + i * 7) };
    return out;
}

SyntheticElf vmlinux_like()
{
    SyntheticElf elf;
    elf.e_entry = KERNEL_PADDR + 0x40; // phys_startup_64.
    elf.segments.push_back({ KERNEL_PADDR, KERNEL_VADDR, pattern(0x3000, 1), 0x3000 });
    elf.segments.push_back({ KERNEL_PADDR + 0x10'0000, KERNEL_VADDR + 0x10'0000, pattern(0x1000, 2), 0x5000 });
    return elf;
}

Errc load_error(std::vector<std::byte> const& image)
{
    auto ram = firmware::test::guest_ram();
    auto result = load_kernel(ram.memory(), image);
    EXPECT_FALSE(result) << "loaded an image that should have been refused";
    return result ? Errc::Busy : result.error().code();
}

} // namespace

TEST(ElfLoader, PvhNoteSelectsPvhEntryAndSegmentsLandAtPaddr)
{
    auto elf = vmlinux_like();
    elf.pvh_entry = KERNEL_PADDR + 0x1000;
    auto ram = firmware::test::guest_ram();
    auto kernel = load_kernel(ram.memory(), elf.build()).value();
    EXPECT_EQ(kernel.kind, KernelImage::Kind::ElfPvh);
    EXPECT_EQ(kernel.entry, KERNEL_PADDR + 0x1000);
    EXPECT_EQ(kernel.load_start, KERNEL_PADDR);
    EXPECT_EQ(kernel.load_end, KERNEL_PADDR + 0x10'5000);
    EXPECT_FALSE(kernel.setup_header);
    EXPECT_EQ(ram.read_bytes(KERNEL_PADDR, 0x3000), pattern(0x3000, 1));
    EXPECT_EQ(ram.read_bytes(KERNEL_PADDR + 0x10'0000, 0x1000), pattern(0x1000, 2));
}

TEST(ElfLoader, BssTailIsZeroedEvenOverOldContents)
{
    auto elf = vmlinux_like();
    auto ram = firmware::test::guest_ram();
    ASSERT_TRUE(ram.memory().fill(mem::Gpa { KERNEL_PADDR + 0x10'1000 }, std::byte { 0xEE }, 0x4000));
    ASSERT_TRUE(load_kernel(ram.memory(), elf.build()));
    EXPECT_EQ(ram.read_bytes(KERNEL_PADDR + 0x10'1000, 0x4000), std::vector<std::byte>(0x4000));
}

TEST(ElfLoader, FourBytePvhDescriptorIsAcceptedToo)
{
    auto elf = vmlinux_like();
    elf.pvh_entry = KERNEL_PADDR + 0x20;
    elf.pvh_desc_bytes = 4;
    elf.other_note_first = false;
    auto ram = firmware::test::guest_ram();
    auto kernel = load_kernel(ram.memory(), elf.build()).value();
    EXPECT_EQ(kernel.kind, KernelImage::Kind::ElfPvh);
    EXPECT_EQ(kernel.entry, KERNEL_PADDR + 0x20);
}

TEST(ElfLoader, WithoutPvhNoteItIsA64BitProtocolKernelEnteredAtEEntry)
{
    auto ram = firmware::test::guest_ram();
    auto kernel = load_kernel(ram.memory(), vmlinux_like().build()).value();
    EXPECT_EQ(kernel.kind, KernelImage::Kind::ElfLinux64);
    EXPECT_EQ(kernel.entry, KERNEL_PADDR + 0x40);
}

TEST(ElfLoader, VirtualEEntryIsTranslatedThroughItsSegment)
{
    auto elf = vmlinux_like();
    elf.e_entry = KERNEL_VADDR + 0x10'0010;
    auto ram = firmware::test::guest_ram();
    EXPECT_EQ(load_kernel(ram.memory(), elf.build()).value().entry, KERNEL_PADDR + 0x10'0010);
}

TEST(ElfLoader, EntryOutsideEverySegmentIsRefused)
{
    auto elf = vmlinux_like();
    elf.e_entry = 0x5000'0000;
    EXPECT_EQ(load_error(elf.build()), Errc::InvalidArgument);
    elf.pvh_entry = KERNEL_PADDR + 0x10'2000; // In the bss, not in loaded file bytes.
    EXPECT_EQ(load_error(elf.build()), Errc::InvalidArgument);
}

TEST(ElfLoader, PvhEntryAbove4GiBOrOddDescriptorSizeIsRefused)
{
    auto elf = vmlinux_like();
    elf.pvh_entry = 0x1'0000'0000 + KERNEL_PADDR;
    EXPECT_EQ(load_error(elf.build()), Errc::InvalidArgument);
    elf.pvh_entry = KERNEL_PADDR;
    elf.pvh_desc_bytes = 2;
    EXPECT_EQ(load_error(elf.build()), Errc::InvalidArgument);
}

TEST(ElfLoader, TruncatedHeadersAreRefused)
{
    auto image = vmlinux_like().build();
    for (std::size_t size : { std::size_t { 4 }, std::size_t { 63 }, SyntheticElf::PHDR_OFFSET + 10 }) {
        std::vector<std::byte> truncated(image.begin(), image.begin() + static_cast<std::ptrdiff_t>(size));
        EXPECT_EQ(load_error(truncated), Errc::InvalidArgument) << size;
    }
}

TEST(ElfLoader, WrongClassMachineTypeOrPhentsizeIsRefused)
{
    auto image = vmlinux_like().build();
    auto with = [&](std::size_t offset, auto value) {
        auto copy = image;
        firmware::test::put(copy, offset, value);
        return copy;
    };
    EXPECT_EQ(load_error(with(elf::EI_CLASS, u8 { 1 })), Errc::InvalidArgument);            // ELF32.
    EXPECT_EQ(load_error(with(elf::EI_DATA, u8 { 2 })), Errc::InvalidArgument);             // Big-endian.
    EXPECT_EQ(load_error(with(18, u16 { 183 })), Errc::Unsupported);                        // EM_AARCH64.
    EXPECT_EQ(load_error(with(16, u16 { 3 })), Errc::Unsupported);                          // ET_DYN.
    EXPECT_EQ(load_error(with(54, u16 { 32 })), Errc::InvalidArgument);                     // e_phentsize.
    EXPECT_EQ(load_error(with(56, u16 { 0 })), Errc::InvalidArgument);                      // e_phnum.
    EXPECT_EQ(load_error(with(56, u16 { 0xFFFF })), Errc::InvalidArgument);                 // PN_XNUM.
}

TEST(ElfLoader, ProgramHeadersOutsideTheFileAreRefused)
{
    auto image = vmlinux_like().build();
    firmware::test::put(image, 32, u64 { image.size() - 8 }); // e_phoff near the end.
    EXPECT_EQ(load_error(image), Errc::InvalidArgument);
    firmware::test::put(image, 32, ~u64 { 0 } - 16); // e_phoff + size overflows.
    EXPECT_EQ(load_error(image), Errc::InvalidArgument);
}

namespace {

// Rewrites one field of the first program header.
std::vector<std::byte> with_phdr_field(std::size_t field_offset, u64 value)
{
    auto image = vmlinux_like().build();
    firmware::test::put(image, SyntheticElf::PHDR_OFFSET + field_offset, value);
    return image;
}

constexpr std::size_t P_OFFSET = 8, P_PADDR = 24, P_FILESZ = 32, P_MEMSZ = 40;

} // namespace

TEST(ElfLoader, SegmentDataOutsideTheFileOrOverflowingIsRefused)
{
    EXPECT_EQ(load_error(with_phdr_field(P_OFFSET, 0x10'0000)), Errc::InvalidArgument);
    EXPECT_EQ(load_error(with_phdr_field(P_OFFSET, ~u64 { 0 } - 0x100)), Errc::InvalidArgument);
    EXPECT_EQ(load_error(with_phdr_field(P_FILESZ, 0x4000)), Errc::InvalidArgument); // filesz > memsz.
}

TEST(ElfLoader, SegmentOutsideRamOrBelowOneMiBOrWrappingIsRefused)
{
    EXPECT_EQ(load_error(with_phdr_field(P_PADDR, 0x8000'0000)), Errc::NotMapped); // Past 64 MiB.
    EXPECT_EQ(load_error(with_phdr_field(P_PADDR, 0x3FF'F000)), Errc::NotMapped);  // Straddles the end.
    EXPECT_EQ(load_error(with_phdr_field(P_PADDR, 0x8000)), Errc::OutOfRange);     // Firmware area.
    EXPECT_EQ(load_error(with_phdr_field(P_PADDR, ~u64 { 0 } - 0x1000)), Errc::OutOfRange);
    EXPECT_EQ(load_error(with_phdr_field(P_MEMSZ, ~u64 { 0 })), Errc::OutOfRange);
}

TEST(ElfLoader, RefusedImageLeavesGuestMemoryUntouched)
{
    auto image = vmlinux_like().build();
    // Make the second segment invalid: the first must not be copied either.
    firmware::test::put(image, SyntheticElf::PHDR_OFFSET + sizeof(elf::Elf64Phdr) + P_PADDR, u64 { 0x8000'0000 });
    auto ram = firmware::test::guest_ram();
    ASSERT_FALSE(load_kernel(ram.memory(), image));
    EXPECT_EQ(ram.read_bytes(KERNEL_PADDR, 0x3000), std::vector<std::byte>(0x3000));
}

TEST(ElfLoader, TruncatedNoteIsRefused)
{
    auto elf = vmlinux_like();
    elf.pvh_entry = KERNEL_PADDR;
    auto image = elf.build();
    // The note segment's header is the third phdr. Give the first note (GNU) a descriptor
    // size that runs far past the segment.
    std::size_t note_phdr = SyntheticElf::PHDR_OFFSET + 2 * sizeof(elf::Elf64Phdr);
    elf::Elf64Phdr phdr;
    std::memcpy(&phdr, image.data() + note_phdr, sizeof(phdr));
    firmware::test::put(image, phdr.p_offset + 4, u32 { 0xFFFF'FFF0 });
    EXPECT_EQ(load_error(image), Errc::InvalidArgument);
}

TEST(KernelImage, GarbageIsNeitherElfNorBzImage)
{
    std::mt19937 random { 42 };
    for (std::size_t size : { 0, 1, 3, 100, 0x300, 70000 }) {
        std::vector<std::byte> garbage(size);
        for (auto& b : garbage)
            b = std::byte { static_cast<u8>(random()) };
        if (size >= 4)
            garbage[0] = std::byte { 0 }; // Not "\x7FELF".
        auto ram = firmware::test::guest_ram();
        auto result = load_kernel(ram.memory(), garbage);
        ASSERT_FALSE(result) << size;
        EXPECT_EQ(result.error().code(), Errc::InvalidArgument);
        EXPECT_EQ(result.error().what(), "kernel image: neither ELF nor bzImage");
    }
}

TEST(KernelImage, RandomCorruptionOfAValidElfNeverCrashesOrWritesOutsideRam)
{
    auto elf = vmlinux_like();
    elf.pvh_entry = KERNEL_PADDR;
    auto image = elf.build();
    std::mt19937 random { 7 };
    constexpr u64 FIRMWARE_AREA = 0x10'0000; // Below 1 MiB: e820, ACPI, boot info; never the kernel's.
    constexpr u64 KERNEL_AREA = 0x11'0000;   // Both segments of vmlinux_like(), bss included.
    std::vector<std::byte> const zeros(KERNEL_AREA);
    auto untouched = [&](std::span<std::byte const> view) { return std::memcmp(view.data(), zeros.data(), view.size()) == 0; };
    int loaded = 0;
    int refused = 0;
    auto ram = firmware::test::guest_ram(); // All zero; a successful load is wiped again below.
    for (int round = 0; round < 2000; ++round) {
        auto copy = image;
        std::size_t header_bytes = SyntheticElf::PHDR_OFFSET + 3 * sizeof(elf::Elf64Phdr);
        for (int flips = 0; flips < 4; ++flips)
            copy[random() % header_bytes] = std::byte { static_cast<u8>(random()) };
        auto result = load_kernel(ram.memory(), copy);
        // Never below 1 MiB, whatever the headers say.
        ASSERT_TRUE(untouched(ram.memory().contiguous(mem::Gpa { 0 }, FIRMWARE_AREA).value())) << "round " << round;
        if (result) {
            ++loaded;
            // What the loader reports lies in RAM above 1 MiB, so the VMM never jumps or places
            // boot data outside it.
            EXPECT_GE(result->load_start, FIRMWARE_AREA) << "round " << round;
            EXPECT_LE(result->load_start, result->load_end) << "round " << round;
            EXPECT_TRUE(ram.memory().is_ram(mem::Gpa { result->load_start }, result->load_end - result->load_start))
                << "round " << round;
            EXPECT_TRUE(ram.memory().is_ram(mem::Gpa { result->entry }, 1)) << "round " << round;
            ASSERT_TRUE(ram.memory().fill(mem::Gpa { result->load_start }, std::byte { 0 },
                result->load_end - result->load_start));
        } else {
            ++refused;
            // Validation happens before any write: a refused image left the kernel area alone.
            EXPECT_TRUE(untouched(ram.memory().contiguous(mem::Gpa { KERNEL_PADDR }, KERNEL_AREA).value()))
                << "round " << round;
        }
    }
    // Both outcomes were exercised (4 random header bytes often hit padding).
    EXPECT_GT(loaded, 0);
    EXPECT_GT(refused, 0);
}

// The VMM loads from a file (pread straight into guest RAM): same bytes as from memory, and a
// refused file leaves guest RAM untouched just the same.
TEST(ElfLoader, FromFileMatchesFromMemoryAndRefusalWritesNothing)
{
    auto elf = vmlinux_like();
    elf.pvh_entry = KERNEL_PADDR + 0x1000;
    auto image = elf.build();
    char name[] = "/tmp/microvmm-kernel-XXXXXX";
    int fd = ::mkstemp(name);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, image.data(), image.size()), static_cast<ssize_t>(image.size()));
    auto file = ReadOnlyFile::open(name).value();
    auto from_file = firmware::test::guest_ram();
    auto from_memory = firmware::test::guest_ram();
    auto a = load_kernel(from_file.memory(), file).value();
    auto b = load_kernel(from_memory.memory(), image).value();
    EXPECT_EQ(a.entry, b.entry);
    EXPECT_EQ(a.load_end, b.load_end);
    EXPECT_EQ(from_file.read_bytes(KERNEL_PADDR, 0x10'5000), from_memory.read_bytes(KERNEL_PADDR, 0x10'5000));

    // Truncate into the second segment's data: refused, and nothing of the first was copied.
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(image.size() - 0x800)), 0);
    auto truncated = ReadOnlyFile::open(name).value();
    auto untouched = firmware::test::guest_ram();
    EXPECT_FALSE(load_kernel(untouched.memory(), truncated));
    EXPECT_EQ(untouched.read_bytes(KERNEL_PADDR, 0x3000), std::vector<std::byte>(0x3000));
    ::close(fd);
    ::unlink(name);
}

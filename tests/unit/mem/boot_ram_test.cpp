// SPDX-License-Identifier: MIT
// BootRam on a real memfd: range validation, the GPA -> file offset translation across the
// MMIO hole, and that discard really frees host memory (st_blocks) and nothing else.
#include "mem/boot_ram.hpp"

#include <unistd.h>

#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "base/read_only_file.hpp"
#include "base/types.hpp"

using namespace vmm;
using namespace vmm::mem;

namespace {

// A PC-like layout in small: [0, 640 KiB), [1 MiB, 8 MiB), and 4 MiB above 4 GiB.
std::vector<BootRam::Range> pc_ranges()
{
    return { { Gpa { 0 }, 640 * KIB }, { Gpa { MIB }, 7 * MIB }, { Gpa { 4 * GIB }, 4 * MIB } };
}

std::byte* host_of(BootRam const& ram, std::uint64_t gpa)
{
    for (auto const& region : ram.regions())
        if (gpa >= region.start.raw() && gpa - region.start.raw() < region.host.size())
            return region.host.data() + (gpa - region.start.raw());
    return nullptr;
}

void fill(BootRam const& ram, std::uint64_t gpa, std::uint64_t bytes, std::uint8_t value)
{
    std::memset(host_of(ram, gpa), value, bytes);
}

bool all_equal(BootRam const& ram, std::uint64_t gpa, std::uint64_t bytes, std::uint8_t value)
{
    auto const* host = reinterpret_cast<std::uint8_t const*>(host_of(ram, gpa));
    for (std::uint64_t i = 0; i < bytes; ++i)
        if (host[i] != value)
            return false;
    return true;
}

// Every byte of pc_ranges(): 0xA1 low, 0xB2 middle, 0xC3 above 4 GiB.
void fill_pc(BootRam const& ram)
{
    fill(ram, 0, 640 * KIB, 0xA1);
    fill(ram, MIB, 7 * MIB, 0xB2);
    fill(ram, 4 * GIB, 4 * MIB, 0xC3);
}

} // namespace

TEST(BootRam, RefusesBadRangesNamingTheProblem)
{
    auto refused = [](std::vector<BootRam::Range> ranges) {
        auto ram = BootRam::create(ranges);
        EXPECT_FALSE(ram);
        return ram ? std::string {} : ram.error().message();
    };
    EXPECT_NE(refused({}).find("no ranges"), std::string::npos);
    EXPECT_NE(refused({ { Gpa { 0 }, 0 } }).find("empty"), std::string::npos);
    EXPECT_NE(refused({ { Gpa { 0x800 }, PAGE_SIZE } }).find("unaligned"), std::string::npos);
    EXPECT_NE(refused({ { Gpa { 0 }, PAGE_SIZE + 1 } }).find("unaligned"), std::string::npos);
    EXPECT_NE(refused({ { Gpa { ~0ull & ~(PAGE_SIZE - 1) }, 2 * PAGE_SIZE } }).find("overflowing"), std::string::npos);
    EXPECT_NE(refused({ { Gpa { 0 }, 2 * PAGE_SIZE }, { Gpa { PAGE_SIZE }, PAGE_SIZE } }).find("overlap"), std::string::npos);
    EXPECT_NE(refused({ { Gpa { MIB }, PAGE_SIZE }, { Gpa { 0 }, PAGE_SIZE } }).find("out of order"), std::string::npos);
}

TEST(BootRam, RegionsLieBackToBackInOneMapping)
{
    auto ram = BootRam::create(pc_ranges()).value();
    auto regions = ram.regions();
    ASSERT_EQ(regions.size(), 3u);
    EXPECT_EQ(ram.size_bytes(), 640 * KIB + 7 * MIB + 4 * MIB);
    EXPECT_EQ(regions[0].start, Gpa { 0 });
    EXPECT_EQ(regions[1].start, Gpa { MIB });
    EXPECT_EQ(regions[2].start, Gpa { 4 * GIB });
    EXPECT_EQ(regions[1].host.data(), regions[0].host.data() + 640 * KIB);
    EXPECT_EQ(regions[2].host.data(), regions[1].host.data() + 7 * MIB);
    EXPECT_EQ(regions[2].host.size(), 4 * MIB);
    EXPECT_EQ(ram.allocated_bytes().value(), 0u) << "nothing is allocated before the guest touches it";
}

TEST(BootRam, DiscardFreesExactlyTheNamedPagesInEveryRange)
{
    auto ram = BootRam::create(pc_ranges()).value();
    fill_pc(ram);
    std::uint64_t const full = ram.allocated_bytes().value();
    EXPECT_EQ(full, ram.size_bytes());

    // One MiB above the MMIO hole: file offset 640 KiB + 7 MiB + 1 MiB, not 4 GiB + 1 MiB.
    // (Counts come before reads: a read fault on a memfd hole allocates a zeroed page again,
    // shmem has no shared zero page, so the VMM never reads ballooned pages itself.)
    ASSERT_TRUE(ram.discard(Gpa { 4 * GIB + MIB }, MIB));
    // The last page of the middle range and the first of the low one.
    ASSERT_TRUE(ram.discard(Gpa { 8 * MIB - PAGE_SIZE }, PAGE_SIZE));
    ASSERT_TRUE(ram.discard(Gpa { 0 }, PAGE_SIZE));
    EXPECT_EQ(ram.allocated_bytes().value(), full - MIB - 2 * PAGE_SIZE);

    EXPECT_TRUE(all_equal(ram, 4 * GIB + MIB, MIB, 0));
    EXPECT_TRUE(all_equal(ram, 4 * GIB, MIB, 0xC3));
    EXPECT_TRUE(all_equal(ram, 4 * GIB + 2 * MIB, 2 * MIB, 0xC3));
    EXPECT_TRUE(all_equal(ram, MIB, 7 * MIB - PAGE_SIZE, 0xB2)) << "the rest of the middle range is untouched";
    EXPECT_TRUE(all_equal(ram, 8 * MIB - PAGE_SIZE, PAGE_SIZE, 0));
    EXPECT_TRUE(all_equal(ram, 8 * MIB - 2 * PAGE_SIZE, PAGE_SIZE, 0xB2));
    EXPECT_TRUE(all_equal(ram, PAGE_SIZE, 640 * KIB - PAGE_SIZE, 0xA1));
}

TEST(BootRam, RefusedDiscardsDiscardNothing)
{
    auto ram = BootRam::create(pc_ranges()).value();
    fill_pc(ram);
    std::uint64_t const full = ram.allocated_bytes().value();

    EXPECT_EQ(ram.discard(Gpa { MIB + 1 }, PAGE_SIZE).error().code(), Errc::InvalidArgument);
    EXPECT_EQ(ram.discard(Gpa { MIB }, PAGE_SIZE + 1).error().code(), Errc::InvalidArgument);
    // The hole between 640 KiB and 1 MiB, the MMIO hole, past the end.
    EXPECT_EQ(ram.discard(Gpa { 640 * KIB }, PAGE_SIZE).error().code(), Errc::NotMapped);
    EXPECT_EQ(ram.discard(Gpa { 3 * GIB }, PAGE_SIZE).error().code(), Errc::NotMapped);
    EXPECT_EQ(ram.discard(Gpa { 4 * GIB + 4 * MIB }, PAGE_SIZE).error().code(), Errc::NotMapped);
    // Crossing the end of a range, even into the next one in the file.
    EXPECT_EQ(ram.discard(Gpa { 640 * KIB - PAGE_SIZE }, 2 * PAGE_SIZE).error().code(), Errc::OutOfRange);
    EXPECT_EQ(ram.discard(Gpa { 8 * MIB - PAGE_SIZE }, 2 * PAGE_SIZE).error().code(), Errc::OutOfRange);
    EXPECT_EQ(ram.discard(Gpa { 4 * GIB }, ~0ull & ~(PAGE_SIZE - 1)).error().code(), Errc::OutOfRange);

    EXPECT_EQ(ram.allocated_bytes().value(), full);
    EXPECT_TRUE(all_equal(ram, 0, 640 * KIB, 0xA1));
    EXPECT_TRUE(all_equal(ram, MIB, 7 * MIB, 0xB2));
    EXPECT_TRUE(all_equal(ram, 4 * GIB, 4 * MIB, 0xC3));
}

TEST(BootRam, DiscardedPagesReadZeroAndAreUsableAgain)
{
    auto ram = BootRam::create(pc_ranges()).value();
    fill(ram, MIB, 7 * MIB, 0xB2);
    ASSERT_TRUE(ram.discard(Gpa { 2 * MIB }, 2 * MIB));
    EXPECT_EQ(ram.allocated_bytes().value(), 5 * MIB);
    EXPECT_TRUE(all_equal(ram, 2 * MIB, 2 * MIB, 0));
    fill(ram, 2 * MIB, 2 * MIB, 0xD4);
    EXPECT_TRUE(all_equal(ram, 2 * MIB, 2 * MIB, 0xD4));
    EXPECT_EQ(ram.allocated_bytes().value(), 7 * MIB);
}

// Kernel and initrd loading (GuestMemory::write_from) goes through the memfd at the range's file
// offset, not through the mapping: the regions name the file, and the destination is checked
// before anything moves.
namespace {

// Records what write_from asks of it; copies nothing itself through the file path.
class RecordingSource final : public ByteSource {
public:
    explicit RecordingSource(std::uint64_t size)
        : m_size(size)
    {
    }
    std::uint64_t size() const override { return m_size; }
    Result<void> read_at(std::uint64_t, std::span<std::byte> out) const override
    {
        reads += out.size();
        return {};
    }
    Result<bool> copy_to_file(std::uint64_t offset, std::uint64_t size, int fd, std::uint64_t fd_offset) const override
    {
        copies.push_back({ offset, size, fd, fd_offset });
        return true;
    }
    struct Copy {
        std::uint64_t offset, size;
        int fd;
        std::uint64_t fd_offset;
        bool operator==(Copy const&) const = default;
    };
    mutable std::vector<Copy> copies;
    mutable std::uint64_t reads = 0;

private:
    std::uint64_t m_size;
};

struct TempImage {
    std::string path;
    explicit TempImage(std::vector<std::uint8_t> const& bytes)
    {
        char name[] = "/tmp/microvmm-bootram-XXXXXX";
        int fd = ::mkstemp(name);
        EXPECT_GE(fd, 0);
        EXPECT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
        ::close(fd);
        path = name;
    }
    ~TempImage() { ::unlink(path.c_str()); }
};

} // namespace

TEST(BootRam, RegionsNameTheMemfdAndEachRangesOffsetInIt)
{
    auto ram = BootRam::create(pc_ranges()).value();
    auto const regions = ram.regions();
    ASSERT_EQ(regions.size(), 3u);
    EXPECT_EQ(regions[0].fd, ram.fd());
    EXPECT_EQ(regions[0].fd_offset, 0u);
    EXPECT_EQ(regions[1].fd_offset, 640 * KIB);
    EXPECT_EQ(regions[2].fd_offset, 640 * KIB + 7 * MIB);

    auto memory = GuestMemory::from_regions(regions).value();
    RecordingSource source { 64 * KIB };
    ASSERT_TRUE(memory.write_from(Gpa { 4 * GIB + 0x3000 }, source, 0x1000, 0x8000));
    ASSERT_EQ(source.copies.size(), 1u);
    EXPECT_EQ(source.copies[0], (RecordingSource::Copy { 0x1000, 0x8000, ram.fd(), 640 * KIB + 7 * MIB + 0x3000 }));
    EXPECT_EQ(source.reads, 0u);
    // A destination reaching into the MMIO-like hole after [1 MiB, 8 MiB): refused before any copy.
    auto refused = memory.write_from(Gpa { 8 * MIB - 0x1000 }, source, 0, 0x2000);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), Errc::NotMapped);
    EXPECT_EQ(source.copies.size(), 1u);
}

TEST(BootRam, FileBytesLandAtTheirGpaThroughTheMemfd)
{
    std::vector<std::uint8_t> bytes(3 * PAGE_SIZE + 123);
    for (std::size_t i = 0; i < bytes.size(); ++i)
        bytes[i] = static_cast<std::uint8_t>(i * 13 + 5);
    TempImage image { bytes };
    auto file = ReadOnlyFile::open(image.path).value();
    auto ram = BootRam::create(pc_ranges()).value();
    auto memory = GuestMemory::from_regions(ram.regions()).value();
    ASSERT_TRUE(memory.write_from(Gpa { 2 * MIB + 0x100 }, file, 7, bytes.size() - 7));
    EXPECT_EQ(std::memcmp(host_of(ram, 2 * MIB + 0x100), bytes.data() + 7, bytes.size() - 7), 0);
    EXPECT_TRUE(all_equal(ram, 2 * MIB, 0x100, 0));
    // Only the pages written to hold memory (no mapping was faulted around them).
    EXPECT_EQ(ram.allocated_bytes().value(), 4 * PAGE_SIZE);

    // The file shrinking under the copy is an error, never a short copy reported as done.
    ASSERT_EQ(::truncate(image.path.c_str(), PAGE_SIZE), 0);
    EXPECT_FALSE(memory.write_from(Gpa { 3 * MIB }, file, 0, 2 * PAGE_SIZE));
}

// An ELF kernel's bss: a large zero fill punches whole pages out of the memfd (nothing is
// allocated for them) and writes only the partial pages at either end.
TEST(BootRam, LargeZeroFillsPunchWholePagesAndWriteTheEdges)
{
    auto ram = BootRam::create(pc_ranges()).value();
    auto memory = GuestMemory::from_regions(ram.regions()).value();
    fill(ram, 2 * MIB, 40 * PAGE_SIZE, 0xEE); // Stale bytes under the fill.
    EXPECT_EQ(ram.allocated_bytes().value(), 40 * PAGE_SIZE);
    ASSERT_TRUE(memory.fill(Gpa { 2 * MIB + 0x10 }, std::byte { 0 }, 32 * PAGE_SIZE));
    EXPECT_EQ(ram.allocated_bytes().value(), 9 * PAGE_SIZE) << "31 whole pages punched out";
    EXPECT_EQ(host_of(ram, 2 * MIB + 0xF)[0], std::byte { 0xEE });
    EXPECT_TRUE(all_equal(ram, 2 * MIB + 0x10, 32 * PAGE_SIZE, 0));
    EXPECT_EQ(host_of(ram, 2 * MIB + 0x10 + 32 * PAGE_SIZE)[0], std::byte { 0xEE });
    auto fresh = BootRam::create(pc_ranges()).value();
    auto fresh_memory = GuestMemory::from_regions(fresh.regions()).value();
    ASSERT_TRUE(fresh_memory.fill(Gpa { 3 * MIB + 0x800 }, std::byte { 0 }, 64 * PAGE_SIZE));
    EXPECT_EQ(fresh.allocated_bytes().value(), 2 * PAGE_SIZE) << "only the two edge pages were written";
    // Small fills and other values write as before.
    ASSERT_TRUE(fresh_memory.fill(Gpa { 5 * MIB }, std::byte { 0x5A }, 32 * PAGE_SIZE));
    EXPECT_TRUE(all_equal(fresh, 5 * MIB, 32 * PAGE_SIZE, 0x5A));
}

// SPDX-License-Identifier: MIT
#include "base/read_only_file.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "mem/guest_memory.hpp"
#include "tests/support/fake_guest_memory.hpp"

using namespace vmm;

namespace {

struct TempFile {
    std::filesystem::path path;
    explicit TempFile(std::vector<std::byte> const& bytes)
    {
        char name[] = "/tmp/microvmm-rofile-XXXXXX";
        int fd = ::mkstemp(name);
        EXPECT_GE(fd, 0);
        ::close(fd);
        path = name;
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<char const*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
    ~TempFile() { std::filesystem::remove(path); }
};

std::vector<std::byte> counting(std::size_t size)
{
    std::vector<std::byte> out(size);
    for (std::size_t i = 0; i < size; ++i)
        out[i] = std::byte { static_cast<unsigned char>(i * 31 + 7) };
    return out;
}

} // namespace

TEST(ReadOnlyFile, ReadsAtOffsetsAndRefusesPastTheEnd)
{
    auto bytes = counting(10'000);
    TempFile file { bytes };
    auto image = ReadOnlyFile::open(file.path).value();
    EXPECT_EQ(image.size(), bytes.size());
    std::vector<std::byte> out(100);
    ASSERT_TRUE(image.read_at(9'900, out));
    EXPECT_TRUE(std::equal(out.begin(), out.end(), bytes.begin() + 9'900));
    EXPECT_FALSE(image.read_at(9'901, out));
    EXPECT_FALSE(image.read_at(~std::uint64_t { 0 }, out));
    EXPECT_EQ(image.read_wire<std::uint32_t>(9'997).value(), std::nullopt); // Does not fit.
}

TEST(ReadOnlyFile, RefusesMissingPathsAndDirectories)
{
    EXPECT_FALSE(ReadOnlyFile::open("/nonexistent/microvmm-kernel"));
    auto dir = ReadOnlyFile::open("/tmp");
    ASSERT_FALSE(dir);
    EXPECT_EQ(dir.error().code(), Errc::InvalidArgument);
}

TEST(ReadOnlyFile, ShrunkFileFailsInsteadOfCopyingShort)
{
    auto bytes = counting(8192);
    TempFile file { bytes };
    auto image = ReadOnlyFile::open(file.path).value();
    std::filesystem::resize_file(file.path, 4096);
    std::vector<std::byte> out(8192);
    EXPECT_FALSE(image.read_at(0, out));
}

TEST(GuestMemoryWriteFrom, CopiesAcrossRegionsAndChecksTheDestinationFirst)
{
    test::FakeGuestMemory ram { { 0, 0x2000 }, { 0x2000, 0x2000 } };
    auto const& memory = ram.memory();
    auto bytes = counting(0x3000);
    SpanSource source { bytes };
    ASSERT_TRUE(memory.write_from(mem::Gpa { 0x800 }, source, 0x100, 0x2F00));
    std::vector<std::byte> back(0x2F00);
    ASSERT_TRUE(memory.read(mem::Gpa { 0x800 }, back));
    EXPECT_TRUE(std::equal(back.begin(), back.end(), bytes.begin() + 0x100));

    // Destination past RAM or source past its end: refused before any byte moves.
    test::FakeGuestMemory fresh_ram { { 0, 0x2000 }, { 0x2000, 0x2000 } };
    auto const& fresh = fresh_ram.memory();
    EXPECT_EQ(fresh.write_from(mem::Gpa { 0x1800 }, source, 0, 0x2900).error().code(), Errc::NotMapped);
    EXPECT_EQ(fresh.write_from(mem::Gpa { 0 }, source, 0x2000, 0x1001).error().code(), Errc::OutOfRange);
    EXPECT_TRUE(fresh_ram.touched_pages().empty());
}

// SPDX-License-Identifier: MIT
// ImageFileBackend on a real temporary file: io_uring reads and writes (short transfers are the
// kernel's business, results are checked byte for byte), FUA, flush, write zeroes, discard (a
// hole), the OFD lock between two opens, and the one-line open errors.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>

#include "vmm/backends/image_file_backend.hpp"

namespace vmm {
namespace {

constexpr u64 IMAGE_BYTES = 4 * MIB;

class TempImage {
public:
    TempImage()
    {
        char pattern[] = "/tmp/microvmm-image-XXXXXX";
        int fd = ::mkstemp(pattern);
        VMM_ASSERT(fd >= 0);
        VMM_ASSERT(::ftruncate(fd, IMAGE_BYTES) == 0);
        ::close(fd);
        m_path = pattern;
    }
    ~TempImage() { std::filesystem::remove(m_path); }
    std::filesystem::path const& path() const { return m_path; }
    std::vector<std::byte> read(u64 offset, u64 size) const
    {
        std::vector<std::byte> out(size);
        int fd = ::open(m_path.c_str(), O_RDONLY | O_CLOEXEC);
        VMM_ASSERT(::pread(fd, out.data(), size, static_cast<off_t>(offset)) == static_cast<ssize_t>(size));
        ::close(fd);
        return out;
    }
    u64 allocated_bytes() const
    {
        struct stat st {};
        VMM_ASSERT(::stat(m_path.c_str(), &st) == 0);
        return static_cast<u64>(st.st_blocks) * 512;
    }

private:
    std::filesystem::path m_path;
};

// Collects completions from the back-end's thread.
class Sink {
public:
    ImageFileBackend::CompletionSink callback()
    {
        return [this](std::span<nvme::BlockCompletion const> batch) {
            std::lock_guard guard(m_mutex);
            for (auto const& c : batch)
                m_results[c.tag] = c.result;
            m_changed.notify_all();
        };
    }
    i32 wait(u64 tag)
    {
        std::unique_lock lock(m_mutex);
        bool ok = m_changed.wait_for(lock, std::chrono::seconds(30), [&] { return m_results.contains(tag); });
        VMM_ASSERT(ok);
        return m_results.at(tag);
    }

private:
    std::mutex m_mutex;
    std::condition_variable m_changed;
    std::map<u64, i32> m_results;
};

std::vector<std::byte> pattern(u64 size, u8 seed)
{
    std::vector<std::byte> data(size);
    for (u64 i = 0; i < size; ++i)
        data[i] = std::byte { static_cast<u8>(seed + i * 13) };
    return data;
}

TEST(ImageFileBackend, ReadWriteFlushZeroesAndDiscard)
{
    TempImage image;
    auto backend = ImageFileBackend::open(image.path(), false);
    ASSERT_TRUE(backend.has_value()) << backend.error().message();
    EXPECT_EQ((*backend)->size_bytes(), IMAGE_BYTES);
    EXPECT_FALSE((*backend)->read_only());
    Sink sink;
    ASSERT_TRUE((*backend)->start(sink.callback()).has_value());
    auto& disk = **backend;

    // A write from two discontiguous buffers (two guest pages), then FUA, then read back.
    auto data = pattern(8192, 3);
    std::span<std::byte> buffers[2] { { data.data(), 4096 }, { data.data() + 4096, 4096 } };
    disk.submit({ .tag = 1, .op = nvme::BlockOp::Write, .fua = false, .offset = 65536, .length = 8192, .buffers = buffers });
    EXPECT_EQ(sink.wait(1), 0);
    EXPECT_EQ(image.read(65536, 8192), data);
    auto fua_data = pattern(4096, 77);
    std::span<std::byte> fua_buffer[1] { fua_data };
    disk.submit({ .tag = 2, .op = nvme::BlockOp::Write, .fua = true, .offset = 0, .length = 4096, .buffers = fua_buffer });
    EXPECT_EQ(sink.wait(2), 0);
    EXPECT_EQ(image.read(0, 4096), fua_data);
    std::vector<std::byte> back(8192);
    std::span<std::byte> read_buffers[3] { { back.data(), 512 }, { back.data() + 512, 3584 }, { back.data() + 4096, 4096 } };
    disk.submit({ .tag = 3, .op = nvme::BlockOp::Read, .fua = false, .offset = 65536, .length = 8192, .buffers = read_buffers });
    EXPECT_EQ(sink.wait(3), 0);
    EXPECT_EQ(back, data);
    disk.submit({ .tag = 4, .op = nvme::BlockOp::Flush, .fua = false, .offset = 0, .length = 0, .buffers = {} });
    EXPECT_EQ(sink.wait(4), 0);

    // Write zeroes over the first page of the pattern; discard a 1 MiB region written before.
    disk.submit({ .tag = 5, .op = nvme::BlockOp::WriteZeroes, .fua = true, .offset = 65536, .length = 4096, .buffers = {} });
    EXPECT_EQ(sink.wait(5), 0);
    EXPECT_EQ(image.read(65536, 4096), std::vector<std::byte>(4096));
    EXPECT_EQ(image.read(65536 + 4096, 4096), std::vector<std::byte>(data.begin() + 4096, data.end()));
    auto big = pattern(MIB, 9);
    std::span<std::byte> big_buffer[1] { big };
    disk.submit({ .tag = 6, .op = nvme::BlockOp::Write, .fua = false, .offset = 2 * MIB, .length = MIB, .buffers = big_buffer });
    EXPECT_EQ(sink.wait(6), 0);
    disk.submit({ .tag = 7, .op = nvme::BlockOp::Flush, .fua = false, .offset = 0, .length = 0, .buffers = {} });
    EXPECT_EQ(sink.wait(7), 0);
    u64 const allocated = image.allocated_bytes();
    disk.submit({ .tag = 8, .op = nvme::BlockOp::Discard, .fua = false, .offset = 2 * MIB, .length = MIB, .buffers = {} });
    EXPECT_EQ(sink.wait(8), 0);
    EXPECT_EQ(image.read(2 * MIB, MIB), std::vector<std::byte>(MIB));
    EXPECT_LT(image.allocated_bytes(), allocated); // A hole: the host got the space back.

    // Many requests at once (more than the ring holds) all complete.
    std::vector<std::vector<std::byte>> pages;
    std::vector<std::array<std::span<std::byte>, 1>> spans(600);
    for (u64 i = 0; i < 600; ++i) {
        pages.push_back(pattern(512, static_cast<u8>(i)));
        spans[i][0] = pages.back();
    }
    for (u64 i = 0; i < 600; ++i)
        disk.submit({ .tag = 100 + i, .op = nvme::BlockOp::Write, .fua = false, .offset = i * 512, .length = 512, .buffers = spans[i] });
    for (u64 i = 0; i < 600; ++i)
        ASSERT_EQ(sink.wait(100 + i), 0);
    EXPECT_EQ(image.read(599 * 512, 512), pages[599]);
}

TEST(ImageFileBackend, ReadPastTheEndOfAShrunkImageIsAnError)
{
    TempImage image;
    auto backend = ImageFileBackend::open(image.path(), false);
    ASSERT_TRUE(backend.has_value());
    Sink sink;
    ASSERT_TRUE((*backend)->start(sink.callback()).has_value());
    ASSERT_EQ(::truncate(image.path().c_str(), 4096), 0); // Someone else truncated it.
    std::vector<std::byte> buffer(4096);
    std::span<std::byte> spans[1] { buffer };
    (*backend)->submit({ .tag = 1, .op = nvme::BlockOp::Read, .fua = false, .offset = MIB, .length = 4096, .buffers = spans });
    EXPECT_EQ(sink.wait(1), -EIO);
}

TEST(ImageFileBackend, LocksAndOpenErrors)
{
    TempImage image;
    {
        auto writer = ImageFileBackend::open(image.path(), false);
        ASSERT_TRUE(writer.has_value());
        auto second = ImageFileBackend::open(image.path(), false);
        ASSERT_FALSE(second.has_value());
        EXPECT_NE(second.error().message().find("in use"), std::string::npos) << second.error().message();
        EXPECT_NE(second.error().message().find(image.path().string()), std::string::npos);
        EXPECT_FALSE(ImageFileBackend::open(image.path(), true).has_value()); // A reader waits for the writer too.
    }
    {
        // Read-only disks share the image.
        auto reader1 = ImageFileBackend::open(image.path(), true);
        auto reader2 = ImageFileBackend::open(image.path(), true);
        ASSERT_TRUE(reader1.has_value());
        ASSERT_TRUE(reader2.has_value());
        EXPECT_TRUE((*reader1)->read_only());
        EXPECT_FALSE(ImageFileBackend::open(image.path(), false).has_value());
    }
    auto missing = ImageFileBackend::open("/nonexistent/disk.img", false);
    ASSERT_FALSE(missing.has_value());
    EXPECT_EQ(missing.error().code(), Errc::Config);
    EXPECT_NE(missing.error().message().find("/nonexistent/disk.img"), std::string::npos);
    EXPECT_NE(missing.error().message().find("No such file"), std::string::npos) << missing.error().message();
    auto directory = ImageFileBackend::open("/tmp", true);
    ASSERT_FALSE(directory.has_value());
    EXPECT_EQ(directory.error().code(), Errc::Config);
    ASSERT_EQ(::truncate(image.path().c_str(), 100), 0);
    auto tiny = ImageFileBackend::open(image.path(), false);
    ASSERT_FALSE(tiny.has_value());
    EXPECT_NE(tiny.error().message().find("512-byte"), std::string::npos);
}

} // namespace
} // namespace vmm

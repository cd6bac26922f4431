// SPDX-License-Identifier: MIT
// NvmeDisk end to end without KVM: a guest driver in fake RAM talks to the NVMe engine, whose
// requests go through io_uring on the nvme-io thread to a real image file and come back as
// completions and interrupts. The bytes the guest writes are found in the file, and bytes put
// in the file are what the guest reads.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/support/nvme_fakes.hpp"
#include "vmm/devices/nvme_disk.hpp"

namespace vmm {
namespace {

using test::FakeGuestMemory;
using test::NvmeTestDriver;

constexpr u64 IMAGE_BYTES = 1 * MIB;

class CountingInterrupts final : public nvme::NvmeInterrupts {
public:
    void raise(u16 vector) override
    {
        if (vector == 1)
            ++io_interrupts;
    }
    std::atomic<u64> io_interrupts { 0 };
};

struct ImageFile {
    ImageFile()
    {
        char name[] = "/tmp/microvmm-nvme-disk-XXXXXX";
        int fd = ::mkstemp(name);
        VMM_ASSERT(fd >= 0 && ::ftruncate(fd, IMAGE_BYTES) == 0);
        ::close(fd);
        path = name;
    }
    ~ImageFile() { std::filesystem::remove(path); }
    void pwrite(u64 offset, std::vector<std::byte> const& bytes) const
    {
        int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
        VMM_ASSERT(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)) == static_cast<ssize_t>(bytes.size()));
        ::close(fd);
    }
    std::vector<std::byte> pread(u64 offset, u64 size) const
    {
        std::vector<std::byte> out(size);
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        VMM_ASSERT(::pread(fd, out.data(), size, static_cast<off_t>(offset)) == static_cast<ssize_t>(size));
        ::close(fd);
        return out;
    }
    std::filesystem::path path;
};

std::vector<std::byte> pattern(u64 size, u8 seed)
{
    std::vector<std::byte> data(size);
    for (u64 i = 0; i < size; ++i)
        data[i] = std::byte { static_cast<u8>(seed ^ (i * 31)) };
    return data;
}

struct DiskRig {
    explicit DiskRig(ImageFile const& image, bool read_only = false)
        : ram({ { 0, 4 * MIB } })
    {
        auto created = NvmeDisk::create(DiskSection { .path = image.path, .read_only = read_only, .serial = "E2E" },
            ram.memory(), interrupts, 2, 3);
        VMM_ASSERT(created.has_value());
        disk = std::move(*created);
        driver = std::make_unique<NvmeTestDriver>(
            ram, [this](u64 o, std::span<std::byte> d) { disk->mmio_read(o, d); },
            [this](u64 o, std::span<std::byte const> d) { disk->mmio_write(o, d); });
        driver->enable();
        VMM_ASSERT(driver->create_pair(1, 0x20000, 0x21000, 16, 1) == 0);
    }
    // Submits on queue 1 and waits (up to 10 s) for the completion the nvme-io thread posts.
    u16 io(nvme::SubmissionEntry entry)
    {
        driver->submit(1, entry);
        auto const deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::chrono::steady_clock::now() < deadline) {
            std::optional<nvme::CompletionEntry> cqe;
            {
                // Reading the CQ races only with the engine's release store of the status word.
                cqe = driver->reap(1);
            }
            if (cqe)
                return NvmeTestDriver::status_of(*cqe);
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        ADD_FAILURE() << "no completion";
        return 0xFFFF;
    }
    static nvme::SubmissionEntry rw(u8 opcode, u64 slba, u32 lbas, u64 prp1, u64 prp2 = 0)
    {
        auto e = NvmeTestDriver::command(opcode, 1);
        e.cdw10 = static_cast<u32>(slba);
        e.cdw12 = lbas - 1;
        e.prp1 = prp1;
        e.prp2 = prp2;
        return e;
    }

    FakeGuestMemory ram;
    CountingInterrupts interrupts;
    std::unique_ptr<NvmeDisk> disk;
    std::unique_ptr<NvmeTestDriver> driver;
};

TEST(NvmeDisk, GuestReadsTheFileAndTheFileGetsTheGuestsWrites)
{
    ImageFile image;
    auto const known = pattern(8192, 0x5A);
    image.pwrite(100 * 512, known);
    DiskRig rig(image);
    ASSERT_EQ(rig.io(DiskRig::rw(0x02, 100, 16, 0x100000, 0x101000)), 0);
    EXPECT_EQ(rig.ram.read_bytes(0x100000, 8192), known);

    auto const mine = pattern(4096, 0xC3);
    rig.ram.write_bytes(0x200000, mine);
    auto write = DiskRig::rw(0x01, 300, 8, 0x200000);
    write.cdw12 |= 1u << 30; // FUA: on disk when acknowledged.
    ASSERT_EQ(rig.io(write), 0);
    EXPECT_EQ(image.pread(300 * 512, 4096), mine);
    ASSERT_EQ(rig.io(NvmeTestDriver::command(0x00, 1)), 0); // Flush.
    auto dsm_range = nvme::DsmRange { 0, 8, 300 };
    rig.ram.write(0x300000, dsm_range);
    auto dsm = NvmeTestDriver::command(0x09, 1);
    dsm.cdw11 = 1u << 2;
    dsm.prp1 = 0x300000;
    ASSERT_EQ(rig.io(dsm), 0);
    EXPECT_EQ(image.pread(300 * 512, 4096), std::vector<std::byte>(4096));
    EXPECT_GE(rig.interrupts.io_interrupts.load(), 4u);
    auto stats = rig.disk->stats();
    EXPECT_EQ(stats.read_commands, 1u);
    EXPECT_EQ(stats.write_commands, 1u);
    EXPECT_EQ(stats.bytes_written, 4096u);
}

TEST(NvmeDisk, ReadOnlyDiskRefusesWritesAndSharesTheImage)
{
    ImageFile image;
    image.pwrite(0, pattern(512, 1));
    DiskRig rig(image, true);
    DiskRig other(image, true); // Two read-only users may share it.
    rig.ram.write_bytes(0x200000, pattern(512, 9));
    EXPECT_EQ(rig.io(DiskRig::rw(0x01, 0, 1, 0x200000)), static_cast<u16>(nvme::Status::NamespaceWriteProtected));
    EXPECT_EQ(image.pread(0, 512), pattern(512, 1));
    EXPECT_FALSE(NvmeDisk::create(DiskSection { .path = image.path, .read_only = false, .serial = "W" },
        rig.ram.memory(), rig.interrupts, 1, 1).has_value());
}

TEST(NvmeDisk, DestroyedWithIoInFlight)
{
    ImageFile image;
    DiskRig rig(image);
    for (int i = 0; i < 8; ++i)
        rig.driver->submit(1, DiskRig::rw(0x02, static_cast<u64>(i) * 16, 16, 0x100000 + static_cast<u64>(i) * 0x2000, 0x101000 + static_cast<u64>(i) * 0x2000));
    rig.disk.reset(); // Completes what is in flight, then stops; nothing touches freed state.
    SUCCEED();
}

} // namespace
} // namespace vmm

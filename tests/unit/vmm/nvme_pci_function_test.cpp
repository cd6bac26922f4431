// SPDX-License-Identifier: MIT
// NvmePciFunction on the PCI core without KVM: config space (class, IDs, 64-bit BAR 0 sizing,
// the MSI-X capability), MSI-X masking between the NVMe engine's interrupts and the MsiSink,
// and shadow doorbells turning into registered doorbell eventfds whose kicks the disk's nvme-io
// thread serves. A guest driver (tests/support/nvme_fakes.hpp) talks through PciRoot's MMIO.
#include <gtest/gtest.h>

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "devices/pci/pci_regs.hpp"
#include "tests/support/nvme_fakes.hpp"
#include "tests/unit/pci/pci_fakes.hpp"
#include "vmm/devices/nvme_pci_function.hpp"

namespace vmm {
namespace {

using namespace pci;
using namespace pci::testing;
using test::FakeGuestMemory;
using test::NvmeTestDriver;

struct TempImage {
    TempImage()
    {
        char name[] = "/tmp/microvmm-nvme-pci-XXXXXX";
        int fd = ::mkstemp(name);
        VMM_ASSERT(fd >= 0 && ::ftruncate(fd, 1 * MIB) == 0);
        ::close(fd);
        path = name;
    }
    ~TempImage() { std::filesystem::remove(path); }
    std::filesystem::path path;
};

struct Rig {
    Rig()
        : ram({ { 0, 4 * MIB } })
        , root(test_windows(), msi, &ioevents)
    {
        auto image = ImageFile::open(file.path, false);
        VMM_ASSERT(image.has_value());
        auto created = NvmePciFunction::create(*image, DiskSection { .path = file.path, .read_only = false, .serial = "T" },
            ram.memory(), 2, 0);
        VMM_ASSERT(created.has_value());
        function = std::move(*created);
        auto added = root.add(*function);
        VMM_ASSERT(added.has_value());
        slot = *added;
    }
    ~Rig() { function->stop(); }
    u8 msix_cap()
    {
        for (u16 at = ecam_read(root, slot, CAPABILITIES_POINTER, 1); at != 0; at = ecam_read(root, slot, at + 1, 1))
            if (ecam_read(root, slot, at, 1) == CAP_ID_MSIX)
                return static_cast<u8>(at);
        return 0;
    }
    u64 bar0() { return (ecam_read(root, slot, BAR0) & ~0xFull) | (u64 { ecam_read(root, slot, BAR0 + 4) } << 32); }
    u64 bar4() { return ecam_read(root, slot, BAR0 + 16) & ~0xFull; }
    std::unique_ptr<NvmeTestDriver> driver()
    {
        u64 const base = bar0();
        return std::make_unique<NvmeTestDriver>(
            ram, [this, base](u64 o, std::span<std::byte> d) { root.mmio_read(base + o, d); },
            [this, base](u64 o, std::span<std::byte const> d) { root.mmio_write(base + o, d); });
    }

    TempImage file;
    FakeGuestMemory ram;
    RecordingMsi msi;
    RecordingIoEvents ioevents;
    PciRoot root;
    std::unique_ptr<NvmePciFunction> function;
    u8 slot { 0 };
};

TEST(NvmePciFunction, ConfigSpaceIsAnNvmeControllerWithA64BitBar0AndMsixInBar4)
{
    Rig rig;
    EXPECT_EQ(ecam_read(rig.root, rig.slot, VENDOR_ID), 0x1000'1B36u); // Not QEMU's 1b36:0010.
    EXPECT_EQ(ecam_read(rig.root, rig.slot, 0x08) >> 8, 0x01'08'02u);   // Class 01/08/02.
    EXPECT_EQ(ecam_read(rig.root, rig.slot, SUBSYSTEM_VENDOR_ID), 0x1000'1B36u);
    // BAR sizing: all-ones reads back the size mask (64-bit memory type in bits 2:1 = 10b).
    u32 const low = ecam_read(rig.root, rig.slot, BAR0);
    u32 const high = ecam_read(rig.root, rig.slot, BAR0 + 4);
    EXPECT_EQ(low & 0xF, 0x4u);
    ecam_write(rig.root, rig.slot, BAR0, 0xFFFF'FFFF);
    ecam_write(rig.root, rig.slot, BAR0 + 4, 0xFFFF'FFFF);
    EXPECT_EQ(ecam_read(rig.root, rig.slot, BAR0), static_cast<u32>(~(NvmeDisk::BAR0_BYTES - 1)) | 0x4u);
    EXPECT_EQ(ecam_read(rig.root, rig.slot, BAR0 + 4), 0xFFFF'FFFFu);
    ecam_write(rig.root, rig.slot, BAR0, low);
    ecam_write(rig.root, rig.slot, BAR0 + 4, high);
    ecam_write(rig.root, rig.slot, BAR0 + 16, 0xFFFF'FFFF);
    EXPECT_EQ(ecam_read(rig.root, rig.slot, BAR0 + 16), 0xFFFF'F000u); // 4 KiB, 32-bit.
    // MSI-X: 2 vCPUs -> 2 I/O queues + admin = 3 vectors, table at BAR 4 + 0, PBA at + 2048.
    u8 const cap = rig.msix_cap();
    ASSERT_NE(cap, 0);
    EXPECT_EQ((ecam_read(rig.root, rig.slot, cap + 2, 2) & MSIX_CONTROL_TABLE_SIZE) + 1u, 3u);
    EXPECT_EQ(ecam_read(rig.root, rig.slot, cap + 4), 0u | 4u);
    EXPECT_EQ(ecam_read(rig.root, rig.slot, cap + 8), 2048u | 4u);
    EXPECT_EQ(rig.function->io_queues(), 2);
}

TEST(NvmePciFunction, AnAdminCompletionWhileMaskedIsPendingAndSentOnUnmask)
{
    Rig rig;
    ecam_write(rig.root, rig.slot, COMMAND, COMMAND_MEMORY | COMMAND_BUS_MASTER, 2);
    u8 const cap = rig.msix_cap();
    ecam_write(rig.root, rig.slot, cap + 2, MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK, 2);
    u64 const table = rig.bar4();
    mmio_write<u32>(rig.root, table + MSIX_ENTRY_ADDRESS_LO, 0xFEE0'0000);
    mmio_write<u32>(rig.root, table + MSIX_ENTRY_ADDRESS_HI, 0);
    mmio_write<u32>(rig.root, table + MSIX_ENTRY_DATA, 0x41);
    mmio_write<u32>(rig.root, table + MSIX_ENTRY_VECTOR_CONTROL, 0);

    auto driver = rig.driver();
    driver->enable();
    ASSERT_EQ(driver->read32(nvme::REG_CSTS) & 1, 1u);
    auto identify = NvmeTestDriver::command(0x06);
    identify.cdw10 = 1; // Controller.
    identify.prp1 = 0x40000;
    ASSERT_EQ(NvmeTestDriver::status_of(driver->admin(identify)), 0);
    EXPECT_TRUE(rig.msi.messages.empty()); // The function mask holds it...
    EXPECT_EQ(mmio_read<u32>(rig.root, table + 2048) & 1, 1u); // ...as a pending bit.
    EXPECT_EQ(rig.ram.read<u16>(0x40000), 0x1B36); // Identify VID = the PCI vendor.

    ecam_write(rig.root, rig.slot, cap + 2, MSIX_CONTROL_ENABLE, 2);
    ASSERT_EQ(rig.msi.messages.size(), 1u);
    EXPECT_EQ(rig.msi.messages[0], (RecordingMsi::Message { 0xFEE0'0000, 0x41 }));
    EXPECT_EQ(mmio_read<u32>(rig.root, table + 2048) & 1, 0u);
}

TEST(NvmePciFunction, ShadowDoorbellsRegisterEventfdsWhoseKicksRunIo)
{
    Rig rig;
    ecam_write(rig.root, rig.slot, COMMAND, COMMAND_MEMORY | COMMAND_BUS_MASTER, 2);
    auto driver = rig.driver();
    driver->enable();
    EXPECT_TRUE(rig.ioevents.live.empty()); // No shadow copies yet: doorbell values matter.

    auto dbbc = NvmeTestDriver::command(0x7C);
    dbbc.prp1 = 0x30000; // Shadow doorbells.
    dbbc.prp2 = 0x31000; // EventIdx.
    ASSERT_EQ(NvmeTestDriver::status_of(driver->admin(dbbc)), 0);
    // Registered before the guest could ring: one per I/O SQ tail (qid 1, 2), 4 bytes.
    u64 const bar0 = rig.bar0();
    ASSERT_EQ(rig.ioevents.live.size(), 2u);
    EXPECT_EQ(rig.ioevents.live[0].address, bar0 + 0x1008);
    EXPECT_EQ(rig.ioevents.live[1].address, bar0 + 0x1010);
    EXPECT_EQ(rig.ioevents.live[0].length, 4u);

    // An I/O queue pair, a read command, the tail in the shadow page and a bare kick, as
    // KVM's ioeventfd gives it: the nvme-io thread completes the read.
    ASSERT_EQ(driver->create_pair(1, 0x20000, 0x21000, 16, 1), 0);
    auto read = NvmeTestDriver::command(0x02, 1);
    read.prp1 = 0x50000;
    read.cdw12 = 7; // 8 LBAs.
    driver->submit(1, read, false);
    // The tail in the shadow page as a guest CPU stores it: one release store, which the
    // nvme-io thread reads with an acquire load (nvme_doorbells.cpp shadow_value). A plain copy
    // would be a data race to ThreadSanitizer, which cannot see the kick's ordering: KVM's
    // ioeventfd (here the test's write()) is read by the back-end through io_uring.
    auto const shadow = rig.ram.memory().contiguous(mem::Gpa { 0x30000 + 2 * 1 * 4 }, 4);
    ASSERT_TRUE(shadow.has_value());
    std::atomic_ref<u32>(*reinterpret_cast<u32*>(shadow->data())).store(driver->queue(1).sq_tail, std::memory_order_release);
    u64 one = 1;
    ASSERT_EQ(::write(rig.ioevents.live[0].fd, &one, sizeof one), 8);
    std::optional<nvme::CompletionEntry> cqe;
    auto const deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!(cqe = driver->reap(1, false)) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_TRUE(cqe.has_value());
    EXPECT_EQ(NvmeTestDriver::status_of(*cqe), 0);
    EXPECT_EQ(rig.function->stats().read_commands, 1u);

    // A controller reset drops the shadow pages: doorbells carry their values again.
    driver->write32(nvme::REG_CC, 0);
    EXPECT_TRUE(rig.ioevents.live.empty());
}

} // namespace
} // namespace vmm

// SPDX-License-Identifier: MIT
// MSI-X through the config space and the BAR: table programming, per-vector and function
// masking, pending bits while masked and delivery on unmask, hostile table/PBA accesses.
#include <gtest/gtest.h>

#include <thread>

#include "devices/pci/pci_regs.hpp"
#include "pci_fakes.hpp"

using namespace vmm;
using namespace vmm::pci;
using namespace vmm::pci::testing;

namespace {

constexpr u64 BAR = 0xC800'0000; // Where the tests put BAR 0.
constexpr u64 TABLE = BAR + 0x2000;
constexpr u64 PBA = BAR + 0x3000;
constexpr u16 MSIX_CAP = FIRST_CAPABILITY;

struct Msix : ::testing::Test {
    RecordingMsi msi;
    PciRoot root { test_windows(), msi, nullptr };
    FakeFunction fake;
    u8 slot { 0 };
    void SetUp() override
    {
        slot = root.add(fake).value();
        ecam_write(root, slot, BAR0, static_cast<u32>(BAR));
        ecam_write(root, slot, BAR0 + 4, 0);
        ecam_write(root, slot, COMMAND, COMMAND_MEMORY | COMMAND_BUS_MASTER, 2);
    }
    void control(u16 bits) { ecam_write(root, slot, MSIX_CAP + 2, bits, 2); }
    void program(u16 vector, u32 apic, u32 data, bool masked)
    {
        u64 const entry = TABLE + u64 { vector } * 16;
        mmio_write<u32>(root, entry, 0xFEE0'0000u | (apic << 12));
        mmio_write<u32>(root, entry + 4, 0);
        mmio_write<u32>(root, entry + 8, data);
        mmio_write<u32>(root, entry + 12, masked ? 1 : 0);
    }
    u64 pba_word(u16 index) { return mmio_read<u64>(root, PBA + 8 * index); }
};

TEST_F(Msix, CapabilityDescribesTableAndPbaInBar0)
{
    EXPECT_EQ(ecam_read(root, slot, MSIX_CAP, 1), CAP_ID_MSIX);
    EXPECT_EQ(ecam_read(root, slot, MSIX_CAP + 2, 2), FakeFunction::VECTORS - 1u);
    EXPECT_EQ(ecam_read(root, slot, MSIX_CAP + 4), 0x2000u | 0);
    EXPECT_EQ(ecam_read(root, slot, MSIX_CAP + 8), 0x3000u | 0);
    // Table size and offsets are read-only; only enable and function mask are writable.
    ecam_write(root, slot, MSIX_CAP + 4, 0xFFFF'FFFF);
    control(0xFFFF);
    EXPECT_EQ(ecam_read(root, slot, MSIX_CAP + 4), 0x2000u);
    EXPECT_EQ(ecam_read(root, slot, MSIX_CAP + 2, 2), 0xC000u | (FakeFunction::VECTORS - 1u));
    ASSERT_NE(fake.interrupts, nullptr);
    EXPECT_EQ(fake.interrupts->vector_count(), FakeFunction::VECTORS);
}

TEST_F(Msix, TableStartsMaskedAndReadsBackWhatWasProgrammed)
{
    EXPECT_EQ(mmio_read(root, TABLE + 12), 1u) << "vectors are masked at reset";
    program(3, 2, 0x41, false);
    EXPECT_EQ(mmio_read(root, TABLE + 3 * 16), 0xFEE0'2000u);
    EXPECT_EQ(mmio_read(root, TABLE + 3 * 16 + 8), 0x41u);
    EXPECT_EQ(mmio_read(root, TABLE + 3 * 16 + 12), 0u);
    // Reserved vector-control bits read as 0; a qword access covers two dwords.
    mmio_write<u32>(root, TABLE + 3 * 16 + 12, 0xFFFF'FFFE);
    EXPECT_EQ(mmio_read(root, TABLE + 3 * 16 + 12), 0u);
    mmio_write<u64>(root, TABLE + 5 * 16, 0x0000'0001'FEE0'1000);
    EXPECT_EQ(mmio_read<u64>(root, TABLE + 5 * 16), 0x0000'0001'FEE0'1000u);
    EXPECT_TRUE(fake.reads.empty() && fake.writes.empty()) << "table accesses never reach the device";
}

TEST_F(Msix, DeliversOnlyWhenEnabledAndUnmasked)
{
    program(0, 1, 0x30, false);
    fake.interrupts->raise(0);
    EXPECT_TRUE(msi.messages.empty()) << "MSI-X disabled: dropped";
    EXPECT_FALSE(fake.interrupts->pending(0));
    control(MSIX_CONTROL_ENABLE);
    fake.interrupts->raise(0);
    ASSERT_EQ(msi.messages.size(), 1u);
    EXPECT_EQ(msi.messages[0], (RecordingMsi::Message { 0xFEE0'1000, 0x30 }));
    fake.interrupts->raise(FakeFunction::VECTORS); // Out of range: dropped.
    EXPECT_EQ(msi.messages.size(), 1u);
}

TEST_F(Msix, VectorMaskSetsPendingAndUnmaskDeliversOnce)
{
    control(MSIX_CONTROL_ENABLE);
    program(65, 0, 0x45, true); // Second PBA word.
    fake.interrupts->raise(65);
    fake.interrupts->raise(65);
    EXPECT_TRUE(msi.messages.empty());
    EXPECT_TRUE(fake.interrupts->pending(65));
    EXPECT_EQ(pba_word(1), u64 { 1 } << 1);
    EXPECT_EQ(pba_word(0), 0u);
    EXPECT_EQ(mmio_read(root, PBA + 8), 2u) << "dword read of the PBA";
    mmio_write<u64>(root, PBA + 8, 0); // Read-only: ignored.
    EXPECT_TRUE(fake.interrupts->pending(65));
    mmio_write<u32>(root, TABLE + 65 * 16 + 12, 0);
    ASSERT_EQ(msi.messages.size(), 1u) << "one message for any number of raises while masked";
    EXPECT_EQ(msi.messages[0].data, 0x45u);
    EXPECT_EQ(pba_word(1), 0u);
}

TEST_F(Msix, FunctionMaskHoldsEveryVectorUntilCleared)
{
    program(1, 0, 0x51, false);
    program(2, 0, 0x52, false);
    control(MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK);
    fake.interrupts->raise(1);
    fake.interrupts->raise(2);
    EXPECT_TRUE(msi.messages.empty());
    EXPECT_EQ(pba_word(0), 0b110u);
    control(MSIX_CONTROL_ENABLE);
    ASSERT_EQ(msi.messages.size(), 2u);
    EXPECT_EQ(msi.messages[0].data, 0x51u);
    EXPECT_EQ(msi.messages[1].data, 0x52u);
    EXPECT_EQ(pba_word(0), 0u);
}

TEST_F(Msix, PendingSurvivesAMaskedVectorUnderFunctionUnmask)
{
    control(MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK);
    program(4, 0, 0x54, true);
    fake.interrupts->raise(4);
    control(MSIX_CONTROL_ENABLE); // Vector still masked.
    EXPECT_TRUE(msi.messages.empty());
    EXPECT_TRUE(fake.interrupts->pending(4));
    mmio_write<u32>(root, TABLE + 4 * 16 + 12, 0);
    EXPECT_EQ(msi.messages.size(), 1u);
}

TEST_F(Msix, MessagesOutsideTheApicWindowAreRefused)
{
    control(MSIX_CONTROL_ENABLE);
    program(0, 0, 0x30, false);
    mmio_write<u32>(root, TABLE, 0x1000); // A RAM address: would be a DMA write on hardware.
    fake.interrupts->raise(0);
    EXPECT_TRUE(msi.messages.empty());
    EXPECT_EQ(fake.interrupts->dropped(), 1u);
}

TEST_F(Msix, HostileTableAndPbaAccessesAreIgnored)
{
    control(MSIX_CONTROL_ENABLE);
    program(0, 0, 0x30, false);
    // Byte and word writes, misaligned dwords: ignored (PCI 3.0 §6.8.2: DWORD/QWORD only).
    mmio_write<u8>(root, TABLE + 8, 0x99);
    mmio_write<u16>(root, TABLE + 8, 0x9999);
    mmio_write<u32>(root, TABLE + 6, 0x9999'9999);
    EXPECT_EQ(mmio_read(root, TABLE + 8), 0x30u);
    EXPECT_EQ(mmio_read<u8>(root, TABLE + 8), 0u) << "byte reads are undefined: zero";
    // The gap between table end and PBA belongs to the device; past the PBA too.
    u64 const table_end = TABLE + FakeFunction::VECTORS * 16;
    mmio_write<u32>(root, table_end, 7);
    EXPECT_EQ(fake.writes.back(), (FakeFunction::Access { 0, 0x2000 + FakeFunction::VECTORS * 16, 4, 7 }));
    mmio_read<u64>(root, PBA + 16);
    EXPECT_EQ(fake.reads.back().offset, 0x3010u);
    fake.interrupts->raise(0);
    EXPECT_EQ(msi.messages.size(), 1u);
}

TEST_F(Msix, RaiseFromManyThreadsWhileTheGuestMasksAndUnmasksLosesNothing)
{
    // Every raise either delivers or leaves the pending bit, which an unmask then delivers:
    // after the last unmask nothing is pending and at least one message went out.
    control(MSIX_CONTROL_ENABLE);
    program(7, 0, 0x57, false);
    std::vector<std::thread> raisers;
    for (int t = 0; t < 4; ++t)
        raisers.emplace_back([&] {
            for (int i = 0; i < 2000; ++i)
                fake.interrupts->raise(7);
        });
    for (int i = 0; i < 500; ++i) {
        mmio_write<u32>(root, TABLE + 7 * 16 + 12, 1);
        mmio_write<u32>(root, TABLE + 7 * 16 + 12, 0);
    }
    for (auto& thread : raisers)
        thread.join();
    EXPECT_FALSE(fake.interrupts->pending(7));
    EXPECT_GE(msi.messages.size(), 1u);
    EXPECT_EQ(fake.interrupts->delivered(), msi.messages.size());
}

} // namespace

// An access that runs into the table or the PBA from outside (or out of them) is undefined
// (§6.8.2): it reads 0, is ignored and never reaches the device (found by fuzz_pci_config).
TEST_F(Msix, AccessStraddlingTheTableOrPbaNeverReachesTheDevice)
{
    for (u64 offset : { u64 { 0x2000 - 4 }, u64 { 0x2000 + FakeFunction::VECTORS * 16 - 4 }, u64 { 0x3000 - 4 }, u64 { 0x3000 + 12 } }) {
        bool claimed = false;
        EXPECT_EQ(mmio_read<std::uint64_t>(root, BAR + offset, &claimed), 0u) << offset;
        EXPECT_TRUE(claimed);
        EXPECT_TRUE(mmio_write<std::uint64_t>(root, BAR + offset, ~std::uint64_t { 0 }));
    }
    EXPECT_TRUE(fake.reads.empty());
    EXPECT_TRUE(fake.writes.empty());
    EXPECT_EQ(root.counters().refused, 8u);
}

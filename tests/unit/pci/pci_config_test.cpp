// SPDX-License-Identifier: MIT
// Config space through ECAM and 0xCF8/0xCFC: header, widths, alignment, read-only fields,
// BAR sizing and relocation (32/64-bit, I/O), command decode, capability walk, doorbells.
#include <gtest/gtest.h>

#include "devices/pci/pci_regs.hpp"
#include "pci_fakes.hpp"

using namespace vmm;
using namespace vmm::pci;
using namespace vmm::pci::testing;

namespace {

struct Bus0 : ::testing::Test {
    RecordingMsi msi;
    RecordingIoEvents doorbells;
    PciRoot root { test_windows(), msi, &doorbells };
    FakeFunction fake;
    u8 slot { 0 };
    void SetUp() override { slot = root.add(fake).value(); }
};

TEST_F(Bus0, HostBridgeIsDevice0WithARealHostBridgeHeader)
{
    EXPECT_EQ(ecam_read(root, 0, VENDOR_ID), 0x0008'1B36u);
    EXPECT_EQ(ecam_read(root, 0, REVISION_ID) >> 8, 0x06'00'00u); // Class 06, subclass 00, prog-if 00.
    EXPECT_EQ(ecam_read(root, 0, HEADER_TYPE, 1), 0u);
    for (u8 bar = 0; bar < BAR_COUNT; ++bar) {
        ecam_write(root, 0, static_cast<u16>(BAR0 + 4 * bar), 0xFFFF'FFFF);
        EXPECT_EQ(ecam_read(root, 0, static_cast<u16>(BAR0 + 4 * bar)), 0u) << "host bridge has no BAR " << int { bar };
    }
    EXPECT_EQ(slot, 1);
}

TEST_F(Bus0, AbsentDevicesFunctionsAndBusesReadAllOnesAndIgnoreWrites)
{
    EXPECT_EQ(ecam_read(root, 2, VENDOR_ID), 0xFFFF'FFFFu);
    EXPECT_EQ(ecam_read(root, 31, VENDOR_ID, 2), 0xFFFFu);
    u32 value = 0;
    root.ecam_read((u64 { 1 } << 15) | (u64 { 3 } << 12), std::as_writable_bytes(std::span { &value, 1 })); // 0:1.3
    EXPECT_EQ(value, 0xFFFF'FFFFu);
    ecam_write(root, 2, COMMAND, 0xFFFF);
    // Through 0xCF8: bus 1 does not exist.
    u32 const address = 0x8000'0000u | (1u << 16);
    root.config_port_write(0, std::as_bytes(std::span { &address, 1 }));
    root.config_port_read(4, std::as_writable_bytes(std::span { &value, 1 }));
    EXPECT_EQ(value, 0xFFFF'FFFFu);
}

TEST_F(Bus0, IdentityReadsAtEveryWidthAndOffsetInsideADword)
{
    EXPECT_EQ(ecam_read(root, slot, VENDOR_ID), 0x5678'1234u);
    EXPECT_EQ(ecam_read(root, slot, VENDOR_ID, 2), 0x1234u);
    EXPECT_EQ(ecam_read(root, slot, DEVICE_ID, 2), 0x5678u);
    EXPECT_EQ(ecam_read(root, slot, 1, 1), 0x12u);
    EXPECT_EQ(ecam_read(root, slot, 1, 2), 0x7812u); // Unaligned word inside the dword.
    EXPECT_EQ(ecam_read(root, slot, 3, 1), 0x56u);
    EXPECT_EQ(ecam_read(root, slot, REVISION_ID), 0x0108'0202u);
    EXPECT_EQ(ecam_read(root, slot, SUBSYSTEM_VENDOR_ID), 0x0042'1AF4u);
    EXPECT_EQ(ecam_read(root, slot, INTERRUPT_PIN, 1), 0u) << "no INTx: MSI-X only";
}

TEST_F(Bus0, AccessesCrossingADwordAreRefusedWithoutEffect)
{
    auto const before = root.counters().refused;
    EXPECT_EQ(ecam_read(root, slot, 3, 2), 0xFFFFu);
    EXPECT_EQ(ecam_read(root, slot, 2, 4), 0xFFFF'FFFFu);
    // A write straddling CACHE_LINE_SIZE(0x0C)..0x0F from 0x0B must change nothing.
    ecam_write(root, slot, 0x0B, 0xFFFF, 2);
    EXPECT_EQ(ecam_read(root, slot, CACHE_LINE_SIZE, 1), 0u);
    // 8-byte config accesses are not defined either.
    u64 wide = 0;
    root.ecam_read(ecam_offset(slot, 0), std::as_writable_bytes(std::span { &wide, 1 }));
    EXPECT_EQ(wide, ~u64 { 0 });
    // CONFIG_DATA: a dword at 0xCFE would straddle.
    select(root, slot, 0);
    u32 value = 0;
    root.config_port_read(6, std::as_writable_bytes(std::span { &value, 1 }));
    EXPECT_EQ(value, 0xFFFF'FFFFu);
    EXPECT_EQ(root.counters().refused, before + 5);
}

TEST_F(Bus0, ReadOnlyFieldsIgnoreWritesAndStatusErrorBitsAreWriteOneToClear)
{
    for (u16 reg : { VENDOR_ID, REVISION_ID, SUBSYSTEM_VENDOR_ID, CAPABILITIES_POINTER, EXPANSION_ROM })
        ecam_write(root, slot, reg, 0xFFFF'FFFF);
    EXPECT_EQ(ecam_read(root, slot, VENDOR_ID), 0x5678'1234u);
    EXPECT_EQ(ecam_read(root, slot, REVISION_ID), 0x0108'0202u);
    EXPECT_EQ(ecam_read(root, slot, SUBSYSTEM_VENDOR_ID), 0x0042'1AF4u);
    EXPECT_EQ(ecam_read(root, slot, EXPANSION_ROM), 0u) << "no expansion ROM: sizing reads 0";
    EXPECT_EQ(ecam_read(root, slot, CAPABILITIES_POINTER, 1), FIRST_CAPABILITY);
    // Command: only the defined bits stick; status keeps its capability bit.
    ecam_write(root, slot, COMMAND, 0xFFFF'FFFF);
    EXPECT_EQ(ecam_read(root, slot, COMMAND, 2), COMMAND_WRITABLE);
    EXPECT_EQ(ecam_read(root, slot, STATUS, 2), STATUS_CAPABILITIES);
    // Scratch registers are writable; extended config space is zero and read-only.
    ecam_write(root, slot, INTERRUPT_LINE, 0x0B, 1);
    EXPECT_EQ(ecam_read(root, slot, INTERRUPT_LINE, 1), 0x0Bu);
    ecam_write(root, slot, 0x100, 0x1234'5678);
    EXPECT_EQ(ecam_read(root, slot, 0x100), 0u);
    EXPECT_EQ(ecam_read(root, slot, 0xFFC), 0u);
}

TEST_F(Bus0, EcamAndConfigPortsSeeTheSameSpace)
{
    for (u16 reg = 0; reg < LEGACY_CONFIG_BYTES; reg += 4)
        EXPECT_EQ(ecam_read(root, slot, reg), cf8_read(root, slot, reg)) << "register " << reg;
    for (u16 reg = 0; reg < 0x40; ++reg)
        EXPECT_EQ(ecam_read(root, slot, reg, 1), cf8_read(root, slot, reg, 1)) << "byte " << reg;
    // A write through one is seen through the other.
    cf8_write(root, slot, CACHE_LINE_SIZE, 0x10, 1);
    EXPECT_EQ(ecam_read(root, slot, CACHE_LINE_SIZE, 1), 0x10u);
    ecam_write(root, slot, BAR0 + 8, 0xC123'4000);
    EXPECT_EQ(cf8_read(root, slot, BAR0 + 8), 0xC123'4008u);
    EXPECT_GT(root.counters().ecam_accesses, 0u);
    EXPECT_GT(root.counters().config_port_accesses, 0u);
}

TEST_F(Bus0, ConfigAddressLatchesOnlyDwordWritesAndDataNeedsTheEnableBit)
{
    u32 const address = 0x8000'0000u | (u32 { slot } << 11);
    root.config_port_write(0, std::as_bytes(std::span { &address, 1 }));
    u32 value = 0;
    root.config_port_read(0, std::as_writable_bytes(std::span { &value, 1 }));
    EXPECT_EQ(value, address);
    u8 const byte = 0x01; // Linux's pci_check_type1() pokes 0xCFB with a byte first.
    root.config_port_write(3, std::as_bytes(std::span { &byte, 1 }));
    root.config_port_read(0, std::as_writable_bytes(std::span { &value, 1 }));
    EXPECT_EQ(value, address);
    u32 const disabled = address & ~0x8000'0000u;
    root.config_port_write(0, std::as_bytes(std::span { &disabled, 1 }));
    root.config_port_read(4, std::as_writable_bytes(std::span { &value, 1 }));
    EXPECT_EQ(value, 0xFFFF'FFFFu);
}

TEST_F(Bus0, BarsArePlacedInTheirWindowsAndSizeByAllOnes)
{
    u64 const bar0 = ecam_read(root, slot, BAR0) | (u64 { ecam_read(root, slot, BAR0 + 4) } << 32);
    EXPECT_EQ(bar0 & 0xF, BAR_MEMORY_64);
    EXPECT_GE(bar0 & ~u64 { 0xF }, test_windows().mmio64_base) << "64-bit BAR in the 64-bit window";
    u32 const bar2 = ecam_read(root, slot, BAR0 + 8);
    EXPECT_EQ(bar2 & 0xF, BAR_PREFETCHABLE);
    EXPECT_GE(bar2 & ~0xFu, test_windows().mmio32_base);
    EXPECT_EQ((bar2 & ~0xFu) % 4096, 0u);
    u32 const bar3 = ecam_read(root, slot, BAR0 + 12);
    EXPECT_EQ(bar3 & 0x3, BAR_IO_SPACE);
    EXPECT_GE(bar3 & ~0x3u, 0xC000u);

    // Sizing: write all-ones, read the mask, restore (what Linux's __pci_read_base does).
    ecam_write(root, slot, BAR0, 0xFFFF'FFFF);
    ecam_write(root, slot, BAR0 + 4, 0xFFFF'FFFF);
    EXPECT_EQ(ecam_read(root, slot, BAR0), 0xFFFF'C004u); // 16 KiB, 64-bit.
    EXPECT_EQ(ecam_read(root, slot, BAR0 + 4), 0xFFFF'FFFFu);
    ecam_write(root, slot, BAR0 + 8, 0xFFFF'FFFF);
    EXPECT_EQ(ecam_read(root, slot, BAR0 + 8), 0xFFFF'F008u); // 4 KiB prefetchable.
    ecam_write(root, slot, BAR0 + 12, 0xFFFF'FFFF);
    EXPECT_EQ(ecam_read(root, slot, BAR0 + 12), 0xFFFF'FFE1u); // 32 bytes of I/O.
    ecam_write(root, slot, BAR0 + 16, 0xFFFF'FFFF);
    EXPECT_EQ(ecam_read(root, slot, BAR0 + 16), 0u) << "unimplemented BAR";
    // Byte writes to a BAR are merged and masked the same way.
    ecam_write(root, slot, BAR0 + 8, 0, 4);
    ecam_write(root, slot, BAR0 + 9, 0x3F, 1);
    EXPECT_EQ(ecam_read(root, slot, BAR0 + 8), 0x0000'3008u);
}

TEST_F(Bus0, MemoryBarsDecodeOnlyWhileEnabledAndFollowRelocation)
{
    u32 const bar2 = ecam_read(root, slot, BAR0 + 8) & ~0xFu;
    bool claimed = true;
    mmio_read(root, bar2, &claimed);
    EXPECT_FALSE(claimed) << "memory decode is off after reset";
    EXPECT_FALSE(mmio_write<u32>(root, bar2, 1));
    ecam_write(root, slot, COMMAND, COMMAND_MEMORY, 2);
    EXPECT_EQ(mmio_read(root, bar2 + 0x10, &claimed), 0x5A5A'5A5Au);
    EXPECT_TRUE(claimed);
    ASSERT_EQ(fake.reads.size(), 1u);
    EXPECT_EQ(fake.reads[0], (FakeFunction::Access { 2, 0x10, 4 }));

    // Move the 32-bit BAR; the old address no longer decodes.
    ecam_write(root, slot, BAR0 + 8, 0xD000'0000);
    mmio_read(root, bar2, &claimed);
    EXPECT_FALSE(claimed);
    EXPECT_TRUE(mmio_write<u16>(root, 0xD000'0FFE, 0xBEEF));
    EXPECT_EQ(fake.writes.back(), (FakeFunction::Access { 2, 0xFFE, 2, 0xBEEF }));

    // Move the 64-bit BAR below 4 GiB (a 64-bit BAR may live anywhere in a window).
    ecam_write(root, slot, BAR0, 0xC800'0000);
    ecam_write(root, slot, BAR0 + 4, 0);
    EXPECT_TRUE(mmio_write<u64>(root, 0xC800'0008, 0x1122'3344'5566'7788));
    EXPECT_EQ(fake.writes.back(), (FakeFunction::Access { 0, 8, 8, 0x1122'3344'5566'7788 }));

    // A BAR moved outside every window does not decode (the bridge does not forward there).
    ecam_write(root, slot, BAR0 + 8, 0x8000'0000);
    mmio_read(root, 0x8000'0000, &claimed);
    EXPECT_FALSE(claimed);

    // An access running past the BAR's end is refused, not split.
    ecam_write(root, slot, BAR0 + 8, 0xD000'0000);
    mmio_read<u64>(root, 0xD000'0FFC, &claimed);
    EXPECT_FALSE(claimed);

    ecam_write(root, slot, COMMAND, 0, 2);
    mmio_read(root, 0xD000'0000, &claimed);
    EXPECT_FALSE(claimed);
}

TEST_F(Bus0, IoBarDecodesOnlyWithIoEnable)
{
    u32 const port = ecam_read(root, slot, BAR0 + 12) & ~0x3u;
    u8 value = 0;
    EXPECT_FALSE(root.io_read(port, std::as_writable_bytes(std::span { &value, 1 })));
    ecam_write(root, slot, COMMAND, COMMAND_MEMORY, 2);
    EXPECT_FALSE(root.io_read(port, std::as_writable_bytes(std::span { &value, 1 })));
    ecam_write(root, slot, COMMAND, COMMAND_IO, 2);
    EXPECT_TRUE(root.io_read(port + 3, std::as_writable_bytes(std::span { &value, 1 })));
    EXPECT_EQ(fake.reads.back(), (FakeFunction::Access { 3, 3, 1 }));
    bool claimed = true;
    mmio_read(root, ecam_read(root, slot, BAR0 + 8) & ~0xFu, &claimed);
    EXPECT_FALSE(claimed) << "I/O enable alone does not decode memory BARs";
}

TEST_F(Bus0, CapabilityListWalksFromTheHeaderToTheEnd)
{
    EXPECT_NE(ecam_read(root, slot, STATUS, 2) & STATUS_CAPABILITIES, 0u);
    std::vector<u8> ids;
    u8 next = static_cast<u8>(ecam_read(root, slot, CAPABILITIES_POINTER, 1));
    for (int guard = 0; next != 0 && guard < 48; ++guard) {
        EXPECT_EQ(next % 4, 0);
        EXPECT_GE(next, FIRST_CAPABILITY);
        ids.push_back(static_cast<u8>(ecam_read(root, slot, next, 1)));
        if (ids.back() == 0x09) {
            EXPECT_EQ(ecam_read(root, slot, next + 2, 1), 4u);
            ecam_write(root, slot, static_cast<u16>(next + 2), 0xFFFF'FFFF, 2);
            EXPECT_EQ(ecam_read(root, slot, next + 2, 1), 4u) << "read-only byte";
            EXPECT_EQ(ecam_read(root, slot, next + 3, 1), 0xFFu) << "writable byte";
        }
        next = static_cast<u8>(ecam_read(root, slot, next + 1, 1));
    }
    EXPECT_EQ(ids, (std::vector<u8> { CAP_ID_MSIX, 0x09 }));
    // The host bridge has no capabilities.
    EXPECT_EQ(ecam_read(root, 0, STATUS, 2) & STATUS_CAPABILITIES, 0u);
    EXPECT_EQ(ecam_read(root, 0, CAPABILITIES_POINTER, 1), 0u);
}

TEST_F(Bus0, BusMasterChangesReachTheFunction)
{
    ecam_write(root, slot, COMMAND, COMMAND_MEMORY | COMMAND_BUS_MASTER, 2);
    ecam_write(root, slot, COMMAND, COMMAND_MEMORY | COMMAND_BUS_MASTER, 2);
    ecam_write(root, slot, COMMAND, COMMAND_MEMORY, 2);
    EXPECT_EQ(fake.bus_master, (std::vector<bool> { true, false }));
}

TEST_F(Bus0, DoorbellEventfdFollowsDecodeAndBarMoves)
{
    EXPECT_TRUE(doorbells.live.empty()) << "nothing registered while decode is off";
    ecam_write(root, slot, BAR0, 0xC800'0000);
    ecam_write(root, slot, BAR0 + 4, 0);
    ecam_write(root, slot, COMMAND, COMMAND_MEMORY, 2);
    ASSERT_EQ(doorbells.live.size(), 1u);
    EXPECT_EQ(doorbells.live[0], (RecordingIoEvents::Entry { false, 0xC800'1000, 4, 77 }));
    // Sizing with decode on moves the BAR out of the window: unregistered, then back.
    ecam_write(root, slot, BAR0, 0xFFFF'FFFF);
    EXPECT_TRUE(doorbells.live.empty());
    ecam_write(root, slot, BAR0, 0xC900'0000);
    ASSERT_EQ(doorbells.live.size(), 1u);
    EXPECT_EQ(doorbells.live[0].address, 0xC900'1000u);
    ecam_write(root, slot, COMMAND, 0, 2);
    EXPECT_TRUE(doorbells.live.empty());
    EXPECT_EQ(doorbells.adds, doorbells.removes + 0);
}

TEST(PciRootLimits, BusFillsUpAndWindowsRunOut)
{
    RecordingMsi msi;
    PciWindows small = test_windows();
    small.mmio64_size = 0;
    small.mmio32_size = 64 * 1024; // Room for two fake functions (16 KiB + 4 KiB each, aligned).
    PciRoot root { small, msi, nullptr };
    std::vector<std::unique_ptr<FakeFunction>> fakes;
    for (int i = 0; i < 2; ++i) {
        fakes.push_back(std::make_unique<FakeFunction>());
        ASSERT_TRUE(root.add(*fakes.back()).has_value());
    }
    fakes.push_back(std::make_unique<FakeFunction>());
    EXPECT_FALSE(root.add(*fakes.back()).has_value());

    PciRoot big { test_windows(), msi, nullptr };
    for (int i = 1; i < DEVICES_PER_BUS; ++i) {
        fakes.push_back(std::make_unique<FakeFunction>());
        ASSERT_EQ(big.add(*fakes.back()).value(), i);
    }
    fakes.push_back(std::make_unique<FakeFunction>());
    EXPECT_FALSE(big.add(*fakes.back()).has_value());
}

TEST(PciRootLimits, HostileConfigTrafficNeverEscapes)
{
    // Every offset of the ECAM window at every width, reads and all-ones writes: no crash,
    // no write reaching a read-only identity field.
    RecordingMsi msi;
    RecordingIoEvents doorbells;
    PciRoot root { test_windows(), msi, &doorbells };
    FakeFunction fake;
    u8 const slot = root.add(fake).value();
    for (u64 offset = 0; offset < ECAM_BUS_BYTES; offset += 0x7F) {
        for (std::size_t size : { 1, 2, 4, 8 }) {
            u64 data = ~u64 { 0 };
            root.ecam_write(offset, std::as_bytes(std::span { &data, 1 }).first(size));
            root.ecam_read(offset, std::as_writable_bytes(std::span { &data, 1 }).first(size));
        }
    }
    for (u64 port = 0; port < 8; ++port) {
        u32 data = 0xFFFF'FFFF;
        root.config_port_write(port, std::as_bytes(std::span { &data, 1 }).first(port % 4 == 0 ? 4 : 1));
        root.config_port_read(port, std::as_writable_bytes(std::span { &data, 1 }).first(1));
    }
    EXPECT_EQ(ecam_read(root, slot, VENDOR_ID), 0x5678'1234u);
    EXPECT_EQ(ecam_read(root, 0, VENDOR_ID), 0x0008'1B36u);
    EXPECT_TRUE(fake.reads.empty());
}

} // namespace

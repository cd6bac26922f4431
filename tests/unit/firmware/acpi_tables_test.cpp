// SPDX-License-Identifier: MIT
#include "firmware/acpi/acpi_tables.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "firmware/acpi/acpi_spec.hpp"
#include "firmware/layout.hpp"
#include "test_memory.hpp"

using namespace vmm;
using namespace vmm::firmware;
using namespace vmm::firmware::acpi;

namespace {

template<Wire T>
T struct_at(std::vector<std::byte> const& bytes, std::size_t offset = 0)
{
    EXPECT_LE(offset + sizeof(T), bytes.size());
    T value;
    std::memcpy(&value, bytes.data() + offset, sizeof(T));
    return value;
}

bool contains(std::vector<std::byte> const& haystack, std::vector<std::byte> const& needle)
{
    return std::ranges::search(haystack, needle).begin() != haystack.end();
}

std::vector<std::byte> ascii(std::string_view text)
{
    auto bytes = std::as_bytes(std::span { text.data(), text.size() });
    return { bytes.begin(), bytes.end() };
}

// Reads a whole table from guest memory using the length in its header.
std::vector<std::byte> table_at(firmware::test::FakeGuestMemory const& ram, u64 gpa)
{
    auto header = ram.read<TableHeader>(gpa);
    return ram.read_bytes(gpa, header.length);
}

} // namespace

TEST(AcpiTables, EveryTableChecksumSumsToZero)
{
    auto ram = firmware::test::guest_ram();
    u64 rsdp_gpa = write_acpi_tables(ram.memory(), { .vcpus = 4, .vmbus = true }).value();
    EXPECT_EQ(rsdp_gpa, ACPI_RSDP_GPA);

    auto rsdp = ram.read<Rsdp>(rsdp_gpa);
    auto rsdp_bytes = ram.read_bytes(rsdp_gpa, sizeof(Rsdp));
    EXPECT_EQ(std::string_view(rsdp.signature.data(), 8), "RSD PTR ");
    EXPECT_EQ(rsdp.revision, 2);
    EXPECT_EQ(acpi_checksum(std::span { rsdp_bytes }.first(RSDP_CHECKSUM_LENGTH)), 0);
    EXPECT_EQ(acpi_checksum(rsdp_bytes), 0);

    auto xsdt = table_at(ram, rsdp.xsdt_physical_address);
    EXPECT_EQ(acpi_checksum(xsdt), 0);
    ASSERT_EQ(xsdt.size(), sizeof(TableHeader) + 2 * sizeof(u64));
    std::vector<std::string> signatures;
    for (std::size_t i = 0; i < 2; ++i) {
        auto table = table_at(ram, struct_at<u64>(xsdt, sizeof(TableHeader) + i * 8));
        EXPECT_EQ(acpi_checksum(table), 0);
        signatures.emplace_back(reinterpret_cast<char const*>(table.data()), 4); // Signature is ASCII.
        if (signatures.back() == "FACP") {
            auto dsdt = table_at(ram, struct_at<Fadt>(table).x_dsdt);
            EXPECT_EQ(acpi_checksum(dsdt), 0);
            EXPECT_EQ(std::string_view(reinterpret_cast<char const*>(dsdt.data()), 4), "DSDT");
        }
    }
    EXPECT_EQ(signatures, (std::vector<std::string> { "FACP", "APIC" }));
}

TEST(AcpiTables, TablesStayInsideTheBiosAreaAndRsdpIsScannable)
{
    auto ram = firmware::test::guest_ram();
    u64 rsdp_gpa = write_acpi_tables(ram.memory(), { .vcpus = MAX_VCPUS, .vmbus = true }).value();
    // Linux scans 0xE0000..0xFFFFF on 16-byte boundaries (acpi_find_root_pointer()).
    EXPECT_GE(rsdp_gpa, 0xE0000u);
    EXPECT_EQ(rsdp_gpa % 16, 0u);
    auto rsdp = ram.read<Rsdp>(rsdp_gpa);
    auto xsdt = table_at(ram, rsdp.xsdt_physical_address);
    EXPECT_LE(rsdp.xsdt_physical_address + xsdt.size(), ACPI_TABLES_END);
}

TEST(AcpiTables, ABiosAreaScanLikeLinuxFindsTheRsdp)
{
    auto ram = firmware::test::guest_ram();
    u64 rsdp_gpa = write_acpi_tables(ram.memory(), { .vcpus = 2, .vmbus = false }).value();
    // acpi_find_root_pointer(): 16-byte steps over 0xE0000..0xFFFFF, signature + checksum.
    std::optional<u64> found;
    auto area = ram.read_bytes(0xE0000, 0x20000);
    for (std::size_t offset = 0; offset + sizeof(Rsdp) <= area.size() && !found; offset += 16) {
        if (std::memcmp(area.data() + offset, "RSD PTR ", 8) == 0
            && acpi_checksum(std::span { area }.subspan(offset, RSDP_CHECKSUM_LENGTH)) == 0)
            found = 0xE0000 + offset;
    }
    EXPECT_EQ(found, rsdp_gpa);
}

TEST(AcpiTables, VcpuCountOutsideOneTo4096IsRefused)
{
    auto ram = firmware::test::guest_ram();
    EXPECT_EQ(write_acpi_tables(ram.memory(), { .vcpus = 0, .vmbus = false }).error().code(), Errc::Config);
    EXPECT_EQ(write_acpi_tables(ram.memory(), { .vcpus = MAX_VCPUS + 1, .vmbus = false }).error().code(), Errc::Config);
}

TEST(Fadt, IsHardwareReducedWithSleepAndResetRegistersAtTheLayoutPorts)
{
    auto bytes = build_fadt(0xE0100);
    ASSERT_EQ(bytes.size(), sizeof(Fadt));
    EXPECT_EQ(acpi_checksum(bytes), 0);
    auto fadt = struct_at<Fadt>(bytes);
    EXPECT_EQ(std::string_view(fadt.header.signature.data(), 4), "FACP");
    EXPECT_EQ(fadt.header.revision, 6);
    EXPECT_EQ(fadt.header.length, 276u);
    EXPECT_TRUE(fadt.flags & (1u << 20)) << "HW_REDUCED_ACPI";
    EXPECT_TRUE(fadt.flags & (1u << 10)) << "RESET_REG_SUP";
    EXPECT_EQ(fadt.x_dsdt, 0xE0100u);
    EXPECT_EQ(fadt.dsdt, 0u);
    EXPECT_EQ(fadt.facs, 0u);
    EXPECT_EQ(fadt.x_facs, 0u);
    EXPECT_EQ(fadt.sci_interrupt, 0);
    EXPECT_EQ(fadt.smi_command, 0u);

    auto check_io = [](GenericAddress gas, u64 port) {
        EXPECT_EQ(gas.space_id, 1) << port;
        EXPECT_EQ(gas.bit_width, 8) << port;
        EXPECT_EQ(gas.bit_offset, 0) << port;
        EXPECT_EQ(gas.access_width, 1) << port;
        EXPECT_EQ(gas.address, port);
    };
    check_io(fadt.sleep_control, ACPI_SLEEP_CONTROL_PORT);
    check_io(fadt.sleep_status, ACPI_SLEEP_STATUS_PORT);
    check_io(fadt.reset_register, ACPI_RESET_PORT);
    EXPECT_EQ(fadt.reset_value, ACPI_RESET_VALUE);
    // No legacy PM blocks at all.
    // Copies: members of a packed struct cannot be bound to references.
    auto pm_blocks = fadt.pm_blocks;
    for (u32 block : pm_blocks)
        EXPECT_EQ(block, 0u);
    auto x_pm_blocks = fadt.x_pm_blocks;
    for (auto const& gas : x_pm_blocks)
        EXPECT_EQ(gas.address, u64 { 0 });
}

TEST(Fadt, PoweroffValueMatchesSlpTypShiftedWithSlpEn)
{
    EXPECT_EQ(ACPI_S5_SLEEP_CONTROL_VALUE, (ACPI_S5_SLP_TYP << 2) | 0x20);
}

namespace {

struct MadtCounts {
    u32 lapic = 0, x2apic = 0, ioapic = 0, other = 0;
    std::vector<u32> apic_ids;
};

MadtCounts parse_madt(std::vector<std::byte> const& madt)
{
    MadtCounts counts;
    std::size_t offset = sizeof(MadtHeader);
    while (offset + 2 <= madt.size()) {
        u8 type = std::to_integer<u8>(madt[offset]);
        u8 length = std::to_integer<u8>(madt[offset + 1]);
        if (length < 2)
            break;
        if (type == ACPI_MADT_TYPE_LOCAL_APIC) {
            auto entry = struct_at<MadtLocalApic>(madt, offset);
            EXPECT_EQ(entry.length, 8);
            EXPECT_EQ(entry.lapic_flags, ACPI_MADT_ENABLED);
            counts.apic_ids.push_back(entry.id);
            ++counts.lapic;
        } else if (type == ACPI_MADT_TYPE_LOCAL_X2APIC) {
            auto entry = struct_at<MadtLocalX2Apic>(madt, offset);
            EXPECT_EQ(entry.length, 16);
            EXPECT_EQ(entry.lapic_flags, ACPI_MADT_ENABLED);
            EXPECT_EQ(entry.uid, entry.local_apic_id);
            counts.apic_ids.push_back(entry.local_apic_id);
            ++counts.x2apic;
        } else if (type == ACPI_MADT_TYPE_IO_APIC) {
            auto entry = struct_at<MadtIoApic>(madt, offset);
            EXPECT_EQ(entry.address, IOAPIC_ADDRESS);
            EXPECT_EQ(entry.global_irq_base, 0u);
            ++counts.ioapic;
        } else {
            ++counts.other;
        }
        offset += length;
    }
    EXPECT_EQ(offset, madt.size());
    return counts;
}

} // namespace

TEST(Madt, HasOneEnabledLocalApicPerVcpuAndOneIoApic)
{
    auto madt = build_madt({ .vcpus = 8, .vmbus = false });
    EXPECT_EQ(acpi_checksum(madt), 0);
    auto header = struct_at<MadtHeader>(madt);
    EXPECT_EQ(header.address, LAPIC_ADDRESS);
    EXPECT_EQ(header.flags, 0u);
    auto counts = parse_madt(madt);
    EXPECT_EQ(counts.lapic, 8u);
    EXPECT_EQ(counts.x2apic, 0u);
    EXPECT_EQ(counts.ioapic, 1u);
    EXPECT_EQ(counts.other, 0u) << "no interrupt source overrides";
    EXPECT_EQ(counts.apic_ids, (std::vector<u32> { 0, 1, 2, 3, 4, 5, 6, 7 }));
}

TEST(Madt, VcpusFrom255OnGetX2ApicEntriesAndNoneIsListedTwice)
{
    auto madt = build_madt({ .vcpus = 300, .vmbus = false });
    EXPECT_EQ(acpi_checksum(madt), 0);
    auto counts = parse_madt(madt);
    EXPECT_EQ(counts.lapic, 255u);
    EXPECT_EQ(counts.x2apic, 45u);
    EXPECT_EQ(counts.lapic + counts.x2apic, 300u);
    auto ids = counts.apic_ids;
    std::ranges::sort(ids);
    EXPECT_EQ(std::ranges::adjacent_find(ids), ids.end());
    EXPECT_EQ(ids.back(), 299u);
}

TEST(Dsdt, HasCom1WithPnp0501AndItsResourcesAndS5ButNoS4)
{
    auto dsdt = build_dsdt({ .vcpus = 1, .vmbus = false });
    EXPECT_EQ(acpi_checksum(dsdt), 0);
    EXPECT_EQ(struct_at<TableHeader>(dsdt).revision, 2);
    EXPECT_TRUE(contains(dsdt, ascii("COM1")));
    // Name(_HID, EisaId("PNP0501")).
    EXPECT_TRUE(contains(dsdt, firmware::test::bytes_of({ 0x08, '_', 'H', 'I', 'D', 0x0C, 0x41, 0xD0, 0x05, 0x01 })));
    // IO(Decode16, 0x3F8, 0x3F8, 0, 8) and IRQNoFlags(){4}.
    EXPECT_TRUE(contains(dsdt, firmware::test::bytes_of({ 0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x00, 0x08, 0x22, 0x10, 0x00 })));
    EXPECT_TRUE(contains(dsdt, firmware::test::bytes_of({ 0x08, '_', 'S', '5', '_', 0x12 })));
    EXPECT_FALSE(contains(dsdt, ascii("_S4_")));
    EXPECT_FALSE(contains(dsdt, ascii("VMBS")));
}

TEST(Dsdt, VmbusDeviceAppearsOnlyWhenRequested)
{
    auto dsdt = build_dsdt({ .vcpus = 1, .vmbus = true });
    EXPECT_EQ(acpi_checksum(dsdt), 0);
    EXPECT_TRUE(contains(dsdt, ascii("VMBS")));
    EXPECT_TRUE(contains(dsdt, firmware::test::bytes_of({ 0x08, '_', 'H', 'I', 'D', 0x0D, 'V', 'M', 'B', 'u', 's', 0x00 })));
    // Name(_CRS, ResourceTemplate(){}) right after the device's _STA.
    EXPECT_TRUE(contains(dsdt, firmware::test::bytes_of({ 0x08, '_', 'C', 'R', 'S', 0x11, 0x05, 0x0A, 0x02, 0x79, 0x00 })));
    EXPECT_FALSE(contains(dsdt, ascii("_S4_")));
}

TEST(Mcfg, NamesOneEcamRangeForSegment0Bus0AndIsListedOnlyWithPci)
{
    auto mcfg = build_mcfg();
    EXPECT_EQ(acpi_checksum(mcfg), 0);
    ASSERT_EQ(mcfg.size(), sizeof(TableHeader) + 8 + sizeof(McfgAllocation));
    EXPECT_EQ(std::string_view(reinterpret_cast<char const*>(mcfg.data()), 4), "MCFG");
    auto const allocation = struct_at<McfgAllocation>(mcfg, sizeof(TableHeader) + 8);
    EXPECT_EQ(allocation.address, PCI_ECAM_BASE);
    EXPECT_EQ(allocation.pci_segment, 0);
    EXPECT_EQ(allocation.start_bus, 0);
    EXPECT_EQ(allocation.end_bus, 0);

    for (bool pci : { false, true }) {
        auto ram = firmware::test::guest_ram();
        u64 rsdp_gpa = write_acpi_tables(ram.memory(), { .vcpus = 2, .vmbus = true, .pci = pci }).value();
        auto xsdt = table_at(ram, ram.read<Rsdp>(rsdp_gpa).xsdt_physical_address);
        std::size_t const tables = (xsdt.size() - sizeof(TableHeader)) / 8;
        EXPECT_EQ(tables, pci ? 3u : 2u);
        auto last = table_at(ram, struct_at<u64>(xsdt, sizeof(TableHeader) + (tables - 1) * 8));
        EXPECT_EQ(acpi_checksum(last), 0);
        EXPECT_EQ(std::string_view(reinterpret_cast<char const*>(last.data()), 4), pci ? "MCFG" : "APIC");
    }
}

TEST(Dsdt, PciRootAndEcamReservationAppearOnlyWithPci)
{
    auto without = build_dsdt({ .vcpus = 1, .vmbus = true });
    EXPECT_FALSE(contains(without, ascii("PCI0")));
    auto dsdt = build_dsdt({ .vcpus = 1, .vmbus = true, .pci = true });
    EXPECT_EQ(acpi_checksum(dsdt), 0);
    EXPECT_TRUE(contains(dsdt, ascii("PCI0")));
    EXPECT_TRUE(contains(dsdt, ascii("MRES")));
    // Name(_HID, EisaId("PNP0A08")) = 0x080AD041 and _CID PNP0A03.
    EXPECT_TRUE(contains(dsdt, firmware::test::bytes_of({ 0x08, '_', 'H', 'I', 'D', 0x0C, 0x41, 0xD0, 0x0A, 0x08 })));
    EXPECT_TRUE(contains(dsdt, firmware::test::bytes_of({ 0x08, '_', 'C', 'I', 'D', 0x0C, 0x41, 0xD0, 0x0A, 0x03 })));
    // Memory32Fixed(ReadWrite, 0xE0000000, 0x100000).
    EXPECT_TRUE(contains(dsdt, firmware::test::bytes_of({ 0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xE0, 0x00, 0x00, 0x10, 0x00 })));
    EXPECT_FALSE(contains(dsdt, ascii("_PRT")));
}

// SPDX-License-Identifier: MIT
// FADT, MADT, XSDT, RSDP and their placement in guest memory (the DSDT is in dsdt.cpp).
#include "firmware/acpi/acpi_tables.hpp"

#include <algorithm>
#include <cstring>

#include "firmware/acpi/acpi_spec.hpp"
#include "firmware/acpi/table_builder.hpp"
#include "firmware/layout.hpp"

namespace vmm::firmware::acpi {

namespace {

constexpr u8 XSDT_REVISION = 1;
constexpr u8 RSDP_REVISION = 2;
// Local APIC structures carry 8-bit IDs and 0xFF is the xAPIC broadcast ID: IDs from 255 on
// must use Local x2APIC structures (ACPI 6.5 §5.2.12.12; Linux acpi_parse_x2apic()).
constexpr u32 FIRST_X2APIC_ONLY_ID = 0xFF;
// Tables start on 16-byte boundaries (the RSDP scan needs it; the others just look tidy).
constexpr u64 TABLE_ALIGNMENT = 16;

GenericAddress io_register(u16 port)
{
    return GenericAddress {
        .space_id = ACPI_ADR_SPACE_SYSTEM_IO,
        .bit_width = 8,
        .bit_offset = 0,
        .access_width = ACPI_ACCESS_BYTE,
        .address = port,
    };
}

template<Wire T>
std::vector<std::byte> sealed_bytes(T const& table)
{
    auto bytes = wire_bytes(table);
    std::vector<std::byte> out(bytes.begin(), bytes.end());
    seal_table(out);
    return out;
}

} // namespace

std::vector<std::byte> build_fadt(std::uint64_t dsdt_gpa)
{
    // Hardware-reduced ACPI (ACPI 6.5 §4.1): no PM1/GPE blocks, PM timer, FACS, SMI command
    // or SCI. Linux skips SCI setup in this mode (arch/x86/kernel/acpi/boot.c
    // acpi_process_madt(), drivers/acpi/acpica/evevent.c) and powers off through the sleep
    // control register (hwxfsleep.c -> acpi_hw_extended_sleep()).
    Fadt fadt {};
    fadt.header = table_header("FACP", FADT_REVISION);
    fadt.flags = ACPI_FADT_HW_REDUCED | ACPI_FADT_RESET_REGISTER;
    // A CMOS RTC exists (vmm/devices/cmos_rtc.*): NO_CMOS_RTC stays clear so Linux registers
    // its RTC device (arch/x86/kernel/acpi/boot.c:1049-1052), and CENTURY names its century
    // byte (drivers/rtc/rtc-mc146818-lib.c reads it when FADT revision >= 2).
    fadt.boot_flags = ACPI_FADT_NO_VGA;
    fadt.century = CMOS_CENTURY_INDEX;
    fadt.reset_register = io_register(ACPI_RESET_PORT);
    fadt.reset_value = ACPI_RESET_VALUE;
    fadt.minor_revision = FADT_MINOR_REVISION;
    // The 32-bit DSDT field stays 0 so tbfadt.c sees no 32/64-bit mismatch.
    fadt.x_dsdt = dsdt_gpa;
    // Linux only offers S5 when both registers exist (drivers/acpi/sleep.c
    // acpi_sleep_state_supported()).
    fadt.sleep_control = io_register(ACPI_SLEEP_CONTROL_PORT);
    fadt.sleep_status = io_register(ACPI_SLEEP_STATUS_PORT);
    return sealed_bytes(fadt);
}

std::vector<std::byte> build_madt(AcpiConfig const& config)
{
    TableBuilder table { "APIC", MADT_REVISION };
    // Flags 0: no PCAT_COMPAT, there are no 8259s (the platform is hardware-reduced).
    table.append(wire_bytes(u32 { static_cast<u32>(LAPIC_ADDRESS) }));
    table.append(wire_bytes(u32 { 0 }));
    // One enabled processor per vCPU, each in exactly one structure: a CPU listed twice
    // (LAPIC and x2APIC) would be counted twice by generic_processor_info(). x2APIC-mode
    // guests accept Local APIC structures for IDs below 255.
    for (u32 vcpu = 0; vcpu < config.vcpus; ++vcpu) {
        if (vcpu < FIRST_X2APIC_ONLY_ID) {
            table.append_obj(MadtLocalApic {
                .type = ACPI_MADT_TYPE_LOCAL_APIC,
                .length = sizeof(MadtLocalApic),
                .processor_id = static_cast<u8>(vcpu),
                .id = static_cast<u8>(vcpu),
                .lapic_flags = ACPI_MADT_ENABLED,
            });
        } else {
            table.append_obj(MadtLocalX2Apic {
                .type = ACPI_MADT_TYPE_LOCAL_X2APIC,
                .length = sizeof(MadtLocalX2Apic),
                .reserved = 0,
                .local_apic_id = vcpu,
                .lapic_flags = ACPI_MADT_ENABLED,
                .uid = vcpu,
            });
        }
    }
    // No Interrupt Source Overrides: ISA IRQs map 1:1 to GSIs (COM1 IRQ 4 = GSI 4, edge,
    // active high), and the hardware-reduced platform has neither PIT on IRQ 0 nor an SCI.
    table.append_obj(MadtIoApic {
        .type = ACPI_MADT_TYPE_IO_APIC,
        .length = sizeof(MadtIoApic),
        .id = IOAPIC_ID,
        .reserved = 0,
        .address = static_cast<u32>(IOAPIC_ADDRESS),
        .global_irq_base = 0,
    });
    return table.finish();
}

std::vector<std::byte> build_mcfg()
{
    // One allocation: segment 0, bus 0 only (PciRoot has one bus), at the ECAM base.
    TableBuilder table { "MCFG", MCFG_REVISION };
    table.append(wire_bytes(u64 { 0 })); // Reserved.
    table.append_obj(McfgAllocation {
        .address = PCI_ECAM_BASE,
        .pci_segment = 0,
        .start_bus = 0,
        .end_bus = static_cast<u8>(PCI_ECAM_SIZE / (1 * MIB) - 1),
        .reserved = 0,
    });
    return table.finish();
}

std::vector<std::byte> build_xsdt(std::span<std::uint64_t const> table_gpas)
{
    TableBuilder table { "XSDT", XSDT_REVISION };
    for (u64 gpa : table_gpas)
        table.append(wire_bytes(gpa));
    return table.finish();
}

std::vector<std::byte> build_rsdp(std::uint64_t xsdt_gpa)
{
    Rsdp rsdp {
        .signature = { 'R', 'S', 'D', ' ', 'P', 'T', 'R', ' ' },
        .checksum = 0,
        .oem_id = { 'M', 'C', 'R', 'V', 'M', 'M' },
        .revision = RSDP_REVISION,
        .rsdt_physical_address = 0, // No RSDT: revision 2 guests use the XSDT.
        .length = sizeof(Rsdp),
        .xsdt_physical_address = xsdt_gpa,
        .extended_checksum = 0,
        .reserved = {},
    };
    auto bytes = wire_bytes(rsdp);
    rsdp.checksum = static_cast<u8>(-acpi_checksum(bytes.first(RSDP_CHECKSUM_LENGTH)));
    rsdp.extended_checksum = static_cast<u8>(-acpi_checksum(wire_bytes(rsdp)));
    bytes = wire_bytes(rsdp);
    return { bytes.begin(), bytes.end() };
}

Result<std::uint64_t> write_acpi_tables(mem::GuestMemory const& memory, AcpiConfig const& config)
{
    if (config.vcpus == 0 || config.vcpus > MAX_VCPUS)
        return fail(Errc::Config, "ACPI: vCPU count must be 1..4096", config.vcpus);

    u64 next = ACPI_TABLES_GPA;
    // Places one table at the next aligned address inside the BIOS area.
    auto place = [&](std::vector<std::byte> const& table) -> Result<u64> {
        u64 gpa = next;
        if (table.size() > ACPI_TABLES_END - gpa)
            return fail(Errc::OutOfRange, "ACPI tables overflow the BIOS area", table.size());
        VMM_TRY(memory.write(mem::Gpa { gpa }, table));
        next = (gpa + table.size() + TABLE_ALIGNMENT - 1) & ~(TABLE_ALIGNMENT - 1);
        return gpa;
    };

    u64 dsdt = VMM_TRY(place(build_dsdt(config)));
    u64 fadt = VMM_TRY(place(build_fadt(dsdt)));
    u64 madt = VMM_TRY(place(build_madt(config)));
    std::vector<u64> tables { fadt, madt };
    if (config.pci)
        tables.push_back(VMM_TRY(place(build_mcfg())));
    u64 xsdt = VMM_TRY(place(build_xsdt(tables)));
    VMM_TRY(memory.write(mem::Gpa { ACPI_RSDP_GPA }, build_rsdp(xsdt)));
    return ACPI_RSDP_GPA;
}

} // namespace vmm::firmware::acpi

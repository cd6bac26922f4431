// SPDX-License-Identifier: MIT
// Wire layouts of the ACPI tables microvmm builds: RSDP, table header, GAS, FADT, MADT and its
// Local APIC / I/O APIC / Local x2APIC entries.
//
// Spec: ACPI 6.5 §5.2 (§5.2.5.3 RSDP, §5.2.6 header, §5.2.3.2 GAS, §5.2.9 FADT, §5.2.12 MADT);
//       Linux include/acpi/actbl.h, actbl2.h (field names follow ACPICA).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "base/types.hpp"
#include "base/wire.hpp"

namespace vmm::firmware::acpi {

struct [[gnu::packed]] Rsdp {
    std::array<char, 8> signature;   //  0 "RSD PTR "
    u8 checksum;                     //  8 over bytes 0..19
    std::array<char, 6> oem_id;      //  9
    u8 revision;                     // 15 (2 = ACPI 2.0+, has the XSDT fields)
    u32 rsdt_physical_address;       // 16
    u32 length;                      // 20
    u64 xsdt_physical_address;       // 24
    u8 extended_checksum;            // 32 over all 36 bytes
    std::array<u8, 3> reserved;      // 33
};
static_assert(sizeof(Rsdp) == 36 && Wire<Rsdp>);
inline constexpr std::size_t RSDP_CHECKSUM_LENGTH = 20; // ACPI_RSDP_CHECKSUM_LENGTH.

struct TableHeader {
    std::array<char, 4> signature;    //  0
    u32 length;                       //  4
    u8 revision;                      //  8
    u8 checksum;                      //  9
    std::array<char, 6> oem_id;       // 10
    std::array<char, 8> oem_table_id; // 16
    u32 oem_revision;                 // 24
    std::array<char, 4> asl_compiler_id; // 28
    u32 asl_compiler_revision;        // 32
};
static_assert(sizeof(TableHeader) == 36 && Wire<TableHeader>);
inline constexpr std::size_t TABLE_CHECKSUM_OFFSET = offsetof(TableHeader, checksum);

// Generic Address Structure.
struct [[gnu::packed]] GenericAddress {
    u8 space_id;     // 0: 0 = SystemMemory, 1 = SystemIO
    u8 bit_width;    // 1
    u8 bit_offset;   // 2
    u8 access_width; // 3: 1 = byte access
    u64 address;     // 4
};
static_assert(sizeof(GenericAddress) == 12 && Wire<GenericAddress>);
inline constexpr u8 ACPI_ADR_SPACE_SYSTEM_IO = 1;
inline constexpr u8 ACPI_ACCESS_BYTE = 1;

struct [[gnu::packed]] Fadt {
    TableHeader header;                   //   0
    u32 facs;                             //  36
    u32 dsdt;                             //  40
    u8 model;                             //  44
    u8 preferred_profile;                 //  45
    u16 sci_interrupt;                    //  46
    u32 smi_command;                      //  48
    u8 acpi_enable;                       //  52
    u8 acpi_disable;                      //  53
    u8 s4_bios_request;                   //  54
    u8 pstate_control;                    //  55
    std::array<u32, 8> pm_blocks;         //  56 pm1a/b event, pm1a/b control, pm2, timer, gpe0/1
    std::array<u8, 7> pm_block_lengths;   //  88 six block lengths, then gpe1_base
    u8 cst_control;                       //  95
    u16 c2_latency;                       //  96
    u16 c3_latency;                       //  98
    u16 flush_size;                       // 100
    u16 flush_stride;                     // 102
    u8 duty_offset;                       // 104
    u8 duty_width;                        // 105
    u8 day_alarm;                         // 106
    u8 month_alarm;                       // 107
    u8 century;                           // 108
    u16 boot_flags;                       // 109 IAPC_BOOT_ARCH
    u8 reserved;                          // 111
    u32 flags;                            // 112
    GenericAddress reset_register;        // 116
    u8 reset_value;                       // 128
    u16 arm_boot_flags;                   // 129
    u8 minor_revision;                    // 131
    u64 x_facs;                           // 132
    u64 x_dsdt;                           // 140
    std::array<GenericAddress, 8> x_pm_blocks; // 148 x_pm1a_event .. x_gpe1
    GenericAddress sleep_control;         // 244
    GenericAddress sleep_status;          // 256
    u64 hypervisor_id;                    // 268
};
static_assert(sizeof(Fadt) == 276 && Wire<Fadt>);
static_assert(offsetof(Fadt, flags) == 112 && offsetof(Fadt, reset_register) == 116);
static_assert(offsetof(Fadt, x_dsdt) == 140 && offsetof(Fadt, sleep_control) == 244);
inline constexpr u8 FADT_REVISION = 6;
inline constexpr u8 FADT_MINOR_REVISION = 5; // ACPI 6.5.
// FADT flags (ACPI 6.5 Table 5.10; actbl.h ACPI_FADT_*).
inline constexpr u32 ACPI_FADT_RESET_REGISTER = 1u << 10;
inline constexpr u32 ACPI_FADT_HW_REDUCED = 1u << 20;
// IA-PC boot architecture flags (ACPI 6.5 Table 5.11). 8042 and LEGACY_DEVICES stay clear:
// there is neither a keyboard controller nor ISA PnP BIOS to probe.
inline constexpr u16 ACPI_FADT_NO_VGA = 1u << 2;
inline constexpr u16 ACPI_FADT_NO_CMOS_RTC = 1u << 5;

struct MadtHeader {
    TableHeader header; //  0
    u32 address;        // 36 local APIC address
    u32 flags;          // 40 (bit 0 PCAT_COMPAT: dual 8259s present; we have none)
};
static_assert(sizeof(MadtHeader) == 44 && Wire<MadtHeader>);
// MADT revision 5 (ACPI 6.3); every entry type used here exists since ACPI 4.0 and Linux
// ignores the revision.
inline constexpr u8 MADT_REVISION = 5;

// MADT entry types (ACPI 6.5 Table 5.21) and the Local APIC flags (Table 5.23).
inline constexpr u8 ACPI_MADT_TYPE_LOCAL_APIC = 0;
inline constexpr u8 ACPI_MADT_TYPE_IO_APIC = 1;
inline constexpr u8 ACPI_MADT_TYPE_LOCAL_X2APIC = 9;
inline constexpr u32 ACPI_MADT_ENABLED = 1;

struct MadtLocalApic {
    u8 type;           // 0
    u8 length;         // 1 = 8
    u8 processor_id;   // 2 ACPI processor UID
    u8 id;             // 3 APIC ID
    u32 lapic_flags;   // 4
};
static_assert(sizeof(MadtLocalApic) == 8 && Wire<MadtLocalApic>);

struct MadtIoApic {
    u8 type;           // 0
    u8 length;         // 1 = 12
    u8 id;             // 2
    u8 reserved;       // 3
    u32 address;       // 4
    u32 global_irq_base; // 8
};
static_assert(sizeof(MadtIoApic) == 12 && Wire<MadtIoApic>);

struct MadtLocalX2Apic {
    u8 type;           //  0
    u8 length;         //  1 = 16
    u16 reserved;      //  2
    u32 local_apic_id; //  4
    u32 lapic_flags;   //  8
    u32 uid;           // 12
};
static_assert(sizeof(MadtLocalX2Apic) == 16 && Wire<MadtLocalX2Apic>);

// MCFG (PCI Firmware Specification 3.2 §4.1.2; Linux include/acpi/actbl1.h acpi_table_mcfg):
// the header, 8 reserved bytes, then one allocation per ECAM range.
inline constexpr u8 MCFG_REVISION = 1;
struct McfgAllocation {
    u64 address;       //  0: ECAM base of bus start_bus.
    u16 pci_segment;   //  8
    u8 start_bus;      // 10
    u8 end_bus;        // 11
    u32 reserved;      // 12
};
static_assert(sizeof(McfgAllocation) == 16 && Wire<McfgAllocation>);

} // namespace vmm::firmware::acpi

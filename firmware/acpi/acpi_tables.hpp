// SPDX-License-Identifier: MIT
// The guest's ACPI tables (RSDP -> XSDT -> FADT (-> DSDT), MADT), built as bytes with valid
// checksums and written into the BIOS area below 1 MiB (layout.hpp).
//
// Spec:    ACPI 6.5 §5.2; Linux 6.1 drivers/acpi/acpica/tbfadt.c, arch/x86/kernel/acpi/boot.c.
// Done:    hardware-reduced FADT with sleep/reset registers, MADT (LAPIC/x2APIC per vCPU,
//          IOAPIC), DSDT (COM1, optional VMBus, \_S5), with PCI: MCFG and the \_SB.PCI0 host
//          bridge (PNP0A08, _CRS windows) plus a PNP0C02 reserving the ECAM.
// Missing: CPU/memory hotplug objects (memory grows through Hyper-V DM hot-add, not ACPI).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "base/types.hpp"
#include "mem/guest_memory.hpp"

namespace vmm::firmware::acpi {

struct AcpiConfig {
    std::uint32_t vcpus; // APIC IDs 0..vcpus-1 (vCPU index == APIC ID == ACPI processor UID).
    bool vmbus;          // Add the \_SB.VMBS device Linux's hv_vmbus binds to.
    bool pci { false };  // Add the MCFG and the \_SB.PCI0 host bridge with its windows (layout.hpp).
};

// Local x2APIC structures carry 32-bit IDs; 4096 bounds the MADT to 64 KiB.
inline constexpr std::uint32_t MAX_VCPUS = 4096;

// Writes DSDT, FADT, MADT, XSDT from ACPI_TABLES_GPA and the RSDP at ACPI_RSDP_GPA; returns
// the RSDP address for hvm_start_info.rsdp_paddr / boot_params.acpi_rsdp_addr.
Result<std::uint64_t> write_acpi_tables(mem::GuestMemory const&, AcpiConfig const&);

// The individual tables (complete, checksummed), for write_acpi_tables() and tests.
std::vector<std::byte> build_dsdt(AcpiConfig const&);
std::vector<std::byte> build_fadt(std::uint64_t dsdt_gpa);
std::vector<std::byte> build_madt(AcpiConfig const&);
std::vector<std::byte> build_mcfg();
std::vector<std::byte> build_xsdt(std::span<std::uint64_t const> table_gpas);
std::vector<std::byte> build_rsdp(std::uint64_t xsdt_gpa);

// Sum of the bytes modulo 256 (a valid table sums to 0).
u8 acpi_checksum(std::span<std::byte const> bytes);

} // namespace vmm::firmware::acpi

namespace vmm::firmware {
// The VMM core calls these as firmware::write_acpi_tables / firmware::AcpiConfig.
using acpi::AcpiConfig;
using acpi::write_acpi_tables;
} // namespace vmm::firmware

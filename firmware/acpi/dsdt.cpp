// SPDX-License-Identifier: MIT
// The DSDT: COM1 (so the serial console works without a PIC or PnP BIOS), the VMBus device
// Linux's hv_vmbus binds to, and \_S5 for poweroff. Deliberately no \_S4: its presence makes
// hv_balloon ignore balloon requests and refuse hot-add (drivers/hv/hv_balloon.c
// balloon_probe() -> hv_is_hibernation_supported(); guest-interface §5, §10.3).
//
// Spec: ACPI 6.5 §6.1 (_HID, _UID), §6.2.2 (_CRS), §6.3.7 (_STA), §7.4.2 (\_Sx);
//       Linux drivers/hv/vmbus_drv.c vmbus_acpi_device_ids ("VMBUS", "VMBus").
#include "firmware/acpi/acpi_tables.hpp"

#include <cstring>

#include "firmware/acpi/acpi_spec.hpp"
#include "firmware/acpi/aml.hpp"
#include "firmware/acpi/table_builder.hpp"
#include "firmware/layout.hpp"

namespace vmm::firmware::acpi {

namespace {

// _STA: present, enabled, shown in UI, functioning (ACPI 6.5 §6.3.7).
constexpr u64 STA_PRESENT_ENABLED_FUNCTIONING = 0x0F;
// DSDT revision 2 makes AML integers 64-bit (ACPI 6.5 §5.2.11.1).
constexpr u8 DSDT_REVISION = 2;

aml::Bytes com1_device()
{
    return aml::device("COM1", {
        aml::name("_HID", aml::eisa_id("PNP0501")), // 16550A-compatible UART.
        aml::name("_UID", aml::integer(0)),
        aml::name("_STA", aml::integer(STA_PRESENT_ENABLED_FUNCTIONING)),
        aml::name("_CRS", aml::resource_template({
            aml::io_port(COM1_PORT, COM1_PORT, 0, COM1_PORT_COUNT),
            aml::irq_no_flags(COM1_IRQ),
        })),
    });
}

aml::Bytes vmbus_device()
{
    // Linux matches the _HID string exactly (ACPICA upper-cases it to "VMBUS"). An empty
    // _CRS: vmbus_acpi_add() needs _CRS to exist, and without ADDRESS descriptors no MMIO
    // pool is set up, which only synthetic video/PCI would use (guest-interface §5).
    return aml::device("VMBS", {
        aml::name("_HID", aml::string("VMBus")),
        aml::name("_UID", aml::integer(0)),
        aml::name("_STA", aml::integer(STA_PRESENT_ENABLED_FUNCTIONING)),
        aml::name("_CRS", aml::resource_template({})),
    });
}

} // namespace

std::vector<std::byte> build_dsdt(AcpiConfig const& config)
{
    std::vector<aml::Bytes> devices { com1_device() };
    if (config.vmbus)
        devices.push_back(vmbus_device());

    TableBuilder table { "DSDT", DSDT_REVISION };
    table.append(aml::scope("\\_SB", devices));
    // \_S5: SLP_TYPa, SLP_TYPb, two reserved zeros (ACPI 6.5 §7.4.2). Linux uses SLP_TYPa
    // with the hardware-reduced sleep control register (hwesleep.c).
    table.append(aml::name("_S5", aml::package({
        aml::integer(ACPI_S5_SLP_TYP),
        aml::integer(ACPI_S5_SLP_TYP),
        aml::integer(0),
        aml::integer(0),
    })));
    return table.finish();
}

} // namespace vmm::firmware::acpi

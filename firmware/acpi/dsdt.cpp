// SPDX-License-Identifier: MIT
// The DSDT: COM1 (so the serial console works without a PIC or PnP BIOS), the CMOS RTC, the VMBus device
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

aml::Bytes rtc_device()
{
    // The CMOS RTC (PNP0B00 = AT-compatible RTC). Linux's PNP layer then owns it and
    // add_rtc_cmos() registers no second one (arch/x86/kernel/rtc.c:135-160); Windows finds
    // its RTC here. No IRQ resource: the VMM raises no RTC interrupts (vmm/devices/cmos_rtc.hpp).
    return aml::device("RTC0", {
        aml::name("_HID", aml::eisa_id("PNP0B00")),
        aml::name("_STA", aml::integer(STA_PRESENT_ENABLED_FUNCTIONING)),
        aml::name("_CRS", aml::resource_template({
            aml::io_port(CMOS_PORT, CMOS_PORT, 1, CMOS_PORT_COUNT),
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

aml::Bytes pci_root_device()
{
    // The host bridge of segment 0, bus 0 (devices/pci/pci_root.hpp). PNP0A08 (PCI Express
    // root) with PNP0A03 as compatible id (PCI Firmware Spec 3.2 §4.1.5). _CRS lists what it
    // forwards: bus 0 only, the config ports (which Linux drops from the windows,
    // arch/x86/pci/acpi.c resource_is_pcicfg_ioport()), the I/O and the 32-bit memory BAR
    // windows. No _PRT: functions have no INTx pin (interrupt pin 0, MSI-X only), and Linux
    // asks _PRT only for a non-zero pin (drivers/acpi/pci_irq.c acpi_pci_irq_enable()).
    // No _OSC: the OS keeps nothing native to negotiate (no hotplug, AER or PME).
    return aml::device("PCI0", {
        aml::name("_HID", aml::eisa_id("PNP0A08")),
        aml::name("_CID", aml::eisa_id("PNP0A03")),
        aml::name("_SEG", aml::integer(0)),
        aml::name("_BBN", aml::integer(0)),
        aml::name("_UID", aml::integer(0)),
        aml::name("_STA", aml::integer(STA_PRESENT_ENABLED_FUNCTIONING)),
        aml::name("_CRS", aml::resource_template({
            aml::word_bus_number(0, 0),
            aml::io_port(PCI_CONFIG_PORT, PCI_CONFIG_PORT, 1, PCI_CONFIG_PORT_COUNT),
            aml::word_io(PCI_IO_BASE, static_cast<u16>(PCI_IO_BASE + PCI_IO_SIZE - 1)),
            aml::dword_memory(static_cast<u32>(PCI_MMIO32_BASE), static_cast<u32>(PCI_MMIO32_BASE + PCI_MMIO32_SIZE - 1)),
        })),
    });
}

aml::Bytes ecam_reservation_device()
{
    // PNP0C02 "motherboard resources" holding the ECAM: Linux checks the MCFG range against
    // these before trusting MMCONFIG late (arch/x86/pci/mmconfig-shared.c is_acpi_reserved()),
    // and Windows expects the same (PCI Firmware Spec 3.2 §4.1.2 note on reserving ECAM).
    return aml::device("MRES", {
        aml::name("_HID", aml::eisa_id("PNP0C02")),
        aml::name("_UID", aml::integer(1)),
        aml::name("_STA", aml::integer(STA_PRESENT_ENABLED_FUNCTIONING)),
        aml::name("_CRS", aml::resource_template({
            aml::memory32_fixed(static_cast<u32>(PCI_ECAM_BASE), static_cast<u32>(PCI_ECAM_SIZE)),
        })),
    });
}

} // namespace

std::vector<std::byte> build_dsdt(AcpiConfig const& config)
{
    std::vector<aml::Bytes> devices { com1_device(), rtc_device() };
    if (config.vmbus)
        devices.push_back(vmbus_device());
    if (config.pci) {
        devices.push_back(pci_root_device());
        devices.push_back(ecam_reservation_device());
    }

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

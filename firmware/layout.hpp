// SPDX-License-Identifier: MIT
// Guest-physical platform layout: where RAM, the MMIO hole, interrupt controllers, boot
// structures and ACPI tables live, and the I/O ports of the platform registers.
#pragma once

#include <cstdint>

#include "base/types.hpp"

namespace vmm::firmware {

// --- Guest RAM -------------------------------------------------------------------------------

// RAM starts at 0 like on a PC: the Linux boot protocols and the real-mode AP trampoline
// (arch/x86/realmode) expect conventional memory below 1 MiB.
inline constexpr u64 RAM_START = 0;
// Last byte of usable conventional memory + 1. 0x9FC00..0xA0000 is the traditional 1 KiB EBDA
// and 0xA0000..0x100000 the VGA/option-ROM/BIOS area; e820 reports both as reserved.
inline constexpr u64 LOW_RAM_END = 0x9'FC00;
inline constexpr u64 EBDA_START = LOW_RAM_END;
// Start of "extended memory" (the 1 MiB line); the e820 RAM range above the BIOS area.
inline constexpr u64 HIGH_RAM_START = 0x10'0000;
// 32-bit devices (IOAPIC, LAPIC, future MMIO BARs) live in [3 GiB, 4 GiB), so RAM beyond 3 GiB
// is relocated to start at 4 GiB (the PC "PCI hole", QEMU pc/q35 and Firecracker do the same).
inline constexpr u64 MMIO_HOLE_START = 0xC000'0000;
inline constexpr u64 MMIO_HOLE_END = 0x1'0000'0000;
inline constexpr u64 HIGH_RAM_RELOCATED_START = MMIO_HOLE_END;
// Smallest guest that can hold the boot structures below 1 MiB and something above it.
inline constexpr u64 MIN_RAM_BYTES = 2 * MIB;

// --- Interrupt controllers (Intel SDM Vol. 3A 10.4.1; 82093AA IOAPIC datasheet 3.0) ----------

inline constexpr u64 IOAPIC_ADDRESS = 0xFEC0'0000;
inline constexpr u64 LAPIC_ADDRESS = 0xFEE0'0000;
// KVM's in-kernel IOAPIC resets its ID register to 0 (virt/kvm/ioapic.c kvm_ioapic_reset), so
// the MADT entry says 0 too; the ID space is separate from LAPIC IDs on x86-64.
inline constexpr u8 IOAPIC_ID = 0;
// KVM_IOAPIC_NUM_PINS (arch/x86/include/asm/kvm_host.h): GSIs 0..23 are IOAPIC pins.
inline constexpr u32 IOAPIC_PINS = 24;

// --- PCI (devices/pci/) in the 32-bit MMIO hole, only with [pci] enabled -------------------------
// BAR window [3 GiB, 3.5 GiB): 32-bit memory BARs (and 64-bit ones: there is no 64-bit window
// yet) are placed and may be moved by the guest only here; the host bridge's _CRS says so.
inline constexpr u64 PCI_MMIO32_BASE = MMIO_HOLE_START;
inline constexpr u64 PCI_MMIO32_SIZE = 0x2000'0000;
// ECAM (PCIe 4.0 §7.2.2) for bus 0 only: 32 devices x 8 functions x 4 KiB = 1 MiB, named by the
// MCFG and reserved in e820 and as a PNP0C02 motherboard resource, which Linux requires before
// it uses it (arch/x86/pci/mmconfig-shared.c pci_mmcfg_check_reserved()).
inline constexpr u64 PCI_ECAM_BASE = 0xE000'0000;
inline constexpr u64 PCI_ECAM_SIZE = 0x10'0000;
// I/O BAR window [0xC000, 0x10000): clear of every legacy port below (QEMU's PIIX/Q35 put
// their PCI I/O window above 0x1000 too).
inline constexpr u16 PCI_IO_BASE = 0xC000;
inline constexpr u32 PCI_IO_SIZE = 0x4000;
// Configuration mechanism #1 (PCI 3.0 §3.2.2.3.2): CONFIG_ADDRESS 0xCF8, CONFIG_DATA 0xCFC.
inline constexpr u16 PCI_CONFIG_PORT = 0xCF8;
inline constexpr u16 PCI_CONFIG_PORT_COUNT = 8;
static_assert(PCI_MMIO32_BASE + PCI_MMIO32_SIZE <= PCI_ECAM_BASE && PCI_ECAM_BASE + PCI_ECAM_SIZE <= 0xFEC0'0000,
    "the PCI windows stay below the IOAPIC, LAPIC and the TSS pages in the hole");
static_assert(PCI_MMIO32_BASE >= MMIO_HOLE_START && PCI_ECAM_BASE % PCI_ECAM_SIZE == 0);

// --- CMOS RTC (PC/AT I/O map; MC146818A) -------------------------------------------------------
// Index port 0x70, data port 0x71 (include/linux/mc146818rtc.h RTC_PORT(x) = 0x70 + x).
inline constexpr u16 CMOS_PORT = 0x70;
inline constexpr u16 CMOS_PORT_COUNT = 2;
// CMOS index of the century byte, named by the FADT CENTURY field (ACPI 6.5 §5.2.9, table 5.9)
// and read by Linux (drivers/rtc/rtc-mc146818-lib.c mc146818_get_time_callback). 0x32 is the
// IBM PC/AT location.
inline constexpr u8 CMOS_CENTURY_INDEX = 0x32;

// --- COM1 (PC/AT I/O map; 16550A UART) -------------------------------------------------------

inline constexpr u16 COM1_PORT = 0x3F8;
inline constexpr u16 COM1_PORT_COUNT = 8;
// ISA IRQ 4; with no Interrupt Source Override in the MADT, ISA IRQ n is IOAPIC GSI n
// (ACPI 6.5 §5.2.12.5; Linux mp_config_acpi_legacy_irqs()).
inline constexpr u8 COM1_IRQ = 4;
inline constexpr u32 COM1_GSI = 4;

// --- Boot structures below 1 MiB (all inside e820 RAM [0, LOW_RAM_END)) -----------------------
// Page 0 (real-mode IVT + BIOS data area) is left zero: Linux reads the EBDA pointer at 0x40E
// and a zero there skips the EBDA scan. Linux reserves all of the first 1 MiB early
// (arch/x86/realmode/init.c reserve_real_mode()), so these survive until the kernel has
// copied what it needs.

// GDT used at entry (entries in cpu_setup.cpp); the empty IDT follows it in the same page.
inline constexpr u64 BOOT_GDT_GPA = 0x1000;
inline constexpr u64 BOOT_IDT_GPA = 0x1100;
// PVH: struct hvm_start_info, then one hvm_modlist_entry, then the memory map.
inline constexpr u64 PVH_START_INFO_GPA = 0x2000;
inline constexpr u64 PVH_MODLIST_GPA = 0x2040;
inline constexpr u64 PVH_MEMMAP_GPA = 0x2080;
inline constexpr u64 PVH_MEMMAP_END = 0x3000;
// Linux 64-bit boot protocol: struct boot_params ("zero page"), one 4 KiB page.
inline constexpr u64 ZERO_PAGE_GPA = 0x3000;
// Boot stack [0x4000, 0x8000): the kernels set their own stack at once, but rsp must point
// at RAM in case anything is pushed before that.
inline constexpr u64 BOOT_STACK_TOP = 0x8000;
// Identity map of [0, 4 GiB) with 2 MiB pages: PML4, PDPT and four page directories.
inline constexpr u64 BOOT_PML4_GPA = 0x8000;
inline constexpr u64 BOOT_PDPT_GPA = 0x9000;
inline constexpr u64 BOOT_PD_GPA = 0xA000; // Four pages: 0xA000..0xDFFF.
inline constexpr u64 BOOT_PAGE_TABLES_END = 0xE000;
// Kernel command line (NUL-terminated); the region bounds any length the header allows.
inline constexpr u64 CMDLINE_GPA = 0x2'0000;
inline constexpr u64 CMDLINE_MAX_BYTES = 0x1'0000; // Including the NUL.
// Linux x86 COMMAND_LINE_SIZE (arch/x86/include/asm/setup.h): the limit when the image has no
// setup header saying otherwise (vmlinux ELF, PVH). Including the NUL.
inline constexpr u64 DEFAULT_CMDLINE_LIMIT_BYTES = 2048;

// --- ACPI tables in the BIOS area -------------------------------------------------------------
// The RSDP sits on a 16-byte boundary in 0xE0000..0xFFFFF so a guest that scans for it finds
// it (ACPI 6.5 §5.2.5.1; Linux acpi_find_root_pointer()); its address is also passed in
// hvm_start_info.rsdp_paddr / boot_params.acpi_rsdp_addr. The other tables follow it.
inline constexpr u64 ACPI_RSDP_GPA = 0xE'0000;
inline constexpr u64 ACPI_TABLES_GPA = 0xE'0040;
inline constexpr u64 ACPI_TABLES_END = 0x10'0000;

// --- Kernel placement ------------------------------------------------------------------------

// bzImage protected-mode code is loaded at 1 MiB (Documentation/x86/boot.rst, "Loading the
// rest of the kernel"); its 64-bit entry is 0x200 past that (boot.rst "64-bit BOOT PROTOCOL").
inline constexpr u64 BZIMAGE_LOAD_GPA = HIGH_RAM_START;
inline constexpr u64 BZIMAGE_ENTRY_64_OFFSET = 0x200;
// ELF segments must not overlap the firmware area below 1 MiB.
inline constexpr u64 KERNEL_MIN_GPA = HIGH_RAM_START;
// Boot protocol default initrd_addr_max for headers older than 2.03 (boot.rst); used for a
// vmlinux ELF entered through the 64-bit protocol, which has no header to say otherwise.
inline constexpr u64 DEFAULT_INITRD_ADDR_MAX = 0x37FF'FFFF;

// --- Platform I/O ports (implemented by the VMM core) -----------------------------------------
// Chosen clear of COM1 (0x3F8-0x3FF), PIC (0x20/0xA0), PIT (0x40-0x43), KBC (0x60/0x64),
// RTC (0x70), POST (0x80), DMA (0x00-0x1F, 0x81-0x8F, 0xC0-0xDF), FPU (0xF0-0xFF), Bochs debug
// (0xE9), io_delay alternatives (0xEB, 0xED), ELCR (0x4D0), PCI (0xCF8-0xCFF) and ACPICA's
// protected-port table (drivers/acpi/acpica/hwvalid.c), which would refuse FADT registers there.

// Hardware-reduced ACPI sleep registers (ACPI 6.5 §4.8.3.7, §5.2.9 SLEEP_CONTROL_REG /
// SLEEP_STATUS_REG), 8 bits each, SystemIO. Linux writes SLP_TYPx << 2 | SLP_EN to the control
// register (drivers/acpi/acpica/hwesleep.c acpi_hw_extended_sleep) after writing WAK_STS
// (bit 7) to the status register.
inline constexpr u16 ACPI_SLEEP_CONTROL_PORT = 0x600;
inline constexpr u16 ACPI_SLEEP_STATUS_PORT = 0x601;
// FADT RESET_REG (SystemIO, 8 bits): writing ACPI_RESET_VALUE there resets the machine
// (drivers/acpi/reboot.c acpi_reboot()).
inline constexpr u16 ACPI_RESET_PORT = 0x602;
inline constexpr u8 ACPI_RESET_VALUE = 0x01;
// SLP_TYP for S5 named by \_S5 in the DSDT. Any 3-bit value works; 5 mirrors the state number.
inline constexpr u8 ACPI_S5_SLP_TYP = 5;
// Sleep control register fields (ACPI 6.5 Table 4.22): SLP_TYP bits 2-4, SLP_EN bit 5.
inline constexpr u8 ACPI_SLEEP_TYPE_SHIFT = 2;
inline constexpr u8 ACPI_SLEEP_TYPE_MASK = 0x1C;
inline constexpr u8 ACPI_SLEEP_ENABLE = 0x20;
// Sleep status register: WAK_STS (ACPI 6.5 Table 4.23).
inline constexpr u8 ACPI_WAKE_STATUS = 0x80;
// The byte Linux writes on poweroff: (5 << 2) | 0x20 = 0x34.
inline constexpr u8 ACPI_S5_SLEEP_CONTROL_VALUE
    = static_cast<u8>((ACPI_S5_SLP_TYP << ACPI_SLEEP_TYPE_SHIFT) | ACPI_SLEEP_ENABLE);

// Hyper-V hypercall page port: the page holds `out HYPERCALL_PORT, al`, whose imm8 form needs
// a port below 0x100. 0xE0-0xEF are unassigned on the PC/AT; 0xE4 avoids Bochs' 0xE9 and the
// 0xEB/0xED io_delay ports, and neither Linux nor ACPICA touches it.
inline constexpr u16 HYPERCALL_PORT = 0xE4;
static_assert(HYPERCALL_PORT <= 0xFF, "out imm8, al needs an 8-bit port");

// The boot structures must neither overlap each other nor leave conventional memory, and the
// ACPI tables must stay in the BIOS area where the RSDP scan looks.
static_assert(BOOT_GDT_GPA >= 0x1000 && BOOT_IDT_GPA < PVH_START_INFO_GPA);
static_assert(PVH_START_INFO_GPA < PVH_MODLIST_GPA && PVH_MODLIST_GPA < PVH_MEMMAP_GPA);
static_assert(PVH_MEMMAP_END <= ZERO_PAGE_GPA && ZERO_PAGE_GPA + 0x1000 <= BOOT_STACK_TOP - 0x4000);
static_assert(BOOT_STACK_TOP <= BOOT_PML4_GPA && BOOT_PML4_GPA < BOOT_PDPT_GPA && BOOT_PDPT_GPA < BOOT_PD_GPA);
static_assert(BOOT_PAGE_TABLES_END <= CMDLINE_GPA && CMDLINE_GPA + CMDLINE_MAX_BYTES <= LOW_RAM_END);
static_assert(ACPI_RSDP_GPA >= 0xE'0000 && ACPI_RSDP_GPA % 16 == 0 && ACPI_RSDP_GPA + 36 <= ACPI_TABLES_GPA);
static_assert(ACPI_TABLES_END == HIGH_RAM_START && EBDA_START == LOW_RAM_END);

} // namespace vmm::firmware

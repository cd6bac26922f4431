// SPDX-License-Identifier: MIT
// The guest's physical memory map: the e820 table the kernel is given (boot_params or the
// PVH memmap) and the RAM ranges the VMM must back with host memory. Both follow layout.hpp.
#pragma once

#include <cstdint>
#include <vector>

#include "base/error.hpp"
#include "base/types.hpp"
#include "firmware/layout.hpp"
#include "mem/gpa.hpp"
#include "mem/page_range.hpp"

namespace vmm::firmware {

// Address Range Types (ACPI 6.5 §15.3 Table 15.6; Linux arch/x86/include/asm/e820/types.h).
inline constexpr u32 E820_RAM = 1;
inline constexpr u32 E820_RESERVED = 2;
inline constexpr u32 E820_ACPI = 3;

// Host-side entry; the wire forms are BootE820Entry (zero page) and HvmMemmapTableEntry (PVH).
struct E820Entry {
    u64 addr;
    u64 size;
    u32 type;
    bool operator==(E820Entry const&) const = default;
};

// A guest-physical range the VMM backs with RAM (one memslot/mapping each).
struct RamRange {
    mem::Gpa start;
    u64 size_bytes;
    bool operator==(RamRange const&) const = default;
};

// Refuses RAM sizes build_e820()/ram_ranges() cannot describe: below MIN_RAM_BYTES or not a
// multiple of the page size. Call it on the configured size before the other two.
Result<void> check_ram_bytes(u64 ram_bytes);

// RAM [0, 0x9FC00), reserved [0x9FC00, 1 MiB) (EBDA, BIOS area, ACPI tables), RAM [1 MiB,
// min(ram, 3 GiB)), and RAM above 4 GiB for whatever does not fit below the MMIO hole.
// Hot-add space is not listed: the guest learns it through DM hot-add.
// With `pci_ecam`, the ECAM range (PCI_ECAM_BASE) is listed as reserved: Linux uses MMCONFIG
// early only for e820-reserved ranges (arch/x86/pci/mmconfig-shared.c is_mmconf_reserved()).
std::vector<E820Entry> build_e820(std::uint64_t ram_bytes, bool pci_ecam = false);

// [0, min(ram, 3 GiB)) and, if ram > 3 GiB, [4 GiB, 4 GiB + ram - 3 GiB). The reserved area
// below 1 MiB is backed too: the ACPI tables and boot structures live there.
std::vector<RamRange> ram_ranges(std::uint64_t ram_bytes);

// Pages of ram_ranges() that build_e820() does not give the guest as RAM (the EBDA, BIOS area
// and ACPI tables below 1 MiB), rounded outward to whole pages: the guest does not own them, so
// it may not balloon them (mem::GuestPhysicalMap refuses such reports as outside RAM).
std::vector<mem::PageRange> firmware_reserved_pages(std::uint64_t ram_bytes);

// End of RAM below the MMIO hole: min(ram, 3 GiB).
constexpr u64 low_ram_end(u64 ram_bytes)
{
    return ram_bytes < MMIO_HOLE_START ? ram_bytes : MMIO_HOLE_START;
}

} // namespace vmm::firmware

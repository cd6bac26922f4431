// SPDX-License-Identifier: MIT
// Writes what a loaded kernel reads at entry (PVH start info or zero page, command line,
// initrd, e820, GDT, page tables) and returns the boot vCPU state the VMM core must set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "base/byte_source.hpp"
#include "base/error.hpp"
#include "firmware/boot_cpu_state.hpp"
#include "firmware/kernel_image.hpp"
#include "mem/guest_memory.hpp"

namespace vmm::firmware {

struct BootRequest {
    std::string_view cmdline;
    ByteSource const* initrd;          // Null or empty: no initrd. Read straight into guest RAM.
    std::uint64_t ram_bytes;           // Boot RAM (as given to build_e820/ram_ranges).
    std::uint64_t rsdp_gpa;            // From write_acpi_tables(); 0 = none.
    bool pci_ecam { false };           // Reserve the PCI ECAM range in e820 (build_e820).
};

// Where write_boot_info() put the initrd (for logging and tests).
struct InitrdPlacement {
    std::uint64_t gpa;
    std::uint64_t size_bytes;
};

// ElfPvh: hvm_start_info v1 (+ modlist, memmap), 32-bit protected mode, ebx = start info.
// ElfLinux64/BzImage: zero page, identity-mapped 4 GiB, long mode, rsi = zero page.
// Errors: InvalidArgument for a command line that is too long or contains NUL, OutOfRange
// when the initrd does not fit between the kernel and the initrd ceiling.
Result<BootCpuState> write_boot_info(mem::GuestMemory const&, KernelImage const&, BootRequest const&);

// The initrd address write_boot_info() uses: page-aligned, as high as possible below
// min(RAM below the MMIO hole, the kernel's initrd ceiling + 1), above the kernel.
Result<InitrdPlacement> place_initrd(KernelImage const&, std::uint64_t ram_bytes, std::uint64_t initrd_bytes);

} // namespace vmm::firmware

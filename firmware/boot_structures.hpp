// SPDX-License-Identifier: MIT
// Writers of the two boot information formats (PVH hvm_start_info, Linux zero page), given
// where write_boot_info() put the command line, initrd and ACPI tables.
#pragma once

#include <optional>
#include <span>

#include "base/error.hpp"
#include "firmware/boot_info.hpp"
#include "firmware/e820.hpp"
#include "firmware/kernel_image.hpp"
#include "mem/guest_memory.hpp"

namespace vmm::firmware {

struct BootLayout {
    u64 cmdline_gpa;
    std::optional<InitrdPlacement> initrd;
    u64 rsdp_gpa;
    std::span<E820Entry const> e820;
};

// hvm_start_info v1 at PVH_START_INFO_GPA, the initrd as module 0 at PVH_MODLIST_GPA and the
// memory map at PVH_MEMMAP_GPA.
Result<void> write_pvh_start_info(mem::GuestMemory const&, BootLayout const&);

// A fresh zero page at ZERO_PAGE_GPA: the image's setup header (bzImage) or a minimal one
// (vmlinux), loader type, command line, initrd, RSDP and e820 table.
Result<void> write_zero_page(mem::GuestMemory const&, KernelImage const&, BootLayout const&);

} // namespace vmm::firmware

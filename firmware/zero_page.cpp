// SPDX-License-Identifier: MIT
// Linux zero page (struct boot_params) for the 64-bit boot protocol.
//
// Spec: Linux Documentation/x86/boot.rst ("64-bit BOOT PROTOCOL": the loader fills a fresh
//       boot_params with the image's setup header and its own fields) and zero-page.rst.
#include "firmware/boot_structures.hpp"

#include "firmware/boot_params.hpp"
#include "firmware/layout.hpp"

namespace vmm::firmware {

namespace {

// A vmlinux has no setup header; the kernel still reads a few header fields. A non-zero
// version also stops x86_64_start_reservations() from copying the zero page a second time
// (arch/x86/kernel/head64.c).
SetupHeader minimal_setup_header()
{
    SetupHeader header {};
    header.boot_flag = SETUP_BOOT_FLAG;
    header.header = SETUP_HEADER_MAGIC;
    header.version = MIN_BOOT_PROTOCOL;
    return header;
}

} // namespace

Result<void> write_zero_page(mem::GuestMemory const& memory, KernelImage const& kernel, BootLayout const& layout)
{
    if (layout.e820.size() > ZERO_PAGE_E820_ENTRIES)
        return fail(Errc::OutOfRange, "zero page: too many e820 entries", layout.e820.size());
    BootParams params {};
    params.hdr = kernel.setup_header ? *kernel.setup_header : minimal_setup_header();
    params.hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
    // Everything below lives under 4 GiB (layout.hpp, initrd ceiling), so the ext_* high
    // halves stay zero.
    params.hdr.cmd_line_ptr = static_cast<u32>(layout.cmdline_gpa);
    if (layout.initrd) {
        params.hdr.ramdisk_image = static_cast<u32>(layout.initrd->gpa);
        params.hdr.ramdisk_size = static_cast<u32>(layout.initrd->size_bytes);
    }
    params.acpi_rsdp_addr = layout.rsdp_gpa;
    params.e820_entries = static_cast<u8>(layout.e820.size());
    for (std::size_t i = 0; i < layout.e820.size(); ++i)
        params.e820_table[i] = { .addr = layout.e820[i].addr, .size = layout.e820[i].size, .type = layout.e820[i].type };
    return memory.write_obj(mem::Gpa { ZERO_PAGE_GPA }, params);
}

} // namespace vmm::firmware

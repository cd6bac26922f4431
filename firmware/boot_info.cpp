// SPDX-License-Identifier: MIT
// write_boot_info(): command line and initrd placement, then the kind-specific boot
// structures and entry state (PVH or 64-bit boot protocol).
#include "firmware/boot_info.hpp"

#include <algorithm>
#include <vector>

#include "firmware/boot_structures.hpp"
#include "firmware/cpu_setup.hpp"
#include "firmware/e820.hpp"
#include "firmware/layout.hpp"

namespace vmm::firmware {

namespace {

Result<void> write_cmdline(mem::GuestMemory const& memory, KernelImage const& kernel, std::string_view cmdline)
{
    // The limit includes the NUL; a NUL inside would silently truncate what the user asked for.
    if (cmdline.size() + 1 > kernel.cmdline_limit_bytes())
        return fail(Errc::InvalidArgument, "kernel command line too long", cmdline.size());
    if (cmdline.find('\0') != std::string_view::npos)
        return fail(Errc::InvalidArgument, "kernel command line contains a NUL byte", cmdline.find('\0'));
    VMM_TRY(memory.write(mem::Gpa { CMDLINE_GPA }, std::as_bytes(std::span { cmdline.data(), cmdline.size() })));
    return memory.write_obj(mem::Gpa { CMDLINE_GPA + cmdline.size() }, u8 { 0 });
}

} // namespace

Result<InitrdPlacement> place_initrd(KernelImage const& kernel, std::uint64_t ram_bytes, std::uint64_t initrd_bytes)
{
    // Ceiling: one past the highest usable byte (the header's initrd_addr_max is inclusive).
    u64 ceiling = std::min(low_ram_end(ram_bytes), kernel.initrd_addr_max() + 1);
    u64 floor = std::max(kernel.load_end, HIGH_RAM_START);
    if (initrd_bytes == 0 || initrd_bytes > ceiling)
        return fail(Errc::OutOfRange,
            fmt::format("initrd of {} bytes does not fit below its limit {:#x} (end of low RAM or the kernel's "
                        "initrd_addr_max + 1)", initrd_bytes, ceiling),
            initrd_bytes);
    u64 gpa = (ceiling - initrd_bytes) & ~(mem::PAGE_SIZE - 1);
    if (gpa < floor)
        return fail(Errc::OutOfRange,
            fmt::format("initrd of {} bytes does not fit between the kernel's end {:#x} and its limit {:#x}",
                initrd_bytes, floor, ceiling),
            initrd_bytes);
    return InitrdPlacement { .gpa = gpa, .size_bytes = initrd_bytes };
}

Result<BootCpuState> write_boot_info(mem::GuestMemory const& memory, KernelImage const& kernel, BootRequest const& request)
{
    VMM_TRY(check_ram_bytes(request.ram_bytes));
    VMM_TRY(write_cmdline(memory, kernel, request.cmdline).context("writing the kernel command line at GPA {:#x}", CMDLINE_GPA));

    std::optional<InitrdPlacement> initrd;
    if (request.initrd != nullptr && request.initrd->size() > 0) {
        initrd = VMM_TRY(place_initrd(kernel, request.ram_bytes, request.initrd->size()));
        VMM_TRY(memory.write_from(mem::Gpa { initrd->gpa }, *request.initrd, 0, initrd->size_bytes)
                .context("writing the initrd ({} bytes) at GPA {:#x}", initrd->size_bytes, initrd->gpa));
    }

    std::vector<E820Entry> e820 = build_e820(request.ram_bytes, request.pci_ecam);
    BootLayout layout { .cmdline_gpa = CMDLINE_GPA, .initrd = initrd, .rsdp_gpa = request.rsdp_gpa, .e820 = e820 };
    VMM_TRY(write_boot_gdt(memory).context("writing the boot GDT"));

    switch (kernel.kind) {
    case KernelImage::Kind::ElfPvh:
        VMM_TRY(write_pvh_start_info(memory, layout).context("writing the PVH start info"));
        return protected_mode_cpu_state(kernel.entry, PVH_START_INFO_GPA);
    case KernelImage::Kind::ElfLinux64:
    case KernelImage::Kind::BzImage:
        // The identity map covers [0, 4 GiB) only.
        if (kernel.entry >= MMIO_HOLE_END)
            return fail(Errc::OutOfRange, "kernel entry above 4 GiB is not identity-mapped", kernel.entry);
        VMM_TRY(write_zero_page(memory, kernel, layout).context("writing the zero page"));
        VMM_TRY(write_identity_page_tables(memory).context("writing the identity page tables"));
        return long_mode_cpu_state(kernel.entry, ZERO_PAGE_GPA);
    }
    return fail(Errc::InvalidArgument, "kernel image kind", static_cast<u64>(kernel.kind));
}

} // namespace vmm::firmware

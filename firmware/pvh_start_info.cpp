// SPDX-License-Identifier: MIT
// PVH boot information: struct hvm_start_info version 1 with modlist (initrd) and memmap.
//
// Spec: Linux include/xen/interface/hvm/start_info.h; arch/x86/platform/pvh/enlighten.c
//       (the first module is the ramdisk; version >= 1 with memmap_entries != 0 is required
//       when not running on Xen).
#include "firmware/boot_structures.hpp"

#include "firmware/layout.hpp"
#include "firmware/start_info.hpp"

namespace vmm::firmware {

Result<void> write_pvh_start_info(mem::GuestMemory const& memory, BootLayout const& layout)
{
    if (layout.e820.size() * sizeof(HvmMemmapTableEntry) > PVH_MEMMAP_END - PVH_MEMMAP_GPA)
        return fail(Errc::OutOfRange, "PVH memory map does not fit its page", layout.e820.size());
    for (std::size_t i = 0; i < layout.e820.size(); ++i) {
        auto const& entry = layout.e820[i];
        VMM_TRY(memory.write_obj(mem::Gpa { PVH_MEMMAP_GPA + i * sizeof(HvmMemmapTableEntry) },
            HvmMemmapTableEntry { .addr = entry.addr, .size = entry.size, .type = entry.type, .reserved = 0 }));
    }

    HvmStartInfo start_info {
        .magic = XEN_HVM_START_MAGIC_VALUE,
        .version = HVM_START_INFO_VERSION,
        .flags = 0,
        .nr_modules = 0,
        .modlist_paddr = 0,
        .cmdline_paddr = layout.cmdline_gpa,
        .rsdp_paddr = layout.rsdp_gpa,
        .memmap_paddr = PVH_MEMMAP_GPA,
        .memmap_entries = static_cast<u32>(layout.e820.size()),
        .reserved = 0,
    };
    if (layout.initrd) {
        VMM_TRY(memory.write_obj(mem::Gpa { PVH_MODLIST_GPA },
            HvmModlistEntry { .paddr = layout.initrd->gpa, .size = layout.initrd->size_bytes, .cmdline_paddr = 0, .reserved = 0 }));
        start_info.nr_modules = 1;
        start_info.modlist_paddr = PVH_MODLIST_GPA;
    }
    return memory.write_obj(mem::Gpa { PVH_START_INFO_GPA }, start_info);
}

} // namespace vmm::firmware

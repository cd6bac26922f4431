// SPDX-License-Identifier: MIT
// Loading what the user configured into a fresh guest: the kernel and initrd files, the ACPI
// tables and the boot structures. Separate from Machine so that it runs (and its errors can be
// tested) on plain guest memory, without KVM.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "base/read_only_file.hpp"
#include "firmware/boot_cpu_state.hpp"
#include "mem/guest_memory.hpp"
#include "vmm/config.hpp"

namespace vmm {

struct GuestImageParams {
    std::uint64_t ram_bytes; // Boot RAM, as planned by plan_memory().
    std::uint32_t vcpus;
    bool vmbus;              // Describe the VMBus device in the DSDT.
    bool pci { false };      // MCFG, the PCI root in the DSDT and the ECAM reserved in e820.
};

// Reads a whole file; `what` names the config key ("boot.kernel") in the error.
// Opens a kernel or initrd for loading; errors say which config key ("boot.kernel: cannot open ...").
Result<ReadOnlyFile> open_image(std::filesystem::path const& path, std::string_view what);

// Every error names the file, its size and the RAM involved ("boot.initrd /x.cpio (70 MiB) with
// 64 MiB of RAM: initrd does not fit ...").
Result<firmware::BootCpuState> load_guest_images(mem::GuestMemory const&, BootSection const&, GuestImageParams const&);

} // namespace vmm

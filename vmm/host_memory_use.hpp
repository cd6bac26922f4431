// SPDX-License-Identifier: MIT
// What the host really holds for guest RAM, as opposed to what the guest sees: the boot-RAM
// memfd's allocated blocks (fstat) and the resident pages of the hot-add window (the Rss of its
// mappings in /proc/self/smaps). Ballooning lowers the first, hot-add and guest use raise both;
// GET /api/v1/memory and /metrics show them so a user can check what a target really saved.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/error.hpp"
#include "base/mapping.hpp"
#include "mem/boot_ram.hpp"

namespace vmm {

struct HostMemoryUse {
    std::uint64_t boot_ram_resident_bytes = 0;
    std::uint64_t hot_add_resident_bytes = 0;
};

// Sums the "Rss:" of every mapping in `smaps` (the text of /proc/<pid>/smaps) that overlaps
// [begin, end). mprotect() splits the hot-add window into one mapping per plugged chunk; a
// neighbour the kernel merged into a window mapping would be counted whole, which only
// PROT_NONE guard areas (never resident) can be. Lines it does not understand are skipped.
std::uint64_t smaps_resident_bytes(std::string_view smaps, std::uintptr_t begin, std::uintptr_t end);

// Reads both figures for this process (fstat on the memfd, /proc/self/smaps for the window;
// an unmapped window counts 0).
Result<HostMemoryUse> read_host_memory_use(mem::BootRam const& boot_ram, Mapping const& hot_add_window);

} // namespace vmm

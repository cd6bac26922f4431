// SPDX-License-Identifier: MIT
// PRP data pointers (NVMe 1.4 §4.3) turned into host views of guest RAM. Every entry is checked
// against the PRP rules and against guest RAM before anything moves: a guest that points a PRP
// (or a PRP list) at a hole, at MMIO or past the end of RAM, or misaligns an entry, gets the
// NVMe status the spec gives, and the walk is bounded by the transfer length, so a list that
// points back at itself ends where the data ends.
#pragma once

#include <cstddef>
#include <expected>
#include <span>
#include <vector>

#include "base/types.hpp"
#include "devices/nvme/nvme_spec.hpp"
#include "mem/guest_memory.hpp"

namespace vmm::nvme {

// Host views of the guest pages a command's data occupies, in transfer order; runs that are
// adjacent in host memory are merged (one iovec per contiguous run).
using Segments = std::vector<std::span<std::byte>>;

// Maps `length` bytes (> 0) described by PRP1/PRP2. `out` is cleared first. The views stay valid
// while the GuestMemory's backing lives (the Machine's lifetime). With `list_entries`, every PRP
// list entry read (data and chain pointers, in order) is appended to it (the traffic recorder).
std::expected<void, Status> map_prps(mem::GuestMemory const&, u64 prp1, u64 prp2, u64 length, Segments& out,
    std::vector<u64>* list_entries = nullptr);

// Copies between a host buffer and the guest pages of `segments` (sizes must match: a host bug).
void copy_to_segments(Segments const&, std::span<std::byte const> from);
void copy_from_segments(Segments const&, std::span<std::byte> to);

} // namespace vmm::nvme

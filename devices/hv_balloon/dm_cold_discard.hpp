// SPDX-License-Identifier: MIT
// Free page reporting, guest side of the wire: HvExtCallMemoryHeatHint's range elements
// (union hv_gpa_page_range, include/asm-generic/hyperv-tlfs.h:440) and what the engine answers.
// Linux 6.1 sends only COLD_DISCARD hints of 2 MiB pages: largepage = 1, page_size = 0 (2 MiB),
// additional_pages = blocks - 1, base_large_pfn in 2 MiB units (drivers/hv/hv_balloon.c:1599
// hv_free_page_report). The 4 KiB form (largepage = 0, basepfn) is decoded as well; 1 GiB pages
// and set reserved bits are refused.
#pragma once

#include <cstdint>
#include <optional>

#include "mem/page_range.hpp"

namespace vmm::hv_balloon {

// HvExtCallMemoryHeatHint input header: type:2, reserved:62 (hyperv-tlfs.h:787).
inline constexpr std::uint64_t HV_EXT_MEMORY_HEAT_HINT_TYPE_COLD_DISCARD = 2; // hyperv-tlfs.h:786
inline constexpr std::uint64_t HEAT_HINT_TYPE_MASK = 0x3;
// Linux's largest batch: one input page of 8-byte elements after the 8-byte header
// (hyperv-tlfs.h:781 HV_MEMORY_HINT_MAX_GPA_PAGE_RANGES).
inline constexpr std::uint32_t MAX_HEAT_HINT_RANGES = (4096 - 8) / 8;

// One hv_gpa_page_range as pages, or nullopt when it is malformed (1 GiB page size, reserved
// bits, a range that overflows the 52-bit frame space).
std::optional<mem::PageRange> decode_gpa_page_range(std::uint64_t raw);

// What on_cold_discard() did with one hint call.
struct ColdDiscardOutcome {
    std::uint32_t accepted = 0;      // Ranges validated and discarded, from the first.
    bool refused = false;            // Stopped at element `accepted`: it failed validation.
};

} // namespace vmm::hv_balloon

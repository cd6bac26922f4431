// SPDX-License-Identifier: MIT
// DynamicMemory: free page reporting (cold discard hints). The guest names free pages; each
// range must be memory the guest owns now (boot RAM outside firmware-reserved pages, or
// hot-added memory it confirmed), not ballooned, and must not overlap another range of the same
// call. Valid ranges are discarded (the host frees their backing; the guest's next touch gets a
// zero page), and processing stops at the first invalid one, as a rep hypercall does (TLFS 3.7:
// reps completed = elements processed before the failure).
#include "devices/hv_balloon/dm_cold_discard.hpp"

#include "base/log.hpp"
#include "devices/hv_balloon/dynamic_memory.hpp"
#include "mem/page_range_set.hpp"

namespace vmm::hv_balloon {

namespace {
constexpr std::string_view COMPONENT = "hv_balloon";
// hv_gpa_page_range (hyperv-tlfs.h:440): additional_pages 0-10, largepage 11, basepfn 12-63;
// as a large page: page_size 12 (0 = 2 MiB, 1 = 1 GiB), reserved1 13-20, base_large_pfn 21-63.
constexpr std::uint64_t ADDITIONAL_MASK = 0x7FF;
constexpr unsigned LARGEPAGE_BIT = 11;
constexpr unsigned PAGE_SIZE_BIT = 12;
constexpr std::uint64_t LARGE_RESERVED_MASK = 0xFFull << 13;
constexpr unsigned BASEPFN_SHIFT = 12;
constexpr unsigned BASE_LARGE_PFN_SHIFT = 21;
constexpr std::uint64_t PAGES_PER_2M = 512;
constexpr std::uint64_t MAX_FRAME = 1ull << 52; // 52-bit guest frame numbers.
} // namespace

std::optional<mem::PageRange> decode_gpa_page_range(std::uint64_t raw)
{
    std::uint64_t const blocks = (raw & ADDITIONAL_MASK) + 1;
    std::uint64_t start = 0;
    std::uint64_t count = 0;
    if ((raw >> LARGEPAGE_BIT) & 1) {
        if ((raw >> PAGE_SIZE_BIT) & 1)
            return std::nullopt; // 1 GiB pages: Linux never sends them.
        if (raw & LARGE_RESERVED_MASK)
            return std::nullopt;
        start = (raw >> BASE_LARGE_PFN_SHIFT) * PAGES_PER_2M;
        count = blocks * PAGES_PER_2M;
    } else {
        start = raw >> BASEPFN_SHIFT;
        count = blocks;
    }
    if (start >= MAX_FRAME || count > MAX_FRAME - start)
        return std::nullopt;
    return mem::PageRange { mem::Gpn { start }, mem::PageCount { count } };
}

ColdDiscardOutcome DynamicMemory::on_cold_discard(std::span<std::uint64_t const> ranges)
{
    ColdDiscardOutcome outcome;
    ++m_counters.cold_discard_calls;
    mem::PageRangeSet seen; // This call's ranges: a range may not overlap another.
    for (std::uint64_t raw : ranges) {
        auto range = decode_gpa_page_range(raw);
        std::optional<mem::RejectReason> refused;
        if (!range) {
            refused = mem::RejectReason::Malformed;
        } else if (auto owned = m_map.check_balloon(range->start.raw(), range->count.raw()); !owned) {
            refused = owned.error(); // Outside RAM, firmware-reserved, or (partly) ballooned.
        } else if (seen.intersects(*range)) {
            refused = mem::RejectReason::OverlapsBallooned; // Named twice in one call.
        }
        if (refused) {
            ++m_counters.cold_discard_refused;
            VMM_GUEST_WARN(COMPONENT, "cold discard hint {:#x} refused: {}", raw, mem::reject_reason_name(*refused));
            outcome.refused = true;
            return outcome;
        }
        seen.insert(*range);
        ++m_counters.discard_calls;
        if (auto discarded = m_discard.discard(*range); !discarded) {
            ++m_counters.discard_failures;
            VMM_GUEST_WARN(COMPONENT, "discard of reported {} failed: {}", *range, discarded.error());
        } else {
            m_counters.cold_discard_pages_total += range->count.raw();
        }
        ++outcome.accepted;
    }
    return outcome;
}

} // namespace vmm::hv_balloon

// SPDX-License-Identifier: MIT
// HvExtCallMemoryHeatHint (0x8003), the free page reporting call: a rep hypercall whose input
// is one header word (type:2, reserved:62) followed by rep_count hv_gpa_page_range words, all in
// one page (drivers/hv/hv_balloon.c:1599 hv_free_page_report builds it in the per-CPU input page;
// include/asm-generic/hyperv-tlfs.h:781-791). Only COLD_DISCARD hints exist for Linux 6.1.
#include <array>

#include "base/log.hpp"
#include "vmm/hyperv/hvdef.hpp"
#include "vmm/hyperv/hypercall_dispatcher.hpp"
#include "vmm/hyperv/memory_hint_sink.hpp"
#include "vmm/hyperv/partition.hpp"

namespace vmm::hyperv {

namespace {
constexpr u64 HEAT_HINT_TYPE_COLD_DISCARD = 2; // hyperv-tlfs.h:786
// One input page: the header and at most 511 ranges (hyperv-tlfs.h:781 HV_MEMORY_HINT_MAX_GPA_PAGE_RANGES).
constexpr std::size_t MAX_RANGES = (mem::PAGE_SIZE - sizeof(u64)) / sizeof(u64);
} // namespace

u64 HypercallDispatcher::memory_heat_hint(HypercallControl control, HypercallRegs const& regs, MemoryHintSink* hints)
{
    if (control.fast || control.varhead_size != 0 || control.rep_count == 0 || control.rep_start >= control.rep_count
        || control.rep_count > MAX_RANGES)
        return hypercall_result(HV_STATUS_INVALID_HYPERCALL_INPUT);
    // Copy once: header and every element; the block may not cross its page (TLFS 3.7).
    alignas(8) std::array<u64, 1 + MAX_RANGES> input;
    auto bytes = std::as_writable_bytes(std::span { input }.first(1 + control.rep_count));
    if (u16 status = read_input(regs.rdx, bytes); status != HV_STATUS_SUCCESS)
        return hypercall_result(status, control.rep_start);
    if (input[0] != HEAT_HINT_TYPE_COLD_DISCARD) // Other types and reserved bits set.
        return hypercall_result(HV_STATUS_INVALID_PARAMETER, control.rep_start);
    auto const ranges = std::span<u64 const> { input }.subspan(1 + control.rep_start, control.rep_count - control.rep_start);
    u32 const accepted = hints->cold_discard(ranges);
    if (accepted < ranges.size()) {
        VMM_GUEST_WARN("hyperv", "memory heat hint: range {} of {} refused", control.rep_start + accepted,
            control.rep_count);
        return hypercall_result(HV_STATUS_INVALID_PARAMETER, static_cast<u16>(control.rep_start + accepted));
    }
    return hypercall_result(HV_STATUS_SUCCESS, control.rep_count);
}

} // namespace vmm::hyperv

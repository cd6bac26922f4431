// SPDX-License-Identifier: MIT
// The hypercall input value (control word) decoded once, and the result value encoded
// (include/asm-generic/hyperv-tlfs.h:192-206; TLFS 3.7).
#pragma once

#include "base/types.hpp"
#include "vmm/hyperv/hvdef.hpp"

namespace vmm::hyperv {

struct HypercallControl {
    u16 code;
    bool fast;           // Register (fast) input: rdx/r8 hold the input, not GPAs.
    u16 varhead_size;    // Variable header size in 8-byte units (10 bits).
    u16 rep_count;       // 12 bits
    u16 rep_start;       // 12 bits
    bool reserved_set;   // Any of bits 27-31, 44-47, 60-63: HV_STATUS_INVALID_HYPERCALL_INPUT.

    static constexpr HypercallControl decode(u64 raw)
    {
        return HypercallControl {
            .code = static_cast<u16>(raw & HV_HYPERCALL_CODE_MASK),
            .fast = (raw & HV_HYPERCALL_FAST_BIT) != 0,
            .varhead_size = static_cast<u16>((raw & HV_HYPERCALL_VARHEAD_MASK) >> HV_HYPERCALL_VARHEAD_OFFSET),
            .rep_count = static_cast<u16>((raw & HV_HYPERCALL_REP_COMP_MASK) >> HV_HYPERCALL_REP_COMP_OFFSET),
            .rep_start = static_cast<u16>((raw & HV_HYPERCALL_REP_START_MASK) >> HV_HYPERCALL_REP_START_OFFSET),
            .reserved_set = (raw & HV_HYPERCALL_RSVD_MASK) != 0,
        };
    }
    constexpr bool is_rep() const { return rep_count != 0 || rep_start != 0; }
};

// Result value: status in bits 0-15, reps completed in bits 32-43 (asm-generic/mshyperv.h:60-75).
constexpr u64 hypercall_result(u16 status, u16 reps_completed = 0)
{
    return u64 { status } | ((u64 { reps_completed } << HV_HYPERCALL_REP_COMP_OFFSET) & HV_HYPERCALL_REP_COMP_MASK);
}

static_assert(HypercallControl::decode(0x1005D).fast && HypercallControl::decode(0x1005D).code == HVCALL_SIGNAL_EVENT);
static_assert(HypercallControl::decode(u64 { 1 } << 27).reserved_set);
static_assert(HypercallControl::decode(0x8003 | (u64 { 32 } << 32) | (u64 { 5 } << 48)).rep_start == 5);

} // namespace vmm::hyperv

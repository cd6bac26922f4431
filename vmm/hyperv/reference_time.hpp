// SPDX-License-Identifier: MIT
// ReferenceClock: the partition reference time (100 ns units since the partition was created,
// the same on every VP) as a function of the guest-visible TSC, and the reference TSC page that
// lets the guest compute it without exiting (TLFS 12.6-12.7; Linux hyperv_timer.c:359-557).
//
// The MSR (HV_X64_MSR_TIME_REF_COUNT) and the page use ONE formula,
//     ref = ((guest_tsc * scale) >> 64) + offset,   scale = 10^7 * 2^64 / tsc_hz,
// so a read through the page and a read of the MSR at the same TSC agree to the tick.
#pragma once

#include <functional>

#include "base/types.hpp"
#include "mem/guest_memory.hpp"

namespace vmm::hyperv {

// 64x64 -> 128-bit products, as the guest's mul_u64_u64_shr() does (GCC/Clang extension).
__extension__ typedef unsigned __int128 u128;

// The guest-visible TSC "now", read from any thread (the VMM: host RDTSC + KVM's TSC offset).
using GuestTscReader = std::function<u64()>;

// Scale for `tsc_hz`; 0 when the frequency is too low for the 64.64 fixed point (<= 10 MHz).
u64 reference_tsc_scale(u64 tsc_hz);
// The guest's own arithmetic (include/clocksource/hyperv_timer.h:54-55): mul_u64_u64_shr + offset.
constexpr u64 reference_time_from_tsc(u64 tsc, u64 scale, i64 offset)
{
    auto const product = static_cast<u128>(tsc) * scale;
    return static_cast<u64>(product >> 64) + static_cast<u64>(offset);
}

class ReferenceClock {
public:
    // `tsc_hz`: guest TSC frequency (KVM_GET_TSC_KHZ * 1000). Reference time 0 = the guest
    // TSC read now. valid() is false when the frequency is unusable.
    ReferenceClock(u64 tsc_hz, GuestTscReader);

    bool valid() const { return m_scale != 0; }
    u64 tsc_hz() const { return m_tsc_hz; }
    u64 scale() const { return m_scale; }
    i64 offset() const { return m_offset; }
    u64 now() const; // Reference time now (0 if !valid()).
    u64 at_tsc(u64 tsc) const { return reference_time_from_tsc(tsc, m_scale, m_offset); }

private:
    u64 m_tsc_hz;
    GuestTscReader m_read_tsc;
    u64 m_scale;
    i64 m_offset { 0 };
};

enum class TscPageWrite { Written, Fault };

// Publishes scale/offset at `page` with the sequence protocol: sequence 0 first (readers fall
// back to the MSR), then scale and offset, then `sequence` (never 0) with release order.
TscPageWrite write_tsc_page(mem::GuestMemory const&, mem::Gpa page, u32 sequence, u64 scale, i64 offset);
// Marks the page invalid (sequence 0): the guest reads TIME_REF_COUNT instead.
TscPageWrite invalidate_tsc_page(mem::GuestMemory const&, mem::Gpa page);

} // namespace vmm::hyperv

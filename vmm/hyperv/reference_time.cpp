// SPDX-License-Identifier: MIT
// Reference time and the reference TSC page (TLFS 12.6-12.7; guest side
// include/clocksource/hyperv_timer.h:40-85 and drivers/clocksource/hyperv_timer.c:377-557).
#include "vmm/hyperv/reference_time.hpp"

#include <atomic>

#include "base/log.hpp"
#include "vmm/hyperv/hvdef.hpp"

namespace vmm::hyperv {
namespace {

// SAFETY: guest RAM is mmap'd page-aligned and the page GPA is page-aligned, so the 4- and
// 8-byte fields at offsets 0, 8 and 16 are naturally aligned; the assert guards that invariant.
template<typename T>
std::atomic_ref<T> page_word(std::span<std::byte> page, std::size_t offset)
{
    std::byte* address = page.data() + offset;
    VMM_ASSERT(reinterpret_cast<std::uintptr_t>(address) % std::atomic_ref<T>::required_alignment == 0);
    return std::atomic_ref<T> { *reinterpret_cast<T*>(address) };
}

} // namespace

u64 reference_tsc_scale(u64 tsc_hz)
{
    // scale = 10^7 * 2^64 / tsc_hz fits in 64 bits only when tsc_hz > 10^7.
    if (tsc_hz <= HV_CLOCK_HZ)
        return 0;
    return static_cast<u64>((static_cast<u128>(HV_CLOCK_HZ) << 64) / tsc_hz);
}

ReferenceClock::ReferenceClock(u64 tsc_hz, GuestTscReader read_tsc)
    : m_tsc_hz(tsc_hz)
    , m_read_tsc(std::move(read_tsc))
    , m_scale(reference_tsc_scale(tsc_hz))
{
    if (valid()) // Partition start = reference time 0 (TLFS 12.6; hyperv_timer.c:458-463).
        m_offset = -static_cast<i64>(reference_time_from_tsc(m_read_tsc(), m_scale, 0));
}

u64 ReferenceClock::now() const { return valid() ? at_tsc(m_read_tsc()) : 0; }

TscPageWrite write_tsc_page(mem::GuestMemory const& memory, mem::Gpa page, u32 sequence, u64 scale, i64 offset)
{
    VMM_ASSERT(sequence != HV_TSC_SEQUENCE_INVALID);
    auto bytes = memory.contiguous(page, sizeof(HvReferenceTscPage));
    if (!bytes)
        return TscPageWrite::Fault;
    // Writer side of the seqcount the guest reads (hyperv_timer.h:61-85): invalidate, store the
    // values, publish the new sequence (the seqlock writer: the release fence keeps the value
    // stores below the invalidation, the release store keeps them above the new sequence).
    page_word<u32>(*bytes, offsetof(HvReferenceTscPage, tsc_sequence)).store(HV_TSC_SEQUENCE_INVALID, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    page_word<u64>(*bytes, offsetof(HvReferenceTscPage, tsc_scale)).store(scale, std::memory_order_relaxed);
    page_word<i64>(*bytes, offsetof(HvReferenceTscPage, tsc_offset)).store(offset, std::memory_order_relaxed);
    page_word<u32>(*bytes, offsetof(HvReferenceTscPage, tsc_sequence)).store(sequence, std::memory_order_release);
    return TscPageWrite::Written;
}

TscPageWrite invalidate_tsc_page(mem::GuestMemory const& memory, mem::Gpa page)
{
    auto bytes = memory.contiguous(page, sizeof(HvReferenceTscPage));
    if (!bytes)
        return TscPageWrite::Fault;
    page_word<u32>(*bytes, offsetof(HvReferenceTscPage, tsc_sequence)).store(HV_TSC_SEQUENCE_INVALID);
    return TscPageWrite::Written;
}

} // namespace vmm::hyperv

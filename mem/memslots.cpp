// SPDX-License-Identifier: MIT
// Slot planning for the hot-add window and lazy slot registration.
#include "mem/memslots.hpp"

#include <bit>

namespace vmm::mem {

Result<MemslotPlan> MemslotPlan::make(PageRange window, std::uint32_t max_slots, std::uint32_t first_slot)
{
    if (window.empty() || max_slots == 0)
        return fail(Errc::InvalidArgument, "memslot plan: empty window or no slots");
    if (window.start_address().raw() % MIN_MEMSLOT_BYTES != 0)
        return fail(Errc::InvalidArgument, "memslot plan: window start not 128 MiB aligned", window.start_address().raw());
    std::uint64_t window_bytes = window.size_bytes();
    std::uint64_t per_slot = (window_bytes + max_slots - 1) / max_slots;
    std::uint64_t slot_bytes = std::bit_ceil(std::max(per_slot, MIN_MEMSLOT_BYTES));
    auto count = static_cast<std::uint32_t>((window_bytes + slot_bytes - 1) / slot_bytes);
    VMM_ASSERT(count >= 1 && count <= max_slots);
    if (first_slot > UINT32_MAX - count)
        return fail(Errc::InvalidArgument, "memslot plan: slot ids overflow", first_slot);
    return MemslotPlan { window, slot_bytes, count, first_slot };
}

PageRange MemslotPlan::slot_range(std::uint32_t index) const
{
    VMM_ASSERT(index < slot_count);
    PageCount slot_pages = PageCount::from_bytes_floor(slot_bytes);
    Gpn start = window.start + PageCount { slot_pages.raw() * index };
    Gpn end = std::min(start + slot_pages, window.end());
    return PageRange::between(start, end);
}

std::uint32_t MemslotPlan::slot_of(Gpn page) const
{
    VMM_ASSERT(window.contains(page));
    return static_cast<std::uint32_t>((page - window.start).bytes() / slot_bytes);
}

Result<OnDemandMemslots> OnDemandMemslots::create(MemslotSink& sink, MemslotPlan plan,
    std::span<std::byte> window_host, GuestMemory* plug)
{
    if (window_host.size() != plan.window.size_bytes())
        return fail(Errc::InvalidArgument, "memslots: host view size differs from the window", window_host.size());
    return OnDemandMemslots { sink, plan, window_host, plug };
}

Result<void> OnDemandMemslots::ensure_mapped(PageRange range)
{
    if (range.empty() || !m_plan.window.contains(range))
        return fail(Errc::OutOfRange, "memslots: range outside the hot-add window", range.start.raw());
    std::uint32_t last = m_plan.slot_of(range.end() - PageCount { 1 });
    for (std::uint32_t index = m_plan.slot_of(range.start); index <= last; ++index) {
        if (m_mapped[index])
            continue;
        PageRange slot = m_plan.slot_range(index);
        auto offset = (slot.start - m_plan.window.start).bytes();
        VMM_TRY(m_sink->add(m_plan.first_slot + index, slot.start_address(),
            m_window_host.subspan(offset, slot.size_bytes())));
        m_mapped[index] = true;
        ++m_mapped_count;
        if (m_plug)
            VMM_TRY(m_plug->set_plugged(slot.start_address(), slot.size_bytes(), true));
    }
    return {};
}

bool OnDemandMemslots::is_mapped(PageRange range) const
{
    if (range.empty())
        return true;
    if (!m_plan.window.contains(range))
        return false;
    std::uint32_t last = m_plan.slot_of(range.end() - PageCount { 1 });
    for (std::uint32_t index = m_plan.slot_of(range.start); index <= last; ++index) {
        if (!m_mapped[index])
            return false;
    }
    return true;
}

Result<void> OnDemandMemslots::reset()
{
    Result<void> first_error {};
    for (std::uint32_t index = 0; index < m_plan.slot_count; ++index) {
        if (!m_mapped[index])
            continue;
        // Unplug first so the VMM stops touching the slot before KVM forgets it.
        PageRange slot = m_plan.slot_range(index);
        if (m_plug) {
            auto unplugged = m_plug->set_plugged(slot.start_address(), slot.size_bytes(), false);
            if (!unplugged && first_error)
                first_error = std::unexpected(unplugged.error());
        }
        auto removed = m_sink->remove(m_plan.first_slot + index);
        if (!removed && first_error)
            first_error = std::unexpected(removed.error());
        m_mapped[index] = false;
        --m_mapped_count;
    }
    return first_error;
}

} // namespace vmm::mem

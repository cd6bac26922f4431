// SPDX-License-Identifier: MIT
// GuestPhysicalMap: validation of guest balloon reports and bookkeeping of hot-add/balloon state.
#include "mem/guest_physical_map.hpp"

namespace vmm::mem {

std::string_view reject_reason_name(RejectReason reason)
{
    switch (reason) {
    case RejectReason::Malformed: return "malformed";
    case RejectReason::OutsideRam: return "outside_ram";
    case RejectReason::AlreadyBallooned: return "already_ballooned";
    case RejectReason::OverlapsBallooned: return "overlaps_ballooned";
    case RejectReason::ExceedsRequest: return "exceeds_request";
    case RejectReason::Unsolicited: return "unsolicited";
    }
    return "unknown";
}

Result<GuestPhysicalMap> GuestPhysicalMap::create(std::span<PageRange const> boot_ram,
    std::optional<PageRange> hot_add_window, std::span<PageRange const> firmware_reserved)
{
    GuestPhysicalMap map;
    for (PageRange range : boot_ram) {
        if (range.empty() || !PageRange::from_guest(range.start.raw(), range.count.raw()))
            return fail(Errc::InvalidArgument, "boot RAM range", range.start.raw());
        if (map.m_boot.insert(range).raw() != 0)
            return fail(Errc::Overlap, "boot RAM ranges overlap", range.start.raw());
    }
    if (hot_add_window) {
        auto window = *hot_add_window;
        if (window.empty() || !PageRange::from_guest(window.start.raw(), window.count.raw()))
            return fail(Errc::InvalidArgument, "hot-add window", window.start.raw());
        if (map.m_boot.intersects(window))
            return fail(Errc::Overlap, "hot-add window overlaps boot RAM", window.start.raw());
        map.m_window = window;
    }
    for (PageRange range : map.m_boot)
        map.m_usable.insert(range);
    for (PageRange range : firmware_reserved) {
        if (range.empty() || !map.m_boot.contains_all(range))
            return fail(Errc::InvalidArgument, "firmware-reserved range outside boot RAM", range.start.raw());
        map.m_reserved.insert(range);
    }
    return map;
}

std::expected<PageRange, RejectReason> GuestPhysicalMap::check_balloon(std::uint64_t start,
    std::uint64_t count) const
{
    auto range = PageRange::from_guest(start, count);
    if (!range)
        return std::unexpected(RejectReason::Malformed);
    if (!m_usable.contains_all(*range) || m_reserved.intersects(*range))
        return std::unexpected(RejectReason::OutsideRam);
    if (m_ballooned.contains_all(*range))
        return std::unexpected(RejectReason::AlreadyBallooned);
    if (m_ballooned.intersects(*range))
        return std::unexpected(RejectReason::OverlapsBallooned);
    return *range;
}

std::expected<PageRange, RejectReason> GuestPhysicalMap::balloon(std::uint64_t start, std::uint64_t count,
    PageCount max_pages)
{
    // Fast path: one lookup in usable RAM, one walk of the balloon tree.
    auto range = PageRange::from_guest(start, count);
    if (range && range->count <= max_pages && m_usable.contains_all(*range) && !m_reserved.intersects(*range)
        && m_ballooned.insert_if_disjoint(*range))
        return *range;
    auto checked = check_balloon(start, count);
    if (checked && checked->count > max_pages)
        checked = std::unexpected(RejectReason::ExceedsRequest);
    VMM_ASSERT(!checked); // The fast path accepts everything check_balloon() would.
    count_rejection(checked.error());
    return checked;
}

std::optional<PageRange> GuestPhysicalMap::take_ballooned(PageCount max)
{
    return m_ballooned.pop_front(max);
}

void GuestPhysicalMap::restore_ballooned(PageRange range)
{
    VMM_ASSERT(m_usable.contains_all(range) && !m_ballooned.intersects(range));
    m_ballooned.insert(range);
}

PageCount GuestPhysicalMap::forget_ballooned()
{
    PageCount forgotten = m_ballooned.total();
    m_ballooned.clear();
    return forgotten;
}

Result<void> GuestPhysicalMap::add_hot_added(PageRange range)
{
    if (!m_window || range.empty() || !m_window->contains(range))
        return fail(Errc::OutOfRange, "hot-added range outside the window", range.start.raw());
    if (m_hot_added.intersects(range))
        return fail(Errc::Overlap, "hot-added range added twice", range.start.raw());
    m_hot_added.insert(range);
    m_usable.insert(range);
    return {};
}

PageRangeSet GuestPhysicalMap::release_hot_added()
{
    PageRangeSet released = std::move(m_hot_added);
    m_hot_added = PageRangeSet {};
    for (PageRange range : released) {
        m_usable.remove(range);
        m_ballooned.remove(range);
    }
    return released;
}

} // namespace vmm::mem

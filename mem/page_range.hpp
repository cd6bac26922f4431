// SPDX-License-Identifier: MIT
// PageRange: a half-open run of 4 KiB guest pages [start, start + count). All arithmetic is
// constexpr; ranges built from guest input go through from_guest(), after which nothing can
// overflow (end() <= MAX_GPN), so nothing downstream re-checks.
#pragma once

#include <algorithm>
#include <optional>

#include <fmt/format.h>

#include "mem/gpa.hpp"

namespace vmm::mem {

struct PageRange {
    Gpn start;
    PageCount count;

    // Rejects count == 0 and ranges ending above MAX_GPN (including start + count overflow).
    static constexpr std::optional<PageRange> from_guest(std::uint64_t start, std::uint64_t count)
    {
        if (count == 0 || start >= MAX_GPN || count > MAX_GPN - start)
            return std::nullopt;
        return PageRange { Gpn { start }, PageCount { count } };
    }
    // [start, end) for host-built ranges; the caller guarantees start <= end.
    static constexpr PageRange between(Gpn start, Gpn end) { return PageRange { start, end - start }; }

    constexpr Gpn end() const { return start + count; }
    constexpr bool empty() const { return count.raw() == 0; }
    constexpr bool contains(Gpn page) const { return start <= page && page < end(); }
    constexpr bool contains(PageRange other) const
    {
        return start <= other.start && other.end() <= end();
    }
    constexpr bool overlaps(PageRange other) const
    {
        return !empty() && !other.empty() && start < other.end() && other.start < end();
    }
    // Touching without overlapping: one ends exactly where the other starts.
    constexpr bool adjacent_to(PageRange other) const
    {
        return end() == other.start || other.end() == start;
    }
    // The common part; empty (count 0) when the ranges do not overlap.
    constexpr PageRange intersect(PageRange other) const
    {
        Gpn low = std::max(start, other.start);
        Gpn high = std::min(end(), other.end());
        if (high <= low)
            return PageRange { low, PageCount { 0 } };
        return between(low, high);
    }
    // The part of *this below other.start (empty if none).
    constexpr PageRange part_before(PageRange other) const
    {
        Gpn high = std::min(end(), other.start);
        return high <= start ? PageRange { start, PageCount { 0 } } : between(start, high);
    }
    // The part of *this at or above other.end() (empty if none).
    constexpr PageRange part_after(PageRange other) const
    {
        Gpn low = std::max(start, other.end());
        return end() <= low ? PageRange { end(), PageCount { 0 } } : between(low, end());
    }
    constexpr Gpa start_address() const { return start.address(); }
    constexpr std::uint64_t size_bytes() const { return count.bytes(); }
    constexpr bool operator==(PageRange const&) const = default;
};

static_assert(PageRange::from_guest(0, 0) == std::nullopt);
static_assert(PageRange::from_guest(MAX_GPN - 1, 2) == std::nullopt);
static_assert(PageRange::from_guest(~std::uint64_t { 0 }, 2) == std::nullopt);
static_assert(PageRange::from_guest(MAX_GPN - 1, 1)->end() == Gpn { MAX_GPN });
static_assert(PageRange { Gpn { 10 }, PageCount { 10 } }.intersect({ Gpn { 15 }, PageCount { 10 } })
    == PageRange { Gpn { 15 }, PageCount { 5 } });
static_assert(PageRange { Gpn { 10 }, PageCount { 10 } }.adjacent_to({ Gpn { 20 }, PageCount { 1 } }));
static_assert(!PageRange { Gpn { 10 }, PageCount { 10 } }.overlaps({ Gpn { 20 }, PageCount { 1 } }));

} // namespace vmm::mem

template<>
struct fmt::formatter<vmm::mem::PageRange> : fmt::formatter<std::uint64_t> {
    auto format(vmm::mem::PageRange range, fmt::format_context& context) const
    {
        return fmt::format_to(context.out(), "[gpn {:#x}, +{})", range.start.raw(), range.count.raw());
    }
};

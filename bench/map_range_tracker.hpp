// SPDX-License-Identifier: MIT
// MapRangeTracker: the textbook baseline for ballooned-page tracking, a std::map<start, end>
// of disjoint half-open page runs that merges touching and overlapping runs on insert (the
// same merge rule as QEMU's GTree PageRangeTree, hw/hyperv/hv-balloon-page_range_tree.c).
#pragma once

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <map>

namespace vmm::bench {

class MapRangeTracker {
public:
    // Adds [start, start + count); returns the pages that were already present.
    std::uint64_t insert(std::uint64_t start, std::uint64_t count)
    {
        std::uint64_t end = start + count;
        std::uint64_t duplicates = 0;
        // The last run starting at or before `start` may overlap or touch the new one.
        auto it = m_runs.upper_bound(start);
        if (it != m_runs.begin()) {
            auto before = std::prev(it);
            if (before->second >= start) {
                duplicates += std::min(before->second, end) - start;
                start = before->first;
                end = std::max(end, before->second);
                it = m_runs.erase(before);
            }
        }
        // Absorb every following run that overlaps or touches [start, end).
        while (it != m_runs.end() && it->first <= end) {
            duplicates += std::min(it->second, end) - it->first;
            end = std::max(end, it->second);
            it = m_runs.erase(it);
        }
        m_runs.emplace_hint(it, start, end);
        return duplicates;
    }

    bool contains(std::uint64_t page) const
    {
        auto it = m_runs.upper_bound(page);
        if (it == m_runs.begin())
            return false;
        return std::prev(it)->second > page;
    }

    std::size_t run_count() const { return m_runs.size(); }
    std::uint64_t total_pages() const
    {
        std::uint64_t total = 0;
        for (auto const& [start, end] : m_runs)
            total += end - start;
        return total;
    }
    void clear() { m_runs.clear(); }

private:
    std::map<std::uint64_t, std::uint64_t> m_runs; // start -> end (exclusive)
};

} // namespace vmm::bench

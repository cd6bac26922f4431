// SPDX-License-Identifier: MIT
// PageRangeSet: merge-on-insert, split-on-remove over a Boost.Intrusive red-black tree.
// Keys (run starts) are edited in place only where the order provably stays intact: runs are
// disjoint and never touch, so a run can grow down to (but not onto) its predecessor's end.
#include "mem/page_range_set.hpp"

#include <memory>
#include <utility>

#include "base/error.hpp"

namespace vmm::mem {

namespace {
// The one place nodes die: unlinked by the tree, then freed.
struct DeleteNode {
    void operator()(PageRangeNode* node) const { std::default_delete<PageRangeNode> {}(node); }
};
} // namespace

PageRangeSet::PageRangeSet(PageRangeSet&& other) noexcept
    : m_tree(std::move(other.m_tree))
    , m_total(std::exchange(other.m_total, PageCount { 0 }))
{
}

PageRangeSet& PageRangeSet::operator=(PageRangeSet&& other) noexcept
{
    if (this != &other) {
        clear();
        m_tree = std::move(other.m_tree);
        m_total = std::exchange(other.m_total, PageCount { 0 });
    }
    return *this;
}

PageRangeSet::~PageRangeSet() { clear(); }

void PageRangeSet::clear()
{
    m_tree.clear_and_dispose(DeleteNode {});
    m_total = PageCount { 0 };
}

PageRangeSet::Tree::iterator PageRangeSet::first_intersecting(PageRange range)
{
    auto it = m_tree.upper_bound(range.start); // First run starting after range.start.
    if (it != m_tree.begin() && std::prev(it)->range.end() > range.start)
        --it; // The previous run reaches into range.
    if (it != m_tree.end() && it->range.start < range.end())
        return it;
    return m_tree.end();
}

PageRangeSet::Tree::const_iterator PageRangeSet::first_intersecting(PageRange range) const
{
    return const_cast<PageRangeSet*>(this)->first_intersecting(range); // Same walk, no mutation.
}

PageCount PageRangeSet::insert(PageRange range)
{
    if (range.empty())
        return PageCount { 0 };
    // First run that overlaps or touches `range`: the previous run if it reaches range.start.
    auto it = m_tree.upper_bound(range.start);
    if (it != m_tree.begin() && std::prev(it)->range.end() >= range.start)
        --it;
    if (it == m_tree.end() || it->range.start > range.end()) {
        m_tree.insert_before(it, *new PageRangeNode { range });
        m_total += range.count;
        return PageCount { 0 };
    }
    // Grow the first touching run over `range` and absorb every later run it now reaches.
    PageCount duplicates = it->range.intersect(range).count;
    Gpn start = std::min(it->range.start, range.start);
    Gpn end = std::max(it->range.end(), range.end());
    auto next = std::next(it);
    while (next != m_tree.end() && next->range.start <= end) {
        duplicates += next->range.intersect(range).count;
        end = std::max(end, next->range.end());
        next = m_tree.erase_and_dispose(next, DeleteNode {});
    }
    it->range = PageRange::between(start, end); // Order kept: still above the predecessor's end.
    m_total += range.count - duplicates;
    return duplicates;
}

bool PageRangeSet::insert_if_disjoint(PageRange range)
{
    if (range.empty())
        return true;
    auto next = m_tree.upper_bound(range.start);
    auto previous = next == m_tree.begin() ? m_tree.end() : std::prev(next);
    if (previous != m_tree.end() && previous->range.end() > range.start)
        return false;
    if (next != m_tree.end() && next->range.start < range.end())
        return false;
    bool joins_previous = previous != m_tree.end() && previous->range.end() == range.start;
    bool joins_next = next != m_tree.end() && next->range.start == range.end();
    if (joins_previous && joins_next) {
        Gpn end = next->range.end();
        m_tree.erase_and_dispose(next, DeleteNode {});
        previous->range = PageRange::between(previous->range.start, end);
    } else if (joins_previous) {
        previous->range.count += range.count;
    } else if (joins_next) {
        next->range = PageRange::between(range.start, next->range.end()); // Stays above previous.
    } else {
        m_tree.insert_before(next, *new PageRangeNode { range });
    }
    m_total += range.count;
    return true;
}

PageCount PageRangeSet::remove(PageRange range)
{
    PageCount removed { 0 };
    auto it = first_intersecting(range);
    while (it != m_tree.end() && it->range.start < range.end()) {
        PageRange run = it->range;
        PageRange before = run.part_before(range);
        PageRange after = run.part_after(range);
        removed += run.intersect(range).count;
        if (!before.empty() && !after.empty()) {
            it->range = before; // Same key.
            m_tree.insert_before(std::next(it), *new PageRangeNode { after });
            break;
        }
        if (!before.empty()) {
            it->range = before;
            ++it;
        } else if (!after.empty()) {
            it->range = after; // Key grows but stays below the successor's start.
            break;
        } else {
            it = m_tree.erase_and_dispose(it, DeleteNode {});
        }
    }
    m_total -= removed;
    return removed;
}

std::optional<PageRange> PageRangeSet::pop_front(PageCount max)
{
    if (m_tree.empty() || max.raw() == 0)
        return std::nullopt;
    auto it = m_tree.begin();
    PageRange taken = it->range;
    if (taken.count <= max) {
        m_tree.erase_and_dispose(it, DeleteNode {});
    } else {
        taken.count = max;
        it->range = PageRange::between(taken.end(), it->range.end());
    }
    m_total -= taken.count;
    return taken;
}

bool PageRangeSet::contains_all(PageRange range) const
{
    if (range.empty())
        return true;
    auto it = m_tree.upper_bound(range.start);
    if (it == m_tree.begin())
        return false;
    // Runs are maximal, so a fully present range lies inside a single run.
    return std::prev(it)->range.contains(range);
}

bool PageRangeSet::intersects(PageRange range) const
{
    return !range.empty() && first_intersecting(range) != m_tree.end();
}

PageCount PageRangeSet::overlap(PageRange range) const
{
    PageCount present { 0 };
    if (range.empty())
        return present;
    for (auto it = first_intersecting(range); it != m_tree.end() && it->range.start < range.end(); ++it)
        present += it->range.intersect(range).count;
    return present;
}

} // namespace vmm::mem

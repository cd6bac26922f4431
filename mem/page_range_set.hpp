// SPDX-License-Identifier: MIT
// PageRangeSet: disjoint, maximal page ranges ordered by start on a Boost.Intrusive set.
// Touching or overlapping ranges merge on insert, remove splits nodes, so the node count is the
// number of runs, not of pages: 1 TiB ballooned in one run costs one node.
#pragma once

#include <cstddef>
#include <iterator>
#include <optional>

#include <boost/intrusive/set.hpp>

#include "mem/page_range.hpp"

namespace vmm::mem {

namespace bi = boost::intrusive;

// Owned by exactly one PageRangeSet (allocated and freed only by it); safe_link turns destroying
// a still-linked node into an assertion.
struct PageRangeNode : bi::set_base_hook<bi::link_mode<bi::safe_link>> {
    explicit PageRangeNode(PageRange r)
        : range(r)
    {
    }
    PageRange range;
};

struct PageRangeNodeStart {
    using type = Gpn;
    Gpn operator()(PageRangeNode const& node) const { return node.range.start; }
};

class PageRangeSet {
    using Tree = bi::set<PageRangeNode, bi::key_of_value<PageRangeNodeStart>>;

public:
    // Metadata cost of one run, for the "bytes per ballooned run" budget.
    static constexpr std::size_t NODE_BYTES = sizeof(PageRangeNode);

    class ConstIterator {
    public:
        using iterator_category = std::bidirectional_iterator_tag;
        using value_type = PageRange;
        using difference_type = std::ptrdiff_t;
        using pointer = PageRange const*;
        using reference = PageRange const&;
        ConstIterator() = default;
        explicit ConstIterator(Tree::const_iterator it)
            : m_it(it)
        {
        }
        PageRange const& operator*() const { return m_it->range; }
        PageRange const* operator->() const { return &m_it->range; }
        ConstIterator& operator++() { ++m_it; return *this; }
        ConstIterator operator++(int) { auto copy = *this; ++m_it; return copy; }
        ConstIterator& operator--() { --m_it; return *this; }
        ConstIterator operator--(int) { auto copy = *this; --m_it; return copy; }
        bool operator==(ConstIterator const&) const = default;

    private:
        Tree::const_iterator m_it;
    };

    PageRangeSet() = default;
    PageRangeSet(PageRangeSet const&) = delete;
    PageRangeSet& operator=(PageRangeSet const&) = delete;
    PageRangeSet(PageRangeSet&& other) noexcept;
    PageRangeSet& operator=(PageRangeSet&& other) noexcept;
    ~PageRangeSet();

    // Adds `range`, merging with overlapping and adjacent runs. Returns the pages that were
    // already present (duplicates), which are not counted twice in total().
    PageCount insert(PageRange range);
    // Inserts `range` only if none of its pages is present (one tree walk: the hot path of
    // balloon validation). Returns false, changing nothing, on any overlap.
    bool insert_if_disjoint(PageRange range);
    // Removes every page of `range` that is present, splitting runs. Returns the pages removed.
    PageCount remove(PageRange range);
    // Takes up to `max` pages from the lowest run (splitting it if larger).
    std::optional<PageRange> pop_front(PageCount max);
    void clear();

    bool contains_all(PageRange range) const; // Every page present (true for an empty range).
    bool intersects(PageRange range) const;   // At least one page present.
    PageCount overlap(PageRange range) const; // Pages of `range` present.

    PageCount total() const { return m_total; }
    std::size_t node_count() const { return m_tree.size(); }
    std::size_t metadata_bytes() const { return node_count() * NODE_BYTES; }
    bool empty() const { return m_tree.empty(); }
    ConstIterator begin() const { return ConstIterator { m_tree.begin() }; }
    ConstIterator end() const { return ConstIterator { m_tree.end() }; }

private:
    // The first run that overlaps `range`, or end().
    Tree::iterator first_intersecting(PageRange range);
    Tree::const_iterator first_intersecting(PageRange range) const;

    Tree m_tree;
    PageCount m_total { 0 };
};

} // namespace vmm::mem

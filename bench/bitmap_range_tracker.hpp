// SPDX-License-Identifier: MIT
// BitmapRangeTracker: the virtio-mem style baseline, one bit per 4 KiB page of a fixed span
// (virtio-mem keeps one bit per device block; at 4 KiB granularity that is one bit per page).
// Its metadata is span / 32768 bytes whatever is tracked: 32 MiB for 1 TiB.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <vector>

namespace vmm::bench {

class BitmapRangeTracker {
public:
    // Tracks pages [base_page, base_page + span_pages).
    BitmapRangeTracker(std::uint64_t base_page, std::uint64_t span_pages)
        : m_base(base_page)
        , m_words((span_pages + 63) / 64, 0)
    {
    }

    // Sets the bits of [start, start + count) (inside the span); returns the pages already set.
    std::uint64_t insert(std::uint64_t start, std::uint64_t count)
    {
        std::uint64_t duplicates = 0;
        std::uint64_t page = start - m_base;
        std::uint64_t const end = page + count;
        while (page < end) {
            std::uint64_t const word = page / 64;
            unsigned const bit = static_cast<unsigned>(page % 64);
            std::uint64_t const n = std::min<std::uint64_t>(64 - bit, end - page);
            std::uint64_t const mask = (n == 64 ? ~std::uint64_t { 0 } : ((std::uint64_t { 1 } << n) - 1)) << bit;
            duplicates += static_cast<std::uint64_t>(std::popcount(m_words[word] & mask));
            m_words[word] |= mask;
            page += n;
        }
        return duplicates;
    }

    bool contains(std::uint64_t page) const
    {
        page -= m_base;
        return (m_words[page / 64] >> (page % 64)) & 1;
    }

    std::uint64_t total_pages() const
    {
        std::uint64_t total = 0;
        for (std::uint64_t word : m_words)
            total += static_cast<std::uint64_t>(std::popcount(word));
        return total;
    }
    std::size_t metadata_bytes() const { return m_words.size() * sizeof(std::uint64_t); }

private:
    std::uint64_t m_base;
    std::vector<std::uint64_t> m_words;
};

} // namespace vmm::bench

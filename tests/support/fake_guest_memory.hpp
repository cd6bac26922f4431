// SPDX-License-Identifier: MIT
// FakeGuestMemory: the one guest RAM of the unit tests, fuzz targets, benchmarks and the *_kvm
// tests. A layout of RAM ranges (gaps are holes) backed by anonymous MAP_NORESERVE mappings with
// a PROT_NONE guard page on each side, so a host access that strays past a range faults at
// once instead of corrupting a neighbour, and a range costs only the pages something touches.
// Every byte starts as `fill`; touched_pages()/reset() find and undo what a test or a fuzz
// input wrote without copying the RAM, which keeps one instance cheap to reuse across inputs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "base/mapping.hpp"
#include "base/wire.hpp"
#include "mem/gpa.hpp"
#include "mem/guest_memory.hpp"

namespace vmm::test {

// One RAM range of a layout: [gpa, gpa + size_bytes), both page aligned.
struct RamRange {
    std::uint64_t gpa;
    std::uint64_t size_bytes;
};

class FakeGuestMemory {
public:
    // Ranges sorted and non-overlapping (GuestMemory::from_regions checks; a bad layout is a
    // bug in the test and asserts).
    explicit FakeGuestMemory(std::span<RamRange const> layout, std::byte fill = std::byte { 0 });
    FakeGuestMemory(std::initializer_list<RamRange> layout, std::byte fill = std::byte { 0 })
        : FakeGuestMemory(std::span { layout.begin(), layout.size() }, fill)
    {
    }
    // Movable: a Mapping keeps its address when moved, so the GuestMemory view stays valid.
    FakeGuestMemory(FakeGuestMemory&&) = default;
    FakeGuestMemory& operator=(FakeGuestMemory&&) = default;

    mem::GuestMemory const& memory() const { return m_memory; }
    std::byte fill_byte() const { return m_fill; }
    // Host bytes of range `index`, e.g. for a KVM memslot (page aligned, inside the guards).
    std::span<std::byte> host(std::size_t index) const;

    // Checked accessors for test code: the address must be RAM, else the test itself is wrong
    // (asserts; fuzz targets link this without gtest).
    template<Wire T>
    T read(std::uint64_t gpa) const
    {
        auto value = m_memory.read_obj<T>(mem::Gpa { gpa });
        VMM_ASSERT(value.has_value());
        return *value;
    }
    template<Wire T>
    void write(std::uint64_t gpa, T const& value) const
    {
        VMM_ASSERT(m_memory.write_obj(mem::Gpa { gpa }, value).has_value());
    }
    std::vector<std::byte> read_bytes(std::uint64_t gpa, std::size_t size) const;
    void write_bytes(std::uint64_t gpa, std::span<std::byte const> bytes) const;
    void fill_page(mem::Gpn page, std::byte value) const;

    // Copy of all RAM (ranges back to back), and the pages (by Gpn) that differ from such a copy.
    std::vector<std::byte> snapshot() const;
    std::vector<std::uint64_t> changed_pages(std::vector<std::byte> const& before) const;
    // Pages (by Gpn) that no longer hold only the fill byte: what the code under test wrote.
    // Reads every page (untouched ones map the kernel's zero page, nothing is allocated).
    std::vector<std::uint64_t> touched_pages() const;
    // Pages (by Gpn) the host has backed since construction or the last reset() (mincore):
    // a check that code wrote nothing, without reading the RAM. Only meaningful with fill 0
    // (a non-zero fill touches every page at construction).
    std::vector<std::uint64_t> resident_pages() const;
    // Rewrites `pages` (from touched_pages(), which already paid for the scan) with the fill byte.
    void restore(std::span<std::uint64_t const> pages) const;
    // Back to the state of a fresh instance, as cheaply as the range's size allows: tiny ranges
    // (<= RESET_FILL_BYTES) are simply refilled; up to RESET_SCAN_BYTES they are scanned and
    // only touched pages rewritten (no syscall); larger ones are dropped with MADV_DONTNEED
    // (cost proportional to what was touched) and refilled if the fill byte is not 0.
    void reset();
    static constexpr std::uint64_t RESET_FILL_BYTES = 64 << 10; // Refilling beat scanning (fuzz_hyperv_*).
    static constexpr std::uint64_t RESET_SCAN_BYTES = 1 << 20;

private:
    struct Range {
        std::uint64_t gpa;
        Mapping mapping; // Guard page, the range, guard page.
    };
    std::vector<Range> m_ranges;
    std::byte m_fill;
    mem::GuestMemory m_memory;
    mutable std::vector<unsigned char> m_mincore; // resident_pages()' buffer.
};

} // namespace vmm::test

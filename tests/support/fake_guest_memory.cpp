// SPDX-License-Identifier: MIT
#include "tests/support/fake_guest_memory.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace vmm::test {

namespace {

constexpr std::uint64_t PAGE = mem::PAGE_SIZE;

bool page_holds_only(std::byte const* page, std::byte fill)
{
    // A page of the fill byte to compare against (memcmp is vectorised; a byte loop is not).
    static thread_local std::array<std::byte, PAGE> pattern {};
    static thread_local std::byte pattern_fill { 0 };
    if (pattern_fill != fill) {
        pattern.fill(fill);
        pattern_fill = fill;
    }
    return std::memcmp(page, pattern.data(), PAGE) == 0;
}

} // namespace

FakeGuestMemory::FakeGuestMemory(std::span<RamRange const> layout, std::byte fill)
    : m_fill(fill)
{
    std::vector<mem::RamRegion> regions;
    for (auto const& range : layout) {
        VMM_ASSERT(range.gpa % PAGE == 0 && range.size_bytes % PAGE == 0 && range.size_bytes > 0);
        auto mapping = Mapping::reserve(range.size_bytes + 2 * PAGE); // PROT_NONE, MAP_NORESERVE.
        VMM_ASSERT(mapping.has_value());
        VMM_ASSERT(mapping->protect(PAGE, range.size_bytes, PROT_READ | PROT_WRITE).has_value());
        m_ranges.push_back(Range { range.gpa, std::move(*mapping) });
        regions.push_back(mem::RamRegion { mem::Gpa { range.gpa }, host(m_ranges.size() - 1) });
        if (fill != std::byte { 0 })
            std::ranges::fill(regions.back().host, fill);
    }
    auto memory = mem::GuestMemory::from_regions(std::move(regions));
    VMM_ASSERT(memory.has_value());
    m_memory = std::move(*memory);
}

std::span<std::byte> FakeGuestMemory::host(std::size_t index) const
{
    VMM_ASSERT(index < m_ranges.size());
    auto const bytes = m_ranges[index].mapping.bytes();
    return bytes.subspan(PAGE, bytes.size() - 2 * PAGE);
}

std::vector<std::byte> FakeGuestMemory::read_bytes(std::uint64_t gpa, std::size_t size) const
{
    std::vector<std::byte> bytes(size);
    VMM_ASSERT(m_memory.read(mem::Gpa { gpa }, bytes).has_value());
    return bytes;
}

void FakeGuestMemory::write_bytes(std::uint64_t gpa, std::span<std::byte const> bytes) const
{
    VMM_ASSERT(m_memory.write(mem::Gpa { gpa }, bytes).has_value());
}

void FakeGuestMemory::fill_page(mem::Gpn page, std::byte value) const
{
    VMM_ASSERT(m_memory.fill(page.address(), value, PAGE).has_value());
}

std::vector<std::byte> FakeGuestMemory::snapshot() const
{
    std::vector<std::byte> all;
    for (std::size_t i = 0; i < m_ranges.size(); ++i) {
        auto const bytes = host(i);
        all.insert(all.end(), bytes.begin(), bytes.end());
    }
    return all;
}

std::vector<std::uint64_t> FakeGuestMemory::changed_pages(std::vector<std::byte> const& before) const
{
    std::vector<std::uint64_t> pages;
    std::size_t offset = 0;
    for (std::size_t i = 0; i < m_ranges.size(); ++i) {
        auto const bytes = host(i);
        for (std::size_t at = 0; at < bytes.size(); at += PAGE, offset += PAGE) {
            VMM_ASSERT(offset + PAGE <= before.size());
            if (std::memcmp(bytes.data() + at, before.data() + offset, PAGE) != 0)
                pages.push_back((m_ranges[i].gpa + at) / PAGE);
        }
    }
    return pages;
}

std::vector<std::uint64_t> FakeGuestMemory::touched_pages() const
{
    std::vector<std::uint64_t> pages;
    for (std::size_t i = 0; i < m_ranges.size(); ++i) {
        auto const bytes = host(i);
        for (std::size_t at = 0; at < bytes.size(); at += PAGE)
            if (!page_holds_only(bytes.data() + at, m_fill))
                pages.push_back((m_ranges[i].gpa + at) / PAGE);
    }
    return pages;
}

std::vector<std::uint64_t> FakeGuestMemory::resident_pages() const
{
    std::vector<std::uint64_t> pages;
    auto& resident = m_mincore; // Reused: a fuzz target calls this once per input.
    for (std::size_t i = 0; i < m_ranges.size(); ++i) {
        auto const bytes = host(i);
        resident.resize(bytes.size() / PAGE);
        VMM_ASSERT(::mincore(bytes.data(), bytes.size(), resident.data()) == 0);
        for (std::size_t page = 0; page < resident.size(); ++page)
            if (resident[page] & 1)
                pages.push_back(m_ranges[i].gpa / PAGE + page);
    }
    return pages;
}

void FakeGuestMemory::restore(std::span<std::uint64_t const> pages) const
{
    for (auto page : pages)
        fill_page(mem::Gpn { page }, m_fill);
}

void FakeGuestMemory::reset()
{
    for (std::size_t i = 0; i < m_ranges.size(); ++i) {
        auto const bytes = host(i);
        if (bytes.size() <= RESET_FILL_BYTES) {
            std::memset(bytes.data(), std::to_integer<int>(m_fill), bytes.size());
            continue;
        }
        if (bytes.size() <= RESET_SCAN_BYTES) {
            for (std::size_t at = 0; at < bytes.size(); at += PAGE)
                if (!page_holds_only(bytes.data() + at, m_fill))
                    std::memset(bytes.data() + at, std::to_integer<int>(m_fill), PAGE);
            continue;
        }
        VMM_ASSERT(m_ranges[i].mapping.advise(PAGE, bytes.size(), MADV_DONTNEED).has_value());
        if (m_fill != std::byte { 0 })
            std::ranges::fill(bytes, m_fill);
    }
}

} // namespace vmm::test

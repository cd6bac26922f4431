// SPDX-License-Identifier: MIT
// Guest RAM for firmware tests: one zeroed heap buffer at GPA 0 (default 64 MiB), or the
// layout ram_ranges() asks for when the test needs holes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "firmware/e820.hpp"
#include "mem/guest_memory.hpp"

namespace vmm::firmware::test {

class TestMemory {
public:
    explicit TestMemory(std::uint64_t ram_bytes = 64 * MIB)
    {
        std::vector<mem::RamRegion> regions;
        for (auto const& range : ram_ranges(ram_bytes)) {
            m_backing.emplace_back(range.size_bytes);
            regions.push_back({ range.start, m_backing.back() });
        }
        m_memory = mem::GuestMemory::from_regions(std::move(regions)).value();
    }
    mem::GuestMemory const& memory() const { return m_memory; }

    template<Wire T>
    T read(std::uint64_t gpa) const
    {
        return m_memory.read_obj<T>(mem::Gpa { gpa }).value();
    }
    std::vector<std::byte> read_bytes(std::uint64_t gpa, std::size_t size) const
    {
        std::vector<std::byte> out(size);
        EXPECT_TRUE(m_memory.read(mem::Gpa { gpa }, out));
        return out;
    }

private:
    std::vector<std::vector<std::byte>> m_backing; // Sized before m_memory is built; never resized after.
    mem::GuestMemory m_memory;
};

inline std::vector<std::byte> bytes_of(std::initializer_list<unsigned> values)
{
    std::vector<std::byte> out;
    for (unsigned v : values)
        out.push_back(std::byte { static_cast<std::uint8_t>(v) });
    return out;
}

} // namespace vmm::firmware::test

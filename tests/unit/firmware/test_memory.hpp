// SPDX-License-Identifier: MIT
// Guest RAM for firmware tests, laid out as ram_ranges() asks (one range below 3 GiB, one
// from 4 GiB for bigger guests). Anonymous MAP_NORESERVE mappings are zero-filled lazily, so
// a test pays only for the pages it touches, as with real guest RAM.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <sys/mman.h>

#include <gtest/gtest.h>

#include "base/mapping.hpp"

#include "firmware/e820.hpp"
#include "mem/guest_memory.hpp"

namespace vmm::firmware::test {

class TestMemory {
public:
    explicit TestMemory(std::uint64_t ram_bytes = 64 * MIB)
    {
        std::vector<mem::RamRegion> regions;
        for (auto const& range : ram_ranges(ram_bytes)) {
            m_backing.push_back(Mapping::anonymous(range.size_bytes, PROT_READ | PROT_WRITE, MAP_NORESERVE).value());
            regions.push_back({ range.start, m_backing.back().bytes() });
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
    std::vector<Mapping> m_backing; // Moving a Mapping keeps its address, so regions stay valid.
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

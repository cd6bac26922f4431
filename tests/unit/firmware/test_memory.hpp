// SPDX-License-Identifier: MIT
// Guest RAM for firmware tests: a FakeGuestMemory laid out as ram_ranges() asks (one range
// below 3 GiB, one from 4 GiB for bigger guests). Its MAP_NORESERVE ranges are zero-filled
// lazily, so a test pays only for the pages it touches, as with real guest RAM.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "firmware/e820.hpp"
#include "mem/guest_memory.hpp"
#include "tests/support/fake_guest_memory.hpp"

namespace vmm::firmware::test {

using vmm::test::FakeGuestMemory;

// Guest RAM laid out as ram_ranges() asks for `ram_bytes` of boot RAM.
inline FakeGuestMemory guest_ram(std::uint64_t ram_bytes = 64 * MIB)
{
    std::vector<vmm::test::RamRange> layout;
    for (auto const& range : ram_ranges(ram_bytes))
        layout.push_back({ range.start.raw(), range.size_bytes });
    return FakeGuestMemory(layout);
}

inline std::vector<std::byte> bytes_of(std::initializer_list<unsigned> values)
{
    std::vector<std::byte> out;
    for (unsigned v : values)
        out.push_back(std::byte { static_cast<std::uint8_t>(v) });
    return out;
}

} // namespace vmm::firmware::test

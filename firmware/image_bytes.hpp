// SPDX-License-Identifier: MIT
// Bounds-checked reads from an untrusted byte image (kernel files): every offset and length
// is checked without overflow before any byte is copied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

#include "base/wire.hpp"

namespace vmm::firmware {

// True when [offset, offset + length) lies inside an image of `size` bytes.
constexpr bool fits_in(std::size_t size, std::uint64_t offset, std::uint64_t length)
{
    return offset <= size && length <= size - offset;
}

// Copies a wire struct out of `bytes` at `offset`, or nullopt if it does not fit.
template<Wire T>
std::optional<T> read_wire(std::span<std::byte const> bytes, std::uint64_t offset)
{
    if (!fits_in(bytes.size(), offset, sizeof(T)))
        return std::nullopt;
    T value;
    std::memcpy(&value, bytes.data() + offset, sizeof(T));
    return value;
}

} // namespace vmm::firmware

// SPDX-License-Identifier: MIT
// The Wire concept: types that may be copied to or from guest memory byte for byte.
#pragma once

#include <bit>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

namespace vmm {

template<typename T>
concept Wire = std::is_trivially_copyable_v<T> && std::is_standard_layout_v<T>
    && std::has_unique_object_representations_v<T>; // No padding, no floats.

static_assert(std::endian::native == std::endian::little,
    "x86-only VMM: Hyper-V, VMBus and boot structures are little-endian, so wire integers are plain");

// Bytes of a wire struct (for building messages in tests and engines).
template<Wire T>
std::span<std::byte const> wire_bytes(T const& value)
{
    return std::as_bytes(std::span { &value, 1 });
}

// Copies a wire struct out of a byte span; the caller has checked the size.
template<Wire T>
T wire_from(std::span<std::byte const> bytes)
{
    T value;
    std::memcpy(&value, bytes.data(), sizeof(T));
    return value;
}

} // namespace vmm

// SPDX-License-Identifier: MIT
// Fixed-width integer aliases used across microvmm (SerenityOS AK/Types.h style).
#pragma once

#include <cstddef>
#include <cstdint>

namespace vmm {

using u8 = std::uint8_t;
using u16 = std::uint16_t;
using u32 = std::uint32_t;
using u64 = std::uint64_t;
using i32 = std::int32_t;
using i64 = std::int64_t;

inline constexpr u64 KIB = 1024;
inline constexpr u64 MIB = 1024 * KIB;
inline constexpr u64 GIB = 1024 * MIB;

} // namespace vmm

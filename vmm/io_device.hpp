// SPDX-License-Identifier: MIT
// IoDevice: what a port-I/O or MMIO device implements. Devices see offsets relative to the
// range they are attached at, never absolute addresses and never KVM (style guide B10).
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include "base/types.hpp"

namespace vmm {

enum class IoStatus : u8 { Ok, Unclaimed, BadOffset, BadSize };

class IoDevice {
public:
    virtual ~IoDevice() = default;
    virtual std::string_view name() const = 0;
    // data.size() is 1, 2, 4 or 8 and offset + data.size() lies inside the attached range.
    virtual IoStatus read(u64 offset, std::span<std::byte> data) = 0;
    virtual IoStatus write(u64 offset, std::span<std::byte const> data) = 0;
};

} // namespace vmm

// SPDX-License-Identifier: MIT
// UTF-16LE <-> UTF-8 for KVP strings: Hyper-V exchanges keys and values as NUL-terminated
// UTF-16LE (Linux hv_kvp.c kvp_respond_to_host and kvp_send_key convert to and from UTF-8).
// Decoding guest text never fails: it stops at the first NUL or the end of the bytes, and a
// lone surrogate becomes U+FFFD, so the result is always valid UTF-8 (safe to put in JSON).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/types.hpp"

namespace vmm::ic {

// Up to the first NUL unit within `bytes` (an odd last byte is ignored).
std::string utf8_from_utf16le(std::span<std::byte const> bytes);
// Encodes `text` (which must be valid UTF-8) as UTF-16LE code units, no terminator; nullopt
// when `text` is not valid UTF-8.
std::optional<std::vector<u16>> utf16_from_utf8(std::string_view text);

} // namespace vmm::ic

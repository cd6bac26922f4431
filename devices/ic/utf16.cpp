// SPDX-License-Identifier: MIT
// UTF-16LE <-> UTF-8 for KVP strings; see utf16.hpp.
#include "devices/ic/utf16.hpp"

#include <cstring>

namespace vmm::ic {
namespace {

constexpr char32_t REPLACEMENT = 0xFFFD;

void put_utf8(std::string& out, char32_t cp)
{
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

bool high_surrogate(u16 unit) { return unit >= 0xD800 && unit <= 0xDBFF; }
bool low_surrogate(u16 unit) { return unit >= 0xDC00 && unit <= 0xDFFF; }

} // namespace

std::string utf8_from_utf16le(std::span<std::byte const> bytes)
{
    std::string out;
    std::size_t const units = bytes.size() / 2;
    auto unit_at = [&](std::size_t i) {
        return static_cast<u16>(std::to_integer<u16>(bytes[2 * i]) | (std::to_integer<u16>(bytes[2 * i + 1]) << 8));
    };
    for (std::size_t i = 0; i < units; ++i) {
        u16 unit = unit_at(i);
        if (unit == 0)
            break;
        if (high_surrogate(unit) && i + 1 < units && low_surrogate(unit_at(i + 1))) {
            char32_t cp = 0x10000 + ((char32_t { unit } - 0xD800) << 10) + (char32_t { unit_at(i + 1) } - 0xDC00);
            put_utf8(out, cp);
            ++i;
        } else if (high_surrogate(unit) || low_surrogate(unit)) {
            put_utf8(out, REPLACEMENT);
        } else {
            put_utf8(out, unit);
        }
    }
    return out;
}

std::optional<std::vector<u16>> utf16_from_utf8(std::string_view text)
{
    std::vector<u16> out;
    std::size_t i = 0;
    while (i < text.size()) {
        auto byte = static_cast<unsigned char>(text[i]);
        char32_t cp;
        std::size_t length;
        if (byte < 0x80) {
            cp = byte;
            length = 1;
        } else if ((byte & 0xE0) == 0xC0) {
            cp = byte & 0x1F;
            length = 2;
        } else if ((byte & 0xF0) == 0xE0) {
            cp = byte & 0x0F;
            length = 3;
        } else if ((byte & 0xF8) == 0xF0) {
            cp = byte & 0x07;
            length = 4;
        } else {
            return std::nullopt;
        }
        if (i + length > text.size())
            return std::nullopt;
        for (std::size_t k = 1; k < length; ++k) {
            auto next = static_cast<unsigned char>(text[i + k]);
            if ((next & 0xC0) != 0x80)
                return std::nullopt;
            cp = (cp << 6) | (next & 0x3F);
        }
        // Overlong forms, surrogates and values past U+10FFFF are not UTF-8 (RFC 3629 section 3).
        constexpr char32_t MIN_FOR_LENGTH[] = { 0, 0, 0x80, 0x800, 0x10000 };
        if (cp < MIN_FOR_LENGTH[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return std::nullopt;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            out.push_back(static_cast<u16>(0xD800 + (cp >> 10)));
            out.push_back(static_cast<u16>(0xDC00 + (cp & 0x3FF)));
        } else {
            out.push_back(static_cast<u16>(cp));
        }
        i += length;
    }
    return out;
}

} // namespace vmm::ic

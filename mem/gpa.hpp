// SPDX-License-Identifier: MIT
// Guest-physical address types. Gpa is bytes, Gpn is a 4 KiB page number, PageCount counts pages.
// Distinct types so a page count is never passed where a byte address is expected.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>

#include <fmt/format.h>

namespace vmm::mem {

inline constexpr std::uint64_t PAGE_SIZE = 4096;
inline constexpr unsigned PAGE_SHIFT = 12;
// x86-64 physical addresses are at most 52 bits (Intel SDM Vol. 3A 4.1.4): a larger Gpn is bogus.
inline constexpr std::uint64_t MAX_GPN = (std::uint64_t { 1 } << (52 - PAGE_SHIFT));

class Gpn;

class Gpa {
public:
    constexpr Gpa() = default;
    constexpr explicit Gpa(std::uint64_t raw)
        : m_raw(raw)
    {
    }
    constexpr std::uint64_t raw() const { return m_raw; }
    constexpr std::optional<Gpa> checked_add(std::uint64_t bytes) const
    {
        std::uint64_t sum;
        if (__builtin_add_overflow(m_raw, bytes, &sum))
            return std::nullopt;
        return Gpa { sum };
    }
    constexpr Gpn page() const; // Rounds down.
    constexpr std::uint64_t page_offset() const { return m_raw & (PAGE_SIZE - 1); }
    constexpr bool page_aligned() const { return page_offset() == 0; }
    constexpr auto operator<=>(Gpa const&) const = default;

private:
    std::uint64_t m_raw { 0 };
};

class PageCount {
public:
    constexpr PageCount() = default;
    constexpr explicit PageCount(std::uint64_t raw)
        : m_raw(raw)
    {
    }
    static constexpr PageCount from_bytes_floor(std::uint64_t bytes) { return PageCount { bytes >> PAGE_SHIFT }; }
    constexpr std::uint64_t raw() const { return m_raw; }
    constexpr std::uint64_t bytes() const { return m_raw << PAGE_SHIFT; }
    constexpr std::uint64_t mib() const { return m_raw >> (20 - PAGE_SHIFT); }
    constexpr PageCount operator+(PageCount other) const { return PageCount { m_raw + other.m_raw }; }
    constexpr PageCount operator-(PageCount other) const { return PageCount { m_raw - other.m_raw }; }
    constexpr PageCount& operator+=(PageCount other) { m_raw += other.m_raw; return *this; }
    constexpr PageCount& operator-=(PageCount other) { m_raw -= other.m_raw; return *this; }
    constexpr auto operator<=>(PageCount const&) const = default;

private:
    std::uint64_t m_raw { 0 };
};

class Gpn {
public:
    constexpr Gpn() = default;
    constexpr explicit Gpn(std::uint64_t raw)
        : m_raw(raw)
    {
    }
    constexpr std::uint64_t raw() const { return m_raw; }
    constexpr Gpa address() const { return Gpa { m_raw << PAGE_SHIFT }; }
    constexpr Gpn operator+(PageCount count) const { return Gpn { m_raw + count.raw() }; }
    constexpr Gpn operator-(PageCount count) const { return Gpn { m_raw - count.raw() }; }
    constexpr PageCount operator-(Gpn other) const { return PageCount { m_raw - other.m_raw }; }
    constexpr auto operator<=>(Gpn const&) const = default;

private:
    std::uint64_t m_raw { 0 };
};

constexpr Gpn Gpa::page() const { return Gpn { m_raw >> PAGE_SHIFT }; }

} // namespace vmm::mem

template<>
struct fmt::formatter<vmm::mem::Gpa> : fmt::formatter<std::uint64_t> {
    auto format(vmm::mem::Gpa gpa, fmt::format_context& context) const
    {
        return fmt::format_to(context.out(), "gpa:{:#x}", gpa.raw());
    }
};
template<>
struct fmt::formatter<vmm::mem::Gpn> : fmt::formatter<std::uint64_t> {
    auto format(vmm::mem::Gpn gpn, fmt::format_context& context) const
    {
        return fmt::format_to(context.out(), "gpn:{:#x}", gpn.raw());
    }
};
template<>
struct fmt::formatter<vmm::mem::PageCount> : fmt::formatter<std::uint64_t> {
    auto format(vmm::mem::PageCount count, fmt::format_context& context) const
    {
        return fmt::format_to(context.out(), "{} pages", count.raw());
    }
};

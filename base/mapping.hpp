// SPDX-License-Identifier: MIT
// Mapping: the one owner of an mmap'd range; munmap on destruction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/error.hpp"
#include "base/fd.hpp"

namespace vmm {

class Mapping {
public:
    // Private anonymous memory.
    static Result<Mapping> anonymous(std::uint64_t size_bytes, int prot, int extra_flags = 0);
    // A shared mapping of `fd` (guest RAM lives in a memfd so ballooned pages can be punched).
    static Result<Mapping> of_fd(Fd const& fd, std::uint64_t offset, std::uint64_t size_bytes,
        int prot, int flags);
    // Address space only (PROT_NONE, MAP_NORESERVE); made usable later with protect() or
    // by mapping over it with MAP_FIXED.
    static Result<Mapping> reserve(std::uint64_t size_bytes);

    Mapping() = default;
    Mapping(Mapping&& other) noexcept;
    Mapping& operator=(Mapping&& other) noexcept;
    Mapping(Mapping const&) = delete;
    Mapping& operator=(Mapping const&) = delete;
    ~Mapping();

    std::span<std::byte> bytes() const { return { m_base, m_size_bytes }; }
    std::byte* base() const { return m_base; }
    std::uint64_t size_bytes() const { return m_size_bytes; }
    bool is_mapped() const { return m_base != nullptr; }

    Result<void> protect(std::uint64_t offset, std::uint64_t size_bytes, int prot) const;
    // madvise(advice) on a page-aligned sub-range (MADV_DONTNEED / MADV_REMOVE).
    Result<void> advise(std::uint64_t offset, std::uint64_t size_bytes, int advice) const;

private:
    Mapping(std::byte* base, std::uint64_t size_bytes)
        : m_base(base)
        , m_size_bytes(size_bytes)
    {
    }
    Result<void> check_subrange(std::uint64_t offset, std::uint64_t size_bytes) const;
    std::byte* m_base { nullptr };
    std::uint64_t m_size_bytes { 0 };
};

} // namespace vmm

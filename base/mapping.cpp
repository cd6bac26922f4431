// SPDX-License-Identifier: MIT
#include "base/mapping.hpp"

#include <sys/mman.h>

#include <utility>

namespace vmm {

Result<Mapping> Mapping::anonymous(std::uint64_t size_bytes, int prot, int extra_flags)
{
    void* base = ::mmap(nullptr, size_bytes, prot, MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
    if (base == MAP_FAILED)
        return fail_errno("mmap anonymous");
    return Mapping { static_cast<std::byte*>(base), size_bytes };
}

Result<Mapping> Mapping::of_fd(Fd const& fd, std::uint64_t offset, std::uint64_t size_bytes,
    int prot, int flags)
{
    void* base = ::mmap(nullptr, size_bytes, prot, flags, fd.get(), static_cast<off_t>(offset));
    if (base == MAP_FAILED)
        return fail_errno("mmap fd");
    return Mapping { static_cast<std::byte*>(base), size_bytes };
}

Result<Mapping> Mapping::reserve(std::uint64_t size_bytes)
{
    void* base = ::mmap(nullptr, size_bytes, PROT_NONE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return fail_errno("mmap reserve");
    return Mapping { static_cast<std::byte*>(base), size_bytes };
}

Mapping::Mapping(Mapping&& other) noexcept
    : m_base(std::exchange(other.m_base, nullptr))
    , m_size_bytes(std::exchange(other.m_size_bytes, 0))
{
}

Mapping& Mapping::operator=(Mapping&& other) noexcept
{
    if (this != &other) {
        if (m_base)
            ::munmap(m_base, m_size_bytes);
        m_base = std::exchange(other.m_base, nullptr);
        m_size_bytes = std::exchange(other.m_size_bytes, 0);
    }
    return *this;
}

Mapping::~Mapping()
{
    if (m_base)
        ::munmap(m_base, m_size_bytes); // munmap of our own valid range cannot fail usefully.
}

Result<void> Mapping::check_subrange(std::uint64_t offset, std::uint64_t size_bytes) const
{
    if (offset > m_size_bytes || size_bytes > m_size_bytes - offset)
        return fail(Errc::OutOfRange, "mapping subrange", offset);
    return {};
}

Result<void> Mapping::protect(std::uint64_t offset, std::uint64_t size_bytes, int prot) const
{
    VMM_TRY(check_subrange(offset, size_bytes));
    if (::mprotect(m_base + offset, size_bytes, prot) != 0)
        return fail_errno("mprotect");
    return {};
}

Result<void> Mapping::advise(std::uint64_t offset, std::uint64_t size_bytes, int advice) const
{
    VMM_TRY(check_subrange(offset, size_bytes));
    if (::madvise(m_base + offset, size_bytes, advice) != 0)
        return fail_errno("madvise");
    return {};
}

} // namespace vmm

// SPDX-License-Identifier: MIT
// MemfdRam: memfd-backed guest RAM for the discard benchmarks.
#include "bench/memfd_ram.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "mem/gpa.hpp"

namespace vmm::bench {

Result<MemfdRam> MemfdRam::create(mem::Gpn first_page, std::uint64_t size_bytes)
{
    Fd fd { ::memfd_create("bench-guest-ram", MFD_CLOEXEC) };
    if (!fd.is_open())
        return fail_errno("memfd_create");
    if (::ftruncate(fd.get(), static_cast<off_t>(size_bytes)) < 0)
        return fail_errno("ftruncate");
    Mapping mapping = VMM_TRY(Mapping::of_fd(fd, 0, size_bytes, PROT_READ | PROT_WRITE, MAP_SHARED));
    return MemfdRam { std::move(fd), std::move(mapping), first_page };
}

Result<void> MemfdRam::dirty(std::uint64_t offset, std::uint64_t size_bytes)
{
    // include/uapi/asm-generic/mman-common.h; Debian 12's glibc headers may predate it.
#ifndef MADV_POPULATE_WRITE
    constexpr int MADV_POPULATE_WRITE = 23;
#endif
    VMM_TRY(m_mapping.advise(offset, size_bytes, MADV_POPULATE_WRITE));
    // Populated pages are dirty in the page tables; the written byte makes their data
    // non-zero too, as a guest would leave it (no fault: the pages are mapped now).
    auto* base = reinterpret_cast<volatile std::uint8_t*>(m_mapping.base());
    for (std::uint64_t at = offset; at < offset + size_bytes; at += mem::PAGE_SIZE)
        base[at] = 1;
    return {};
}

Result<void> MemfdRam::punch(std::uint64_t offset, std::uint64_t size_bytes) const
{
    if (::fallocate(m_fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
            static_cast<off_t>(size_bytes)) < 0)
        return fail_errno("fallocate(PUNCH_HOLE)");
    return {};
}

Result<void> MemfdRam::madvise_remove(std::uint64_t offset, std::uint64_t size_bytes) const
{
    return m_mapping.advise(offset, size_bytes, MADV_REMOVE);
}

std::uint64_t MemfdRam::allocated_bytes() const
{
    struct stat info {};
    if (::fstat(m_fd.get(), &info) < 0)
        return 0;
    return static_cast<std::uint64_t>(info.st_blocks) * 512;
}

} // namespace vmm::bench

// SPDX-License-Identifier: MIT
// MemfdRam: the VMM's memfd-backed guest RAM (mem::BootRam) with the benchmarks' raw baselines.
#include "bench/memfd_ram.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>

#include "mem/gpa.hpp"

namespace vmm::bench {

Result<MemfdRam> MemfdRam::create(mem::Gpn first_page, std::uint64_t size_bytes)
{
    mem::BootRam::Range const range { first_page.address(), size_bytes };
    auto ram = VMM_TRY(mem::BootRam::create({ &range, 1 }));
    return MemfdRam { std::move(ram), first_page };
}

Result<void> MemfdRam::dirty(std::uint64_t offset, std::uint64_t bytes)
{
    // include/uapi/asm-generic/mman-common.h; Debian 12's glibc headers may predate it.
#ifndef MADV_POPULATE_WRITE
    constexpr int MADV_POPULATE_WRITE = 23;
#endif
    VMM_TRY(m_ram.mapping().advise(offset, bytes, MADV_POPULATE_WRITE));
    // Populated pages are dirty in the page tables; the written byte makes their data
    // non-zero too, as a guest would leave it (no fault: the pages are mapped now).
    auto* base = reinterpret_cast<volatile std::uint8_t*>(m_ram.mapping().base());
    for (std::uint64_t at = offset; at < offset + bytes; at += mem::PAGE_SIZE)
        base[at] = 1;
    return {};
}

Result<void> MemfdRam::punch(std::uint64_t offset, std::uint64_t bytes) const
{
    if (::fallocate(m_ram.fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
            static_cast<off_t>(bytes)) < 0)
        return fail_errno("fallocate(PUNCH_HOLE)");
    return {};
}

Result<void> MemfdRam::madvise_remove(std::uint64_t offset, std::uint64_t bytes) const
{
    return m_ram.mapping().advise(offset, bytes, MADV_REMOVE);
}

} // namespace vmm::bench

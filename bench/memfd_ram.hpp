// SPDX-License-Identifier: MIT
// MemfdRam: guest RAM exactly as the VMM backs it (mem::BootRam: one shared memfd mapping), plus
// what the benchmarks need around it: dirtying, and the two raw ways to drop pages that the
// DM path is compared against, fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) on the fd
// and madvise(MADV_REMOVE) on the mapping. MemfdDiscard is the production discard
// (BootRam::discard) behind mem::DiscardBackend, for the DM engine.
#pragma once

#include <cstdint>

#include "base/error.hpp"
#include "mem/boot_ram.hpp"
#include "mem/discard_backend.hpp"
#include "mem/page_range.hpp"

namespace vmm::bench {

class MemfdRam {
public:
    // `first_page` is the guest page at offset 0 of the memfd.
    static Result<MemfdRam> create(mem::Gpn first_page, std::uint64_t size_bytes);

    // Dirties every page of [offset, offset + size) as a write of one byte per page would
    // (allocated, mapped writable, dirty), with madvise(MADV_POPULATE_WRITE) (Linux 5.14):
    // one call instead of a page fault per page, so setup does not dominate the run.
    Result<void> dirty(std::uint64_t offset, std::uint64_t bytes);
    // The raw baselines (no GPA translation, no checks beyond the kernel's).
    Result<void> punch(std::uint64_t offset, std::uint64_t bytes) const;
    Result<void> madvise_remove(std::uint64_t offset, std::uint64_t bytes) const;
    // Resident bytes of the memfd (st_blocks * 512): what discarding gives back; 0 on error.
    std::uint64_t allocated_bytes() const { return m_ram.allocated_bytes().value_or(0); }

    std::uint64_t offset_of(mem::Gpn page) const { return (page - m_first).bytes(); }
    mem::Gpn first_page() const { return m_first; }
    std::uint64_t size_bytes() const { return m_ram.size_bytes(); }
    mem::BootRam const& boot_ram() const { return m_ram; }

private:
    MemfdRam(mem::BootRam ram, mem::Gpn first)
        : m_ram(std::move(ram))
        , m_first(first)
    {
    }
    mem::BootRam m_ram;
    mem::Gpn m_first;
};

class MemfdDiscard final : public mem::DiscardBackend {
public:
    explicit MemfdDiscard(MemfdRam& ram)
        : m_ram(ram)
    {
    }
    Result<void> discard(mem::PageRange range) override
    {
        ++calls;
        return m_ram.boot_ram().discard(range.start.address(), range.size_bytes());
    }
    std::uint64_t calls = 0;

private:
    MemfdRam& m_ram;
};

// Setup-only backend: the benchmark needs ballooned state, not freed memory (no backing).
class NullDiscard final : public mem::DiscardBackend {
public:
    Result<void> discard(mem::PageRange) override
    {
        ++calls;
        return {};
    }
    std::uint64_t calls = 0;
};

} // namespace vmm::bench

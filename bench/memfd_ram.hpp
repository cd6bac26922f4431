// SPDX-License-Identifier: MIT
// MemfdRam: guest RAM as the VMM backs it (a shared memfd mapping), with the two ways to drop
// pages: fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) on the fd and madvise(MADV_REMOVE)
// on the mapping. MemfdDiscard is a real mem::DiscardBackend over it for the DM engine.
#pragma once

#include <cstdint>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/mapping.hpp"
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
    Result<void> dirty(std::uint64_t offset, std::uint64_t size_bytes);
    Result<void> punch(std::uint64_t offset, std::uint64_t size_bytes) const;
    Result<void> madvise_remove(std::uint64_t offset, std::uint64_t size_bytes) const;
    // Resident bytes of the memfd (st_blocks * 512): what discarding gives back.
    std::uint64_t allocated_bytes() const;

    std::uint64_t offset_of(mem::Gpn page) const { return (page - m_first).bytes(); }
    mem::Gpn first_page() const { return m_first; }
    std::uint64_t size_bytes() const { return m_mapping.size_bytes(); }

private:
    MemfdRam(Fd fd, Mapping mapping, mem::Gpn first)
        : m_fd(std::move(fd))
        , m_mapping(std::move(mapping))
        , m_first(first)
    {
    }
    Fd m_fd;
    Mapping m_mapping;
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
        return m_ram.punch(m_ram.offset_of(range.start), range.size_bytes());
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

// SPDX-License-Identifier: MIT
// BootRam: the guest's boot RAM as one memfd, mapped MAP_SHARED | MAP_NORESERVE, its
// guest-physical ranges laid back to back in the file (the range below the MMIO hole first,
// then the one above 4 GiB). One file, so that ballooned pages can be punched out and the host
// really gets them back (the memfd's blocks and the VMM's RSS fall), and so that guest RAM is
// one shareable object. Owns the fd and the mapping; KVM memslots and GuestMemory hold views.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/mapping.hpp"
#include "mem/gpa.hpp"
#include "mem/guest_memory.hpp"

namespace vmm::mem {

class BootRam {
public:
    struct Range {
        Gpa start;
        std::uint64_t size_bytes;
    };

    // Ranges must be non-empty, page aligned, in increasing order and disjoint (host input:
    // firmware::ram_ranges()); anything else is InvalidArgument naming the range.
    static Result<BootRam> create(std::span<Range const> ranges);

    BootRam() = default; // Empty: no ranges, no fd (a Machine before create_memory()).

    // Host views, one per range in order: for GuestMemory::from_regions and the KVM slots.
    std::vector<RamRegion> regions() const;
    // Gives [gpa, gpa + bytes) back to the host with fallocate(PUNCH_HOLE | KEEP_SIZE): the
    // pages read back as zero and are allocated again on the next touch. Page aligned and
    // inside one range, else an error and nothing is discarded.
    Result<void> discard(Gpa gpa, std::uint64_t bytes) const;
    // Bytes the memfd holds now (st_blocks * 512): what discard() gives back.
    Result<std::uint64_t> allocated_bytes() const;

    std::uint64_t size_bytes() const { return m_mapping.size_bytes(); }
    int fd() const { return m_fd.get(); }
    Mapping const& mapping() const { return m_mapping; } // All ranges, back to back.

private:
    BootRam(Fd fd, Mapping mapping, std::vector<Range> ranges)
        : m_fd(std::move(fd))
        , m_mapping(std::move(mapping))
        , m_ranges(std::move(ranges))
    {
    }

    Fd m_fd;
    Mapping m_mapping;
    std::vector<Range> m_ranges;
};

} // namespace vmm::mem

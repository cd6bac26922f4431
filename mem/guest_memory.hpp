// SPDX-License-Identifier: MIT
// GuestMemory: a bounds-checked view of guest RAM. No function turns a GPA into a raw pointer;
// every access names a length and fails with NotMapped/OutOfRange instead of faulting.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/byte_source.hpp"
#include "base/error.hpp"
#include "base/wire.hpp"
#include "mem/gpa.hpp"

namespace vmm::mem {

struct RamRegion {
    Gpa start;
    std::span<std::byte> host; // Host view of [start, start + host.size()).
    // The file mapped at `host` (BootRam's memfd) and host[0]'s offset in it, so bulk copies
    // can go through the file's write path (write_from); -1: no file (tests' vectors, the
    // hot-add window's anonymous reservation).
    int fd = -1;
    std::uint64_t fd_offset = 0;
};

// Doesn't own the backing: the Machine owns the Mappings, tests own vectors. The region table
// is immutable after construction, so any thread may use a GuestMemory without locking.
// Hot-add space is one region whose chunks become accessible later: `set_plugged` flips a
// per-chunk flag and accesses to unplugged chunks fail (the host pages are PROT_NONE there).
class GuestMemory {
public:
    GuestMemory() = default;
    // Checks that regions are sorted, non-overlapping, page aligned and non-wrapping.
    static Result<GuestMemory> from_regions(std::vector<RamRegion> regions);

    // Declares region `index` as hot-plug space in chunks of `chunk_bytes`, all unplugged.
    Result<void> make_pluggable(std::size_t index, std::uint64_t chunk_bytes);
    // Marks the chunks covering [gpa, gpa + size_bytes) of a pluggable region (un)plugged.
    Result<void> set_plugged(Gpa gpa, std::uint64_t size_bytes, bool plugged);

    // Copies; the range may cross region boundaries but not holes or unplugged chunks.
    Result<void> read(Gpa gpa, std::span<std::byte> out) const;
    Result<void> write(Gpa gpa, std::span<std::byte const> in) const;
    // Zeroing >= 64 KiB of a file-backed region punches its whole pages out of the file
    // (fresh zero pages, none allocated) instead of writing them.
    Result<void> fill(Gpa gpa, std::byte value, std::uint64_t size_bytes) const;
    // Copies `size_bytes` of `source` from `offset` straight into guest RAM at `gpa`: into the
    // region's file where it has one and the source can (ByteSource::copy_to_file: sendfile
    // from the page cache), else read_at into the guest's pages; no intermediate buffer. The
    // whole destination is checked before the first byte moves; a failing source may leave a
    // partial copy.
    Result<void> write_from(Gpa gpa, ByteSource const& source, std::uint64_t offset, std::uint64_t size_bytes) const;

    template<Wire T>
    Result<T> read_obj(Gpa gpa) const
    {
        T value;
        VMM_TRY(read(gpa, std::as_writable_bytes(std::span { &value, 1 })));
        return value;
    }
    template<Wire T>
    Result<void> write_obj(Gpa gpa, T const& value) const
    {
        return write(gpa, std::as_bytes(std::span { &value, 1 }));
    }

    // Zero-copy access for hot paths (ring pages). Fails unless the whole range lies in one
    // region (and in plugged chunks). Words shared with a running guest must then be accessed
    // through std::atomic_ref with one load per decision.
    Result<std::span<std::byte>> contiguous(Gpa gpa, std::uint64_t size_bytes) const;

    // True when every byte of [gpa, gpa + size_bytes) is accessible RAM.
    bool is_ram(Gpa gpa, std::uint64_t size_bytes) const;

    std::span<RamRegion const> regions() const { return m_regions; }

private:
    struct Pluggable {
        std::uint64_t chunk_bytes { 0 };
        std::vector<std::uint8_t> plugged; // One flag per chunk, read with atomic_ref.
    };
    struct Prefix {
        std::span<std::byte> host;
        RamRegion const* region;
    };
    // Longest accessible prefix of [gpa, gpa + max_bytes) inside one region, and that region.
    Result<Prefix> locate_prefix(Gpa gpa, std::uint64_t max_bytes) const;
    Result<std::span<std::byte>> contiguous_prefix(Gpa gpa, std::uint64_t max_bytes) const;
    std::vector<RamRegion> m_regions;
    std::vector<Pluggable> m_pluggable; // Parallel to m_regions; chunk_bytes 0 = always present.
};

} // namespace vmm::mem

// SPDX-License-Identifier: MIT
#include "mem/guest_memory.hpp"

#include <fcntl.h>
#include <linux/falloc.h>

#include <algorithm>
#include <cstring>

namespace vmm::mem {

Result<GuestMemory> GuestMemory::from_regions(std::vector<RamRegion> regions)
{
    std::uint64_t previous_end = 0;
    for (std::size_t i = 0; i < regions.size(); ++i) {
        auto const& region = regions[i];
        if (!region.start.page_aligned() || region.host.size() % PAGE_SIZE != 0 || region.host.empty())
            return fail(Errc::InvalidArgument, "guest memory region alignment", region.start.raw());
        auto end = region.start.checked_add(region.host.size());
        if (!end)
            return fail(Errc::OutOfRange, "guest memory region wraps", region.start.raw());
        if (i > 0 && region.start.raw() < previous_end)
            return fail(Errc::Overlap, "guest memory regions overlap or unsorted", region.start.raw());
        previous_end = end->raw();
    }
    GuestMemory memory;
    memory.m_regions = std::move(regions);
    memory.m_pluggable.resize(memory.m_regions.size());
    return memory;
}

Result<void> GuestMemory::make_pluggable(std::size_t index, std::uint64_t chunk_bytes)
{
    if (index >= m_regions.size() || chunk_bytes == 0 || chunk_bytes % PAGE_SIZE != 0
        || m_regions[index].host.size() % chunk_bytes != 0)
        return fail(Errc::InvalidArgument, "make_pluggable", index);
    m_pluggable[index].chunk_bytes = chunk_bytes;
    m_pluggable[index].plugged.assign(m_regions[index].host.size() / chunk_bytes, 0);
    return {};
}

Result<void> GuestMemory::set_plugged(Gpa gpa, std::uint64_t size_bytes, bool plugged)
{
    for (std::size_t i = 0; i < m_regions.size(); ++i) {
        auto const& region = m_regions[i];
        auto& pluggable = m_pluggable[i];
        if (pluggable.chunk_bytes == 0 || gpa < region.start)
            continue;
        std::uint64_t offset = gpa.raw() - region.start.raw();
        if (offset >= region.host.size())
            continue;
        if (size_bytes == 0 || size_bytes > region.host.size() - offset)
            return fail(Errc::OutOfRange, "set_plugged", gpa.raw());
        std::uint64_t first = offset / pluggable.chunk_bytes;
        std::uint64_t last = (offset + size_bytes - 1) / pluggable.chunk_bytes;
        for (std::uint64_t chunk = first; chunk <= last; ++chunk)
            std::atomic_ref<std::uint8_t>(pluggable.plugged[chunk]).store(plugged ? 1 : 0, std::memory_order_release);
        return {};
    }
    return fail(Errc::NotMapped, "set_plugged", gpa.raw());
}

Result<std::span<std::byte>> GuestMemory::contiguous_prefix(Gpa gpa, std::uint64_t max_bytes) const
{
    auto prefix = VMM_TRY(locate_prefix(gpa, max_bytes));
    return prefix.host;
}

Result<GuestMemory::Prefix> GuestMemory::locate_prefix(Gpa gpa, std::uint64_t max_bytes) const
{
    // Regions are sorted: find the last region starting at or below gpa.
    auto it = std::upper_bound(m_regions.begin(), m_regions.end(), gpa,
        [](Gpa value, RamRegion const& region) { return value < region.start; });
    if (it == m_regions.begin())
        return fail(Errc::NotMapped, "guest memory access", gpa.raw());
    --it;
    std::uint64_t offset = gpa.raw() - it->start.raw();
    if (offset >= it->host.size())
        return fail(Errc::NotMapped, "guest memory access", gpa.raw());
    std::uint64_t available = it->host.size() - offset;
    auto const& pluggable = m_pluggable[static_cast<std::size_t>(it - m_regions.begin())];
    if (pluggable.chunk_bytes != 0) {
        // Only the plugged run of chunks starting at gpa is accessible.
        std::uint64_t chunk = offset / pluggable.chunk_bytes;
        std::uint64_t run = 0;
        while (chunk < pluggable.plugged.size()
            && std::atomic_ref<std::uint8_t const>(pluggable.plugged[chunk]).load(std::memory_order_acquire)) {
            ++chunk;
            ++run;
        }
        if (run == 0)
            return fail(Errc::NotMapped, "guest memory access (unplugged)", gpa.raw());
        available = std::min(available, chunk * pluggable.chunk_bytes - offset);
    }
    return Prefix { it->host.subspan(offset, std::min(available, max_bytes)), &*it };
}

Result<void> GuestMemory::read(Gpa gpa, std::span<std::byte> out) const
{
    if (!gpa.checked_add(out.size()))
        return fail(Errc::OutOfRange, "guest memory read wraps", gpa.raw());
    while (!out.empty()) {
        auto chunk = VMM_TRY(contiguous_prefix(gpa, out.size()));
        std::memcpy(out.data(), chunk.data(), chunk.size());
        out = out.subspan(chunk.size());
        gpa = Gpa { gpa.raw() + chunk.size() };
    }
    return {};
}

Result<void> GuestMemory::write(Gpa gpa, std::span<std::byte const> in) const
{
    if (!gpa.checked_add(in.size()))
        return fail(Errc::OutOfRange, "guest memory write wraps", gpa.raw());
    while (!in.empty()) {
        auto chunk = VMM_TRY(contiguous_prefix(gpa, in.size()));
        std::memcpy(chunk.data(), in.data(), chunk.size());
        in = in.subspan(chunk.size());
        gpa = Gpa { gpa.raw() + chunk.size() };
    }
    return {};
}

namespace {

// Zero fills at least this large punch their whole pages out of the region's file instead of
// writing them: a fresh page reads as zero without being allocated, faulted in and cleared
// (an ELF kernel's bss, ~600 KiB for the test guest). Smaller fills (a SynIC page, boot page
// tables about to be written) are cheaper as a memset.
constexpr std::uint64_t ZERO_BY_PUNCH_MIN_BYTES = 64 * 1024;

// Zeroes `chunk` (inside `region`): memset for the partial pages at either end, the whole pages
// between punched out of the file (fallocate(2) PUNCH_HOLE | KEEP_SIZE; they read as zero).
void zero_through_file(RamRegion const& region, std::span<std::byte> chunk)
{
    auto const start = static_cast<std::uint64_t>(chunk.data() - region.host.data());
    std::uint64_t const end = start + chunk.size();
    std::uint64_t const first_page = (start + PAGE_SIZE - 1) / PAGE_SIZE * PAGE_SIZE;
    std::uint64_t const last_page = end / PAGE_SIZE * PAGE_SIZE;
    if (last_page > first_page
        && ::fallocate(region.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
               static_cast<off_t>(region.fd_offset + first_page), static_cast<off_t>(last_page - first_page))
            == 0) {
        std::memset(chunk.data(), 0, first_page - start);
        std::memset(region.host.data() + last_page, 0, end - last_page);
        return;
    }
    std::memset(chunk.data(), 0, chunk.size()); // No whole page, or the file cannot punch.
}

} // namespace

Result<void> GuestMemory::fill(Gpa gpa, std::byte value, std::uint64_t size_bytes) const
{
    if (!gpa.checked_add(size_bytes))
        return fail(Errc::OutOfRange, "guest memory fill wraps", gpa.raw());
    while (size_bytes > 0) {
        auto [chunk, region] = VMM_TRY(locate_prefix(gpa, size_bytes));
        if (value == std::byte { 0 } && region->fd >= 0 && chunk.size() >= ZERO_BY_PUNCH_MIN_BYTES)
            zero_through_file(*region, chunk);
        else
            std::memset(chunk.data(), static_cast<int>(value), chunk.size());
        size_bytes -= chunk.size();
        gpa = Gpa { gpa.raw() + chunk.size() };
    }
    return {};
}

Result<void> GuestMemory::write_from(Gpa gpa, ByteSource const& source, std::uint64_t offset,
    std::uint64_t size_bytes) const
{
    if (!source.contains(offset, size_bytes))
        return fail(Errc::OutOfRange, "guest memory write: source range outside the image", offset);
    if (!is_ram(gpa, size_bytes))
        return fail(Errc::NotMapped, "guest memory write from image", gpa.raw());
    while (size_bytes > 0) {
        auto [chunk, region] = VMM_TRY(locate_prefix(gpa, size_bytes));
        bool copied = false;
        if (region->fd >= 0) {
            auto const in_region = static_cast<std::uint64_t>(chunk.data() - region->host.data());
            copied = VMM_TRY(source.copy_to_file(offset, chunk.size(), region->fd, region->fd_offset + in_region));
        }
        if (!copied)
            VMM_TRY(source.read_at(offset, chunk));
        size_bytes -= chunk.size();
        offset += chunk.size();
        gpa = Gpa { gpa.raw() + chunk.size() };
    }
    return {};
}

Result<std::span<std::byte>> GuestMemory::contiguous(Gpa gpa, std::uint64_t size_bytes) const
{
    if (size_bytes == 0 || !gpa.checked_add(size_bytes))
        return fail(Errc::OutOfRange, "guest memory contiguous", gpa.raw());
    auto chunk = VMM_TRY(contiguous_prefix(gpa, size_bytes));
    if (chunk.size() != size_bytes)
        return fail(Errc::OutOfRange, "guest memory contiguous crosses a region", gpa.raw());
    return chunk;
}

bool GuestMemory::is_ram(Gpa gpa, std::uint64_t size_bytes) const
{
    if (!gpa.checked_add(size_bytes))
        return false;
    while (size_bytes > 0) {
        auto chunk = contiguous_prefix(gpa, size_bytes);
        if (!chunk)
            return false;
        size_bytes -= chunk->size();
        gpa = Gpa { gpa.raw() + chunk->size() };
    }
    return true;
}

} // namespace vmm::mem

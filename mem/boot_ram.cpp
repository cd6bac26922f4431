// SPDX-License-Identifier: MIT
#include "mem/boot_ram.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>

namespace vmm::mem {

Result<BootRam> BootRam::create(std::span<Range const> ranges)
{
    if (ranges.empty())
        return fail(Errc::InvalidArgument, "boot RAM: no ranges");
    std::uint64_t total = 0;
    std::uint64_t next_free = 0;
    for (std::size_t i = 0; i < ranges.size(); ++i) {
        auto const& range = ranges[i];
        std::uint64_t end;
        if (range.size_bytes == 0)
            return fail(Errc::InvalidArgument, "boot RAM: range empty", i);
        if (!range.start.page_aligned() || range.size_bytes % PAGE_SIZE != 0)
            return fail(Errc::InvalidArgument, "boot RAM: range unaligned", i);
        if (__builtin_add_overflow(range.start.raw(), range.size_bytes, &end))
            return fail(Errc::InvalidArgument, "boot RAM: range overflowing the address space", i);
        if (range.start.raw() < next_free)
            return fail(Errc::InvalidArgument, "boot RAM: ranges overlap or are out of order", i);
        next_free = end;
        total += range.size_bytes; // Cannot overflow: the ranges are disjoint below 2^64.
    }
    Fd fd { ::memfd_create("guest-ram", MFD_CLOEXEC) };
    if (!fd.is_open())
        return fail_errno("memfd_create guest-ram");
    if (::ftruncate(fd.get(), static_cast<off_t>(total)) < 0)
        return fail_errno("ftruncate guest-ram");
    auto mapping = VMM_TRY(Mapping::of_fd(fd, 0, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE));
    return BootRam { std::move(fd), std::move(mapping), std::vector<Range>(ranges.begin(), ranges.end()) };
}

std::vector<RamRegion> BootRam::regions() const
{
    std::vector<RamRegion> out;
    std::uint64_t offset = 0;
    for (auto const& range : m_ranges) {
        out.push_back(RamRegion { range.start, m_mapping.bytes().subspan(offset, range.size_bytes), m_fd.get(), offset });
        offset += range.size_bytes;
    }
    return out;
}

Result<void> BootRam::discard(Gpa gpa, std::uint64_t bytes) const
{
    if (!gpa.page_aligned() || bytes % PAGE_SIZE != 0)
        return fail(Errc::InvalidArgument, "boot RAM discard: unaligned", gpa.raw());
    // The file offset of a GPA: the sizes of the ranges before its own, plus its offset inside.
    std::uint64_t offset = 0;
    for (auto const& range : m_ranges) {
        if (gpa >= range.start && gpa.raw() - range.start.raw() < range.size_bytes) {
            std::uint64_t const inside = gpa.raw() - range.start.raw();
            if (bytes > range.size_bytes - inside)
                return fail(Errc::OutOfRange, "boot RAM discard: crosses the end of a range", gpa.raw());
            if (::fallocate(m_fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                    static_cast<off_t>(offset + inside), static_cast<off_t>(bytes))
                < 0)
                return fail_errno("fallocate punch hole (boot RAM discard)");
            return {};
        }
        offset += range.size_bytes;
    }
    return fail(Errc::NotMapped, "boot RAM discard: outside boot RAM", gpa.raw());
}

Result<std::uint64_t> BootRam::allocated_bytes() const
{
    struct stat info {};
    if (::fstat(m_fd.get(), &info) < 0)
        return fail_errno("fstat guest-ram");
    return static_cast<std::uint64_t>(info.st_blocks) * 512;
}

} // namespace vmm::mem

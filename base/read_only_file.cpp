// SPDX-License-Identifier: MIT
#include "base/read_only_file.hpp"

#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

namespace vmm {

Result<ReadOnlyFile> ReadOnlyFile::open(std::filesystem::path const& path)
{
    Fd fd { ::open(path.c_str(), O_RDONLY | O_CLOEXEC) };
    if (!fd.is_open())
        return fail_errno(fmt::format("open {}", path.string()));
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0)
        return fail_errno(fmt::format("stat {}", path.string()));
    // A FIFO or device has no stable size: the loaders check every bound against size().
    if (!S_ISREG(st.st_mode))
        return fail(Errc::InvalidArgument, fmt::format("{} is not a regular file", path.string()));
    return ReadOnlyFile { std::move(fd), static_cast<std::uint64_t>(st.st_size) };
}

Result<void> ReadOnlyFile::read_at(std::uint64_t offset, std::span<std::byte> out) const
{
    if (!contains(offset, out.size()))
        return fail(Errc::OutOfRange, "read past the end of the file", offset);
    while (!out.empty()) {
        ssize_t got = ::pread(m_fd.get(), out.data(), out.size(), static_cast<off_t>(offset));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return fail_errno("pread");
        if (got == 0)
            return fail(Errc::OutOfRange, "file shrank while being read", offset);
        out = out.subspan(static_cast<std::size_t>(got));
        offset += static_cast<std::uint64_t>(got);
    }
    return {};
}

Result<bool> ReadOnlyFile::copy_to_file(std::uint64_t offset, std::uint64_t size, int fd, std::uint64_t fd_offset) const
{
    if (!contains(offset, size))
        return fail(Errc::OutOfRange, "read past the end of the file", offset);
    // sendfile() writes at the output's file position (sendfile(2)); copy_file_range() would
    // take an offset but refuses files of different file systems (EXDEV), as a file and a memfd are.
    if (::lseek(fd, static_cast<off_t>(fd_offset), SEEK_SET) < 0)
        return fail_errno("lseek in the destination file");
    auto in_offset = static_cast<off_t>(offset);
    bool moved = false;
    while (size > 0) {
        // At most 0x7ffff000 bytes per call (sendfile(2)).
        std::size_t const want = static_cast<std::size_t>(std::min<std::uint64_t>(size, 0x7fff'f000));
        ssize_t sent = ::sendfile(fd, m_fd.get(), &in_offset, want);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent < 0 && !moved && (errno == EINVAL || errno == ENOSYS))
            return false; // These files do not support it: the caller copies through its mapping.
        if (sent < 0)
            return fail_errno("sendfile into the destination file");
        if (sent == 0)
            return fail(Errc::OutOfRange, "file shrank while being read", static_cast<std::uint64_t>(in_offset));
        moved = true;
        size -= static_cast<std::uint64_t>(sent);
    }
    return true;
}

} // namespace vmm

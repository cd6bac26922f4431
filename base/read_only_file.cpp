// SPDX-License-Identifier: MIT
#include "base/read_only_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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

} // namespace vmm

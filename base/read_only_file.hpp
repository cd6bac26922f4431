// SPDX-License-Identifier: MIT
// ReadOnlyFile: a regular file opened for pread(): the kernel and initrd are copied from the
// page cache straight into guest RAM (one copy, no heap buffer of the file's size), through
// sendfile() into the RAM's memfd where the destination has one.
#pragma once

#include <filesystem>

#include "base/byte_source.hpp"
#include "base/fd.hpp"

namespace vmm {

class ReadOnlyFile final : public ByteSource {
public:
    // Errors name the path: not found, not a regular file, unreadable.
    static Result<ReadOnlyFile> open(std::filesystem::path const& path);

    std::uint64_t size() const override { return m_size; }
    // pread() until `out` is full; a file that shrank since open() fails (no short copies).
    Result<void> read_at(std::uint64_t offset, std::span<std::byte> out) const override;
    // sendfile() from the page cache into `fd` (any file with a write path: the guest RAM
    // memfd); false only when the kernel refuses sendfile() for these files before a byte moved.
    Result<bool> copy_to_file(std::uint64_t offset, std::uint64_t size, int fd, std::uint64_t fd_offset) const override;

private:
    ReadOnlyFile(Fd fd, std::uint64_t size)
        : m_fd(std::move(fd))
        , m_size(size)
    {
    }
    Fd m_fd;
    std::uint64_t m_size;
};

} // namespace vmm

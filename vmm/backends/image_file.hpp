// SPDX-License-Identifier: MIT
// ImageFile: one disk image opened and locked for the whole life of the VMM. microvmm opens
// every [[disk]] once at start-up, before any seccomp filter and before the first boot (the
// event loop's filter allows no writable opens), and each boot's ImageFileBackend borrows it;
// so a reboot neither reopens the file nor lets another process take the lock in between.
//
// The image is opened O_RDWR (O_RDONLY when read-only) and locked with an open file description
// lock on the whole file (F_OFD_SETLK): exclusive for a writable disk, shared for a read-only
// one, so two VMs never write one image and a writer never shares it with readers. The lock
// lives as long as the fd. Only the size rounded down to 512-byte blocks is addressable.
#pragma once

#include <filesystem>
#include <memory>
#include <vector>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/types.hpp"

namespace vmm {

class ImageFile {
public:
    // Errors name the file and say what failed, in one line (Errc::Config: start-up exits 2).
    static Result<std::shared_ptr<ImageFile const>> open(std::filesystem::path const& path, bool read_only);

    int fd() const { return m_fd.get(); }
    u64 size_bytes() const { return m_size; }
    bool read_only() const { return m_read_only; }
    std::filesystem::path const& path() const { return m_path; }

    ImageFile(Fd fd, u64 size, bool read_only, std::filesystem::path path)
        : m_fd(std::move(fd))
        , m_size(size)
        , m_read_only(read_only)
        , m_path(std::move(path))
    {
    }

private:
    Fd m_fd;
    u64 m_size;
    bool m_read_only;
    std::filesystem::path m_path;
};

// Every [[disk]]'s image, in config order, opened once by main() (vmm/main.cpp).
using DiskImages = std::vector<std::shared_ptr<ImageFile const>>;

struct DiskSection;
// Opens and locks each image; the error names the disk ("disk[1].path: ...").
Result<DiskImages> open_disk_images(std::vector<DiskSection> const&);

} // namespace vmm

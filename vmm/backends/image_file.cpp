// SPDX-License-Identifier: MIT
#include "vmm/backends/image_file.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "vmm/config.hpp"

namespace vmm {

namespace {

constexpr u64 LBA_BYTES = 512;

std::string describe(std::filesystem::path const& path, std::string_view what, int err)
{
    return fmt::format("disk image {}: {}: {}", path.string(), what, std::strerror(err));
}

} // namespace

Result<std::shared_ptr<ImageFile const>> ImageFile::open(std::filesystem::path const& path, bool read_only)
{
    Fd fd { ::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC) };
    if (!fd.is_open())
        return fail(Errc::Config, describe(path, read_only ? "cannot open for reading" : "cannot open for reading and writing", errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        return fail(Errc::Config, describe(path, "fstat", errno));
    u64 size = 0;
    if (S_ISREG(st.st_mode)) {
        size = static_cast<u64>(st.st_size);
    } else if (S_ISBLK(st.st_mode)) {
        if (::ioctl(fd.get(), BLKGETSIZE64, &size) != 0)
            return fail(Errc::Config, describe(path, "BLKGETSIZE64", errno));
    } else {
        return fail(Errc::Config, fmt::format("disk image {}: not a regular file or block device", path.string()));
    }
    // The namespace has 512-byte blocks; a partial last block is not addressable.
    if (size < LBA_BYTES)
        return fail(Errc::Config, fmt::format("disk image {}: {} bytes is smaller than one 512-byte block", path.string(), size));
    size &= ~(LBA_BYTES - 1);
    // Open file description lock on the whole file (fcntl(2) "Open file description locks"):
    // conflicts with other processes and with other opens in this one, released with the fd.
    struct flock lock {};
    lock.l_type = read_only ? F_RDLCK : F_WRLCK;
    lock.l_whence = SEEK_SET;
    if (::fcntl(fd.get(), F_OFD_SETLK, &lock) != 0) {
        if (errno == EAGAIN || errno == EACCES)
            return fail(Errc::Config,
                fmt::format("disk image {}: in use: another process (another VM?) holds a {} lock on it", path.string(),
                    read_only ? "write" : "read or write"));
        return fail(Errc::Config, describe(path, "locking (F_OFD_SETLK)", errno));
    }
    return std::make_shared<ImageFile const>(std::move(fd), size, read_only, path);
}

Result<DiskImages> open_disk_images(std::vector<DiskSection> const& disks)
{
    DiskImages images;
    for (std::size_t i = 0; i < disks.size(); ++i)
        images.push_back(VMM_TRY(ImageFile::open(disks[i].path, disks[i].read_only).context("disk[{}].path", i)));
    return images;
}

} // namespace vmm

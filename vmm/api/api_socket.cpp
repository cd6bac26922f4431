// SPDX-License-Identifier: MIT
// Unix socket creation for the API (see api_socket.hpp for the rules).
#include "vmm/api/api_socket.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

namespace vmm::api {

namespace {

Result<sockaddr_un> make_address(std::string const& path)
{
    sockaddr_un address {};
    address.sun_family = AF_UNIX;
    // sun_path is 108 bytes on Linux (include/uapi/linux/un.h UNIX_PATH_MAX) incl. the NUL.
    if (path.empty() || path.size() >= sizeof(address.sun_path))
        return fail(Errc::Config, fmt::format("api socket path '{}' is empty or longer than {} bytes", path,
                                      sizeof(address.sun_path) - 1));
    std::memcpy(address.sun_path, path.data(), path.size());
    return address;
}

} // namespace

Result<Fd> connect_unix_socket(std::string const& path)
{
    auto address = VMM_TRY(make_address(path));
    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.is_open())
        return fail_errno("socket(AF_UNIX)");
    int rc;
    do {
        rc = ::connect(fd.get(), reinterpret_cast<sockaddr const*>(&address), sizeof(address));
    } while (rc < 0 && errno == EINTR);
    if (rc < 0)
        return fail_errno(fmt::format("connect {}", path));
    return fd;
}

Result<Fd> listen_unix_socket(std::string const& path, int backlog)
{
    auto address = VMM_TRY(make_address(path));
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return fail(Errc::Config, fmt::format("api socket path {} exists and is not a socket", path));
        auto probe = connect_unix_socket(path);
        if (probe)
            return fail(Errc::Busy, fmt::format("api socket {} is in use by a live process", path));
        if (probe.error().sys_errno() != ECONNREFUSED)
            return std::unexpected(probe.error());
        // Nobody listens: a previous VMM died without unlinking it.
        if (::unlink(path.c_str()) < 0 && errno != ENOENT)
            return fail_errno(fmt::format("unlink stale api socket {}", path));
    } else if (errno != ENOENT) {
        return fail_errno(fmt::format("stat {}", path));
    }

    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.is_open())
        return fail_errno("socket(AF_UNIX)");
    // Linux creates the socket file with the socket inode's mode masked by the umask
    // (Linux 6.1 net/unix/af_unix.c:1180 unix_bind_bsd(): S_IFSOCK | (SOCK_INODE(sock)->i_mode & ~current_umask())),
    // so fchmod() before bind() means the file never exists with a wider mode. No umask()
    // juggling, which would race with other threads.
    if (::fchmod(fd.get(), 0600) < 0)
        return fail_errno("fchmod api socket");
    if (::bind(fd.get(), reinterpret_cast<sockaddr const*>(&address), sizeof(address)) < 0)
        return fail_errno(fmt::format("bind {}", path));
    // Belt and braces for file systems or kernels that ignore the inode mode.
    if (::chmod(path.c_str(), 0600) < 0) {
        int const err = errno;
        ::unlink(path.c_str());
        return fail_errno(fmt::format("chmod {}", path), err);
    }
    if (::listen(fd.get(), backlog) < 0) {
        int const err = errno;
        ::unlink(path.c_str());
        return fail_errno(fmt::format("listen {}", path), err);
    }
    return fd;
}

} // namespace vmm::api

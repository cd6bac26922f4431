// SPDX-License-Identifier: MIT
#include "vmm/backends/tap_device.hpp"

#include <fcntl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.hpp"

namespace vmm {

Result<TapDevice> TapDevice::open(std::string const& name, u32 mtu)
{
    if (name.empty() || name.size() >= IFNAMSIZ)
        return fail(Errc::Config, "TAP name length", name.size());
    // if_nametoindex() asks this network namespace (sysfs may be another namespace's mount).
    bool const existed = ::if_nametoindex(name.c_str()) != 0;
    Fd fd { ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC) };
    if (!fd.is_open())
        return fail_errno("open /dev/net/tun");
    ifreq request {};
    std::memcpy(request.ifr_name, name.data(), name.size());
    request.ifr_flags = IFF_TAP | IFF_NO_PI;
    if (::ioctl(fd.get(), TUNSETIFF, &request) < 0)
        return fail_errno(existed ? "TUNSETIFF on an existing interface (not a TAP, or busy?)" : "TUNSETIFF (create TAP)");
    // The MTU lives on the interface; SIOC[GS]IFMTU go through any socket.
    Fd sock { ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0) };
    if (sock.is_open()) {
        ifreq mtu_request {};
        std::memcpy(mtu_request.ifr_name, name.data(), name.size());
        if (!existed) {
            mtu_request.ifr_mtu = static_cast<int>(mtu);
            if (::ioctl(sock.get(), SIOCSIFMTU, &mtu_request) < 0)
                log::warn("net", "TAP {}: setting MTU {}: {}", name, mtu, std::strerror(errno));
        } else if (::ioctl(sock.get(), SIOCGIFMTU, &mtu_request) == 0 && static_cast<u32>(mtu_request.ifr_mtu) != mtu) {
            log::warn("net", "TAP {} has MTU {}, the guest's NIC {}: frames larger than the smaller are lost", name,
                mtu_request.ifr_mtu, mtu);
        }
    }
    return TapDevice { std::move(fd), name, !existed };
}

Result<std::size_t> TapDevice::read(std::span<std::byte> out)
{
    for (;;) {
        ssize_t got = ::read(m_fd.get(), out.data(), out.size());
        if (got >= 0)
            return static_cast<std::size_t>(got);
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            return 0;
        return fail_errno("read from TAP");
    }
}

Result<bool> TapDevice::write(std::span<std::byte const> frame)
{
    for (;;) {
        ssize_t put = ::write(m_fd.get(), frame.data(), frame.size());
        if (put >= 0)
            return true;
        if (errno == EINTR)
            continue;
        // EAGAIN/ENOBUFS: queue full; EIO: the interface is administratively down. Each is a
        // lost frame, not a broken device.
        if (errno == EAGAIN || errno == ENOBUFS || errno == EIO)
            return false;
        return fail_errno("write to TAP");
    }
}

} // namespace vmm

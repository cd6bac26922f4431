// SPDX-License-Identifier: MIT
// TapDevice: one host TAP interface (/dev/net/tun, IFF_TAP | IFF_NO_PI: whole Ethernet frames,
// no packet-info prefix, no virtio-net header since no offload is advertised to the guest).
// TUNSETIFF attaches to an existing TAP of that name (created with `ip tuntap add`, owned by
// the user) or creates one that lives as long as this fd (the kernel removes it when microvmm
// exits). Non-blocking: reads and writes never wait.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/types.hpp"

namespace vmm {

class TapDevice {
public:
    // `mtu` is applied to a TAP microvmm creates; an existing one keeps its own (a mismatch is
    // logged: the guest is told `mtu`).
    static Result<TapDevice> open(std::string const& name, u32 mtu);

    int fd() const { return m_fd.get(); }
    std::string const& name() const { return m_name; }
    bool created() const { return m_created; }
    // One frame into `out` (sized for the largest frame); 0 when none is waiting.
    Result<std::size_t> read(std::span<std::byte> out);
    // One frame; false when the kernel queue refused it (EAGAIN/ENOBUFS): the frame is dropped.
    Result<bool> write(std::span<std::byte const> frame);

private:
    TapDevice(Fd fd, std::string name, bool created)
        : m_fd(std::move(fd))
        , m_name(std::move(name))
        , m_created(created)
    {
    }
    Fd m_fd;
    std::string m_name;
    bool m_created;
};

} // namespace vmm

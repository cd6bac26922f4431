// SPDX-License-Identifier: MIT
// HvSockBackend: hv_sock's host side on Unix sockets, with the hybrid-vsock convention of
// Firecracker and Cloud Hypervisor (configs/README.md "[vsock]"), so their clients work as-is:
//   host-initiated:  connect to uds_path, write "CONNECT <port>\n", read "OK <host_port>\n",
//                    then bytes flow (the guest must listen on AF_VSOCK port <port>);
//   guest-initiated: the guest's connect() to CID 2 (any CID: hv_sock has one host) port P
//                    is forwarded to a listener at "<uds_path>_P".
// Each connection is one hvsock::HvSockConnection (a VMBus channel, offered at run time and
// rescinded when both directions are finished, the host socket failed, or the guest
// misbehaved); this class moves bytes between it and the socket.
//
// Threads: everything here runs on the event loop (vmm/event_loop.*), sockets non-blocking and
// edge-triggered; the devices live under the VMBus host lock (VmbusGlue), taken briefly per
// step and never across a syscall. Device change hooks and TL_CONNECT_REQUESTs (vCPU threads,
// under VmbusGlue) only post to the loop. Flow control: a socket is read only while its
// device has buffer room, and guest bytes are taken only when the socket took the previous
// ones (the device then leaves packets in the ring, so the guest blocks, not us).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "devices/hvsock/byte_queue.hpp"
#include "devices/hvsock/hvsock_connection.hpp"
#include "vmm/config.hpp"
#include "vmm/event_loop.hpp"
#include "vmm/machine.hpp"
#include "vmm/vmbus_glue.hpp"

namespace vmm {

class HvSockBackend final : public vmbus::TlConnectSink {
public:
    // Open connections at most (each holds 2 fds' worth of buffers and a VMBus relid).
    static constexpr std::size_t MAX_CONNECTIONS = 512;
    // A channel the guest has not opened by then is rescinded (no listener in the guest, or a
    // guest that ignores offers); the host client sees its socket closed without "OK". Generous:
    // a busy guest handles offers one at a time in a workqueue (channel_mgmt.c), and rescinding
    // an offer the guest is about to open fails its connect. 15 s was too short for 8 offers
    // at once to an emulated guest kernel on a loaded host (docs/test-host.md), and so was 60 s
    // at a load average of 12 (3 of 8 rescinded while the guest was opening them). A silent
    // guest holds at most MAX_CONNECTIONS offers this long.
    static constexpr std::chrono::seconds OPEN_TIMEOUT { 120 };
    // Host-initiated connections get host ports from here up (Firecracker's local ports start
    // at 2^30 too), far from the guest's ephemeral ports.
    static constexpr std::uint32_t FIRST_HOST_PORT = 1u << 30;
    // After the guest's FIN, how long host->guest bytes may make no progress before the
    // connection is reset: a guest that closed its socket (not just shut down writing) reads
    // no more, and its socket release waits for our rescind (vmbus_hvsock_device_unregister(),
    // channel_mgmt.c:1290-1298), holding a guest kernel thread.
    static constexpr std::chrono::seconds LINGER_TIMEOUT { 30 };

    // `open_timeout`: OPEN_TIMEOUT but for tests.
    HvSockBackend(VsockSection const& config, EventLoop& loop, std::chrono::milliseconds open_timeout = OPEN_TIMEOUT);
    ~HvSockBackend() override;
    HvSockBackend(HvSockBackend const&) = delete;
    HvSockBackend& operator=(HvSockBackend const&) = delete;

    // Loop thread, before run: binds and listens on uds_path (a stale socket file is replaced;
    // any other file there is an error).
    Result<void> start();
    // Loop thread, per boot before the vCPUs start / before the Machine goes: connections of
    // the old boot are closed (their host sockets too).
    void attach(Machine& machine);
    void detach(Machine& machine);
    // The same on a bare VMBus host (tests).
    void attach(VmbusGlue& glue);
    void detach(VmbusGlue& glue);

    // vmbus::TlConnectSink (vCPU thread, VMBus host lock held): posts to the loop.
    void on_tl_connect_request(vmbus::Guid const& guest_endpoint_id, vmbus::Guid const& host_service_id) override;

    std::size_t connection_count() const { return m_connections.size(); }

private:
    struct Connection;
    void on_accept();
    void on_connect_line(Connection& connection);
    void connect_to_host(vmbus::Guid guest_endpoint_id, vmbus::Guid host_service_id, u64 boot);
    Result<void> offer(Connection& connection, vmbus::Guid service, vmbus::Guid instance, bool from_host);
    void post_service(u64 id);
    void service(u64 id);
    // Returns false when the connection is finished (the caller erases it).
    bool step(Connection& connection);
    void arm_linger(Connection& connection);
    void finish(u64 id, char const* why);

    VsockSection const& m_config;
    EventLoop& m_loop;
    std::chrono::milliseconds m_open_timeout;
    Fd m_listener;
    u64 m_socket_dev { 0 }; // The socket file we bound (unlinked at exit only if still ours).
    u64 m_socket_ino { 0 };
    EventLoop::Registration m_listener_registration;
    VmbusGlue* m_glue { nullptr }; // The running boot's VMBus host (null between boots).
    u64 m_boot { 0 };
    u64 m_next_id { 1 };
    std::uint32_t m_next_host_port { FIRST_HOST_PORT };
    std::map<u64, std::unique_ptr<Connection>> m_connections;
    std::array<std::byte, 64 * 1024> m_scratch {};
};

} // namespace vmm

// SPDX-License-Identifier: MIT
// HvSockBackend: hv_sock connections on Unix sockets; see hvsock_backend.hpp.
#include "vmm/backends/hvsock_backend.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>

#include "base/log.hpp"
#include "devices/hvsock/service_id.hpp"
#include "vmm/backends/hybrid_vsock.hpp"

namespace vmm {

namespace {

constexpr u32 SOCKET_EVENTS = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

Result<sockaddr_un> unix_address(std::string const& path)
{
    sockaddr_un address {};
    address.sun_family = AF_UNIX;
    if (path.size() >= sizeof(address.sun_path))
        return fail(Errc::InvalidArgument, "unix socket path too long", path.size());
    std::memcpy(address.sun_path, path.data(), path.size());
    return address;
}

} // namespace

struct HvSockBackend::Connection {
    u64 id;
    Fd socket;
    EventLoop::Registration registration; // Declared after socket: leaves epoll first.
    std::unique_ptr<hvsock::HvSockConnection> device; // Null while the CONNECT line is read.
    bool from_host { false };
    std::uint32_t host_port { 0 };
    std::string line;
    hvsock::ByteQueue to_socket { 128 * 1024 }; // Guest bytes (and "OK") the socket has not taken.
    bool ok_queued { false };
    bool host_eof { false };
    bool shut_write { false };
    std::atomic<bool> service_posted { false };
    EventLoop::Timer open_deadline;
    EventLoop::Timer linger; // Armed at the guest's FIN while host bytes are still owed.
    u64 linger_mark { 0 };   // bytes_to_guest when it last fired.
};

HvSockBackend::HvSockBackend(VsockSection const& config, EventLoop& loop, std::chrono::milliseconds open_timeout)
    : m_config(config)
    , m_loop(loop)
    , m_open_timeout(open_timeout)
{
}

HvSockBackend::~HvSockBackend()
{
    m_listener_registration.reset();
    // Only our own socket file: a later microvmm may have replaced it already.
    struct stat now {};
    if (m_listener.is_open() && m_config.uds_path && ::lstat(m_config.uds_path->c_str(), &now) == 0
        && now.st_dev == m_socket_dev && now.st_ino == m_socket_ino)
        ::unlink(m_config.uds_path->c_str());
}

Result<void> HvSockBackend::start()
{
    if (!m_config.uds_path)
        return {};
    std::string const path = m_config.uds_path->string();
    struct stat existing {};
    if (::lstat(path.c_str(), &existing) == 0) {
        if (!S_ISSOCK(existing.st_mode))
            return fail(Errc::InvalidArgument, fmt::format("vsock.uds_path {} exists and is not a socket", path), 0);
        ::unlink(path.c_str()); // A previous run's socket.
    }
    Fd listener { ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) };
    if (!listener.is_open())
        return fail_errno("vsock: socket");
    auto address = VMM_TRY(unix_address(path));
    if (::bind(listener.get(), reinterpret_cast<sockaddr const*>(&address), sizeof(address)) < 0)
        return fail_errno(fmt::format("vsock: bind {}", path).c_str());
    if (::listen(listener.get(), 128) < 0)
        return fail_errno("vsock: listen");
    struct stat bound {};
    if (::lstat(path.c_str(), &bound) == 0) {
        m_socket_dev = bound.st_dev;
        m_socket_ino = bound.st_ino;
    }
    m_listener = std::move(listener);
    m_listener_registration = VMM_TRY(m_loop.watch(m_listener.get(), EPOLLIN, [this](u32) { on_accept(); }));
    log::info("vsock", "hv_sock on {} (guest-initiated connections to port P go to {}_P)", path, path);
    return {};
}

void HvSockBackend::attach(Machine& machine)
{
    if (machine.vmbus() != nullptr)
        attach(*machine.vmbus());
}

void HvSockBackend::detach(Machine& machine)
{
    if (machine.vmbus() != nullptr)
        detach(*machine.vmbus());
}

void HvSockBackend::attach(VmbusGlue& glue)
{
    if (!m_config.uds_path)
        return;
    m_glue = &glue;
    ++m_boot;
    glue.with_host([this](vmbus::VmbusHost& host) { host.set_tl_connect_sink(this); });
}

void HvSockBackend::detach(VmbusGlue& glue)
{
    if (m_glue != &glue)
        return;
    glue.with_host([this](vmbus::VmbusHost& host) {
        host.set_tl_connect_sink(nullptr);
        for (auto& [id, connection] : m_connections)
            if (connection->device)
                host.rescind(*connection->device); // The host never calls it again after this.
    });
    m_connections.clear(); // Closes every host socket: the guest that had them is gone.
    m_glue = nullptr;
}

void HvSockBackend::on_accept()
{
    for (;;) {
        Fd client { ::accept4(m_listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC) };
        if (!client.is_open()) {
            if (errno != EAGAIN && errno != EINTR)
                log::warn("vsock", "accept on {}: {}", m_config.uds_path->string(), std::strerror(errno));
            return;
        }
        if (!m_glue || m_connections.size() >= MAX_CONNECTIONS) {
            log::warn("vsock", "host connection refused: {}", m_glue ? "too many connections" : "no guest running");
            continue; // Closing it tells the client.
        }
        auto connection = std::make_unique<Connection>();
        connection->id = m_next_id++;
        connection->from_host = true;
        connection->socket = std::move(client);
        u64 id = connection->id;
        auto watched = m_loop.watch(connection->socket.get(), SOCKET_EVENTS, [this, id](u32) { service(id); });
        if (!watched) {
            log::warn("vsock", "watching a host connection: {}", watched.error());
            continue;
        }
        connection->registration = std::move(*watched);
        m_connections.emplace(id, std::move(connection));
        service(id); // The line may be there already (edge-triggered).
    }
}

void HvSockBackend::on_connect_line(Connection& connection)
{
    // Byte by byte up to the newline, so nothing after it is taken from the socket before
    // the device exists to carry it.
    for (;;) {
        char c = 0;
        ssize_t got = ::recv(connection.socket.get(), &c, 1, 0);
        if (got < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (got <= 0)
            return finish(connection.id, "host client left before CONNECT");
        if (c != '\n') {
            connection.line.push_back(c);
            if (connection.line.size() > hybrid_vsock::MAX_CONNECT_LINE)
                return finish(connection.id, "CONNECT line too long");
            continue;
        }
        auto port = hybrid_vsock::parse_connect(connection.line);
        if (!port) {
            log::warn("vsock", "host client sent {:?}, not \"CONNECT <port>\": closed", connection.line);
            return finish(connection.id, "bad CONNECT line");
        }
        connection.host_port = m_next_host_port++;
        if (m_next_host_port == 0)
            m_next_host_port = FIRST_HOST_PORT;
        if (auto offered = offer(connection, hvsock::service_id_for_port(*port),
                hvsock::service_id_for_port(connection.host_port), true);
            !offered) {
            log::warn("vsock", "offering host connection to guest port {}: {}", *port, offered.error());
            return finish(connection.id, "offer failed");
        }
        log::debug("vsock", "host connection {} -> guest port {} offered (host port {})", connection.id, *port, connection.host_port);
        return;
    }
}

Result<void> HvSockBackend::offer(Connection& connection, vmbus::Guid service, vmbus::Guid instance, bool from_host)
{
    auto device = std::make_unique<hvsock::HvSockConnection>(service, instance, from_host);
    u64 id = connection.id;
    device->set_change_hook([this, id, flag = &connection.service_posted] {
        // Under the VMBus lock: flag and post only. The Connection outlives every call (the
        // host stops calling the device when it is rescinded, before the Connection goes).
        if (!flag->exchange(true))
            post_service(id);
    });
    connection.open_deadline = VMM_TRY(m_loop.create_timer([this, id] {
        auto it = m_connections.find(id);
        if (it == m_connections.end() || !m_glue)
            return;
        bool opened = false;
        m_glue->with_host([&](vmbus::VmbusHost&) { opened = it->second->device->opened(); });
        if (!opened)
            finish(id, "the guest did not open the channel (no listener on that port?)");
    }));
    VMM_TRY(connection.open_deadline.arm(m_open_timeout));
    VMM_TRY(m_glue->with_host([&](vmbus::VmbusHost& host) -> Result<void> {
        VMM_TRY(host.add_device(*device));
        return {};
    }));
    connection.device = std::move(device);
    return {};
}

void HvSockBackend::on_tl_connect_request(vmbus::Guid const& guest_endpoint_id, vmbus::Guid const& host_service_id)
{
    u64 boot = m_boot; // Written by the loop before the vCPUs start.
    if (!m_loop.post([this, guest_endpoint_id, host_service_id, boot] { connect_to_host(guest_endpoint_id, host_service_id, boot); }))
        VMM_GUEST_WARN("vsock", "guest connect request dropped: event loop queue full");
}

void HvSockBackend::connect_to_host(vmbus::Guid guest_endpoint_id, vmbus::Guid host_service_id, u64 boot)
{
    if (!m_glue || boot != m_boot)
        return; // From a guest that is gone.
    auto port = hvsock::port_of_service_id(host_service_id);
    if (!port) {
        VMM_GUEST_WARN("vsock", "guest connect request for a service GUID that is not a vsock port: ignored");
        return;
    }
    if (m_connections.size() >= MAX_CONNECTIONS) {
        VMM_GUEST_WARN("vsock", "guest connect to port {} refused: {} connections open", *port, m_connections.size());
        return;
    }
    for (auto const& [id, other] : m_connections)
        if (other->device && !other->from_host && other->device->offer().interface_instance == guest_endpoint_id) {
            VMM_GUEST_WARN("vsock", "guest connect to port {} repeated for a live connection: ignored", *port);
            return;
        }
    std::string const path = fmt::format("{}_{}", m_config.uds_path->string(), *port);
    Fd socket { ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) };
    auto address = unix_address(path);
    if (!socket.is_open() || !address
        || ::connect(socket.get(), reinterpret_cast<sockaddr const*>(&*address), sizeof(*address)) < 0) {
        // Nothing goes back: Linux ignores TL_CONNECT_RESULT; the guest's connect() times out.
        VMM_GUEST_WARN("vsock", "guest connect to port {}: {}: {}", *port, path, std::strerror(errno));
        return;
    }
    auto connection = std::make_unique<Connection>();
    connection->id = m_next_id++;
    connection->host_port = *port;
    connection->socket = std::move(socket);
    // The offer names the guest's side as if_instance, the service as if_type
    // (hyperv_transport.c:310-316: found by the port in if_instance when !conn_from_host).
    if (auto offered = offer(*connection, host_service_id, guest_endpoint_id, false); !offered) {
        VMM_GUEST_WARN("vsock", "guest connect to port {}: offer failed: {}", *port, offered.error());
        return;
    }
    u64 id = connection->id;
    auto watched = m_loop.watch(connection->socket.get(), SOCKET_EVENTS, [this, id](u32) { service(id); });
    m_connections.emplace(id, std::move(connection));
    if (!watched) {
        log::warn("vsock", "watching {}: {}", path, watched.error());
        return finish(id, "cannot watch the host socket");
    }
    m_connections[id]->registration = std::move(*watched);
    log::debug("vsock", "guest connection {} -> {} offered", id, path);
    service(id);
}

void HvSockBackend::post_service(u64 id)
{
    if (!m_loop.post([this, id] { service(id); })) {
        // Queue full: clear the flag so the next change posts again (nothing is lost: the
        // state lives in the device; the next socket event or change services it).
        auto it = m_connections.find(id);
        if (it != m_connections.end())
            it->second->service_posted = false;
    }
}

void HvSockBackend::service(u64 id)
{
    auto it = m_connections.find(id);
    if (it == m_connections.end())
        return;
    Connection& connection = *it->second;
    connection.service_posted = false;
    if (!m_glue)
        return finish(id, "no guest");
    if (!connection.device) {
        on_connect_line(connection);
        return;
    }
    if (!step(connection))
        finish(id, nullptr);
}

bool HvSockBackend::step(Connection& connection)
{
    auto& device = *connection.device;
    auto* glue = m_glue;
    // Bounded rounds per call so one busy connection cannot hold the loop; a round that made
    // progress and was cut short posts itself again.
    for (int round = 0; round < 16; ++round) {
        bool progress = false;
        std::size_t room = 0;
        bool guest_finished = false;
        bool closed = false;
        bool failed = false;
        bool done = false;
        bool opened = false;
        glue->with_host([&](vmbus::VmbusHost& host) {
            opened = device.opened();
            if (opened && connection.from_host && !connection.ok_queued) {
                auto ok = hybrid_vsock::ok_reply(connection.host_port);
                connection.to_socket.push(std::as_bytes(std::span(ok)));
                connection.ok_queued = true;
            }
            std::size_t want = std::min(connection.to_socket.room(), m_scratch.size());
            std::size_t took = device.take_from_guest(std::span(m_scratch).first(want));
            if (took > 0) {
                connection.to_socket.push(std::span(m_scratch).first(took));
                host.resume_receive(device); // The ring may have paused on our full buffer.
                progress = true;
            }
            room = device.to_guest_room();
            guest_finished = device.guest_finished();
            closed = device.state() == hvsock::HvSockState::Closed;
            failed = device.failed();
            done = device.done();
        });
        if (opened)
            connection.open_deadline = {};
        if (failed) {
            log::warn("vsock", "connection {}: guest protocol error, reset", connection.id);
            return false;
        }
        // Guest -> socket.
        while (!connection.to_socket.empty()) {
            std::size_t n = connection.to_socket.peek(m_scratch);
            ssize_t sent = ::send(connection.socket.get(), m_scratch.data(), n, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (sent < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    break; // EPOLLOUT (edge) comes back.
                log::debug("vsock", "connection {}: host socket write: {}", connection.id, std::strerror(errno));
                return false; // The host side is gone: reset (the guest sees the rescind).
            }
            connection.to_socket.drop(static_cast<std::size_t>(sent));
            progress = true;
        }
        if (connection.to_socket.empty() && guest_finished && !connection.shut_write) {
            ::shutdown(connection.socket.get(), SHUT_WR); // The guest's FIN, passed on.
            connection.shut_write = true;
        }
        // Socket -> guest, only as far as the device has room (flow control).
        if (!connection.host_eof && !closed && room > 0) {
            ssize_t got = ::recv(connection.socket.get(), m_scratch.data(), std::min(room, m_scratch.size()), MSG_DONTWAIT);
            if (got > 0) {
                glue->with_host([&](vmbus::VmbusHost&) { device.send_to_guest(std::span(m_scratch).first(static_cast<std::size_t>(got))); });
                progress = true;
            } else if (got == 0) {
                connection.host_eof = true;
                glue->with_host([&](vmbus::VmbusHost&) { device.finish_to_guest(); });
                progress = true;
            } else if (errno != EAGAIN && errno != EINTR) {
                log::debug("vsock", "connection {}: host socket read: {}", connection.id, std::strerror(errno));
                return false;
            }
        }
        if (done && connection.to_socket.empty() && connection.shut_write)
            return false; // Both directions finished: rescind.
        if (guest_finished && !done)
            arm_linger(connection);
        if (closed && connection.to_socket.empty()) {
            // The guest closed the channel (or unloaded VMBus): nothing more can flow.
            bool more = false;
            glue->with_host([&](vmbus::VmbusHost&) { more = device.has_from_guest(); });
            if (!more)
                return false;
        }
        if (!progress)
            return true;
    }
    if (!connection.service_posted.exchange(true))
        post_service(connection.id);
    return true;
}

void HvSockBackend::arm_linger(Connection& connection)
{
    if (connection.linger_mark != 0)
        return; // Armed already.
    u64 id = connection.id;
    m_glue->with_host([&](vmbus::VmbusHost&) { connection.linger_mark = 1 + connection.device->stats().bytes_to_guest; });
    auto timer = m_loop.create_timer([this, id] {
        auto it = m_connections.find(id);
        if (it == m_connections.end())
            return;
        auto& c = *it->second;
        if (!m_glue)
            return;
        u64 now = 0;
        bool owed = false;
        m_glue->with_host([&](vmbus::VmbusHost&) {
            now = 1 + c.device->stats().bytes_to_guest;
            owed = !c.device->to_guest_idle();
        });
        // Only a guest that leaves host bytes unread: a slow host reply is not the guest's fault.
        if (now == c.linger_mark && owed)
            return finish(id, "the guest closed and stopped reading");
        c.linger_mark = now;
    });
    if (!timer || !timer->arm(LINGER_TIMEOUT, LINGER_TIMEOUT))
        return; // Without the timer the connection still ends when the host side finishes.
    connection.linger = std::move(*timer);
}

void HvSockBackend::finish(u64 id, char const* why)
{
    auto it = m_connections.find(id);
    if (it == m_connections.end())
        return;
    auto& connection = *it->second;
    log::debug("vsock", "connection {} closed: {}", id, why ? why : "finished");
    if (connection.device && m_glue)
        m_glue->with_host([&](vmbus::VmbusHost& host) { host.rescind(*connection.device); });
    m_connections.erase(it); // Closes the host socket.
}

} // namespace vmm

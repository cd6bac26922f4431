// SPDX-License-Identifier: MIT
// HvSockBackend (vmm/backends/hvsock_backend.*) on a real event loop, real Unix sockets and the
// VMBus host with the test guest driver (no KVM): a host-initiated and a guest-initiated
// connection each move 1 MiB both ways while the guest reads slowly (the ring and the
// connection's buffers fill: nothing may be lost or reordered, nothing may block the loop),
// half-close each way, and end with the channel rescinded.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <functional>

#include "devices/hvsock/service_id.hpp"
#include "tests/support/vmbus_fakes.hpp"
#include "tests/support/vmbus_test_guest.hpp"
#include "vmm/backends/hvsock_backend.hpp"

using namespace vmm;
using namespace vmm::vmbus;

namespace {

constexpr std::size_t BYTES = 1 << 20;

std::vector<std::byte> pattern(std::size_t n, unsigned seed)
{
    std::vector<std::byte> out(n);
    std::uint32_t x = seed * 2654435761u + 7;
    for (auto& b : out) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b = static_cast<std::byte>(x);
    }
    return out;
}

int unix_socket(std::string const& path, bool listen)
{
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address {};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    int rc = listen ? ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address))
                    : ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    if (rc < 0 || (listen && ::listen(fd, 4) < 0)) {
        ::close(fd);
        return -1;
    }
    return fd;
}

class HvSockBackendTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        dir = std::filesystem::temp_directory_path() / ("hvsock-test-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir);
        config.uds_path = dir / "v.sock";
        auto created = EventLoop::create();
        ASSERT_TRUE(created);
        loop = std::move(*created);
        backend = std::make_unique<HvSockBackend>(config, *loop, std::chrono::milliseconds(1000)); // Short, for the no-listener case.
        ASSERT_TRUE(backend->start());
        backend->attach(glue);
        ASSERT_TRUE(guest.initiate_contact(VERSION_WIN10_V5_3));
        guest.request_offers();
    }
    void TearDown() override
    {
        backend->detach(glue);
        backend.reset();
        std::filesystem::remove_all(dir);
    }

    // The guest side, one step per loop tick: opens the first offer, reads only every 4th tick
    // (a slow reader), writes its payload while the ring has room, then its FIN.
    void guest_step()
    {
        for (auto const& message : guest.receive_all()) {
            if (message.msgtype() == static_cast<u32>(MessageType::CHANNELMSG_OFFERCHANNEL) && !opened) {
                auto offer = test::TestVmbusGuest::as<OfferChannel>(message);
                from_host_offer = offer.user_def[4];
                opened = guest.bring_up(offer, pages, 7) == CHANNEL_STATUS_SUCCESS;
            }
            if (message.msgtype() == static_cast<u32>(MessageType::CHANNELMSG_RESCIND_CHANNELOFFER))
                rescinded = true;
        }
        if (!opened || rescinded)
            return;
        if (++ticks % 4 == 0) {
            while (auto packet = guest.read_packet()) {
                std::uint32_t size = 0;
                std::memcpy(&size, packet->data() + 4, 4);
                if (size == 0)
                    guest_got_fin = true;
                guest_got.insert(guest_got.end(), packet->begin() + 8, packet->begin() + 8 + size);
            }
        }
        while (guest_sent < guest_data.size()) {
            std::size_t n = std::min<std::size_t>(4088, guest_data.size() - guest_sent);
            std::vector<std::byte> packet(8 + n);
            std::uint32_t header[2] = { 1, static_cast<std::uint32_t>(n) };
            std::memcpy(packet.data(), header, 8);
            std::memcpy(packet.data() + 8, guest_data.data() + guest_sent, n);
            if (!guest.write_packet(packet))
                return;
            guest_sent += n;
        }
        if (!guest_fin_sent) {
            std::uint32_t header[2] = { 1, 0 };
            guest_fin_sent = guest.write_packet(std::as_bytes(std::span(header)));
        }
    }
    // The host peer (a client of uds_path, or the accepted side of <uds_path>_P): non-blocking.
    void host_step(int fd)
    {
        char buffer[65536];
        for (;;) {
            ssize_t got = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
            if (got == 0)
                host_got_eof = true;
            if (got <= 0)
                break;
            host_got.insert(host_got.end(), reinterpret_cast<std::byte*>(buffer), reinterpret_cast<std::byte*>(buffer) + got);
        }
        while (host_sent < host_data.size()) {
            ssize_t sent = ::send(fd, host_data.data() + host_sent, host_data.size() - host_sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (sent <= 0) {
                ++host_blocked; // The connection's buffer and the ring are full: back-pressure.
                return;
            }
            host_sent += static_cast<std::size_t>(sent);
        }
        if (!host_shut) {
            ::shutdown(fd, SHUT_WR);
            host_shut = true;
        }
    }
    // Runs the loop with a 1 ms tick calling `step` until it returns true (or 60 s pass).
    void run(std::function<bool()> step)
    {
        auto start = std::chrono::steady_clock::now();
        auto timer = loop->create_timer([&] {
            if (step() || std::chrono::steady_clock::now() - start > std::chrono::seconds(60))
                loop->stop();
        });
        ASSERT_TRUE(timer);
        ASSERT_TRUE(timer->arm(std::chrono::milliseconds(1), std::chrono::milliseconds(1)));
        ASSERT_TRUE(loop->run_until_stopped());
    }

    test::FakeGuestMemory memory = test::VmbusRam::make();
    test::FakeSynicPort synic;
    VmbusGlue glue { memory.memory(), synic, 1 };
    VmbusHost& host = glue.with_host([](VmbusHost& h) -> VmbusHost& { return h; });
    test::TestVmbusGuest guest { host, synic, memory };
    std::vector<mem::Gpn> pages = test::TestVmbusGuest::scattered_pages(14);
    std::filesystem::path dir;
    VsockSection config;
    std::unique_ptr<EventLoop> loop;
    std::unique_ptr<HvSockBackend> backend;

    bool opened = false, rescinded = false, guest_got_fin = false, guest_fin_sent = false;
    bool host_got_eof = false, host_shut = false;
    int from_host_offer = -1;
    unsigned ticks = 0;
    unsigned host_blocked = 0;
    std::vector<std::byte> guest_data = pattern(BYTES, 1), host_data = pattern(BYTES, 2);
    std::vector<std::byte> guest_got, host_got;
    std::size_t guest_sent = 0, host_sent = 0;
};

TEST_F(HvSockBackendTest, HostInitiatedConnectionMovesBytesBothWaysAndIsRescinded)
{
    int client = unix_socket(config.uds_path->string(), false);
    ASSERT_GE(client, 0);
    ASSERT_EQ(::write(client, "CONNECT 5000\n", 13), 13);
    ::fcntl(client, F_SETFL, O_NONBLOCK);
    std::string reply;
    run([&] {
        guest_step();
        if (opened && !reply.ends_with("\n")) {
            char c;
            while (!reply.ends_with("\n") && ::recv(client, &c, 1, MSG_DONTWAIT) == 1)
                reply.push_back(c);
            return false;
        }
        if (opened)
            host_step(client);
        return rescinded && host_got_eof;
    });
    EXPECT_EQ(reply, "OK 1073741824\n");
    EXPECT_GT(host_blocked, 0u); // The slow guest pushed back on the host client.
    EXPECT_EQ(from_host_offer, 1);
    EXPECT_TRUE(guest_got == host_data) << guest_got.size() << " of " << host_data.size();
    EXPECT_TRUE(host_got == guest_data) << host_got.size() << " of " << guest_data.size();
    EXPECT_TRUE(guest_got_fin);
    EXPECT_TRUE(host_got_eof);
    EXPECT_TRUE(rescinded);
    EXPECT_EQ(backend->connection_count(), 0u);
    ::close(client);
}

TEST_F(HvSockBackendTest, GuestInitiatedConnectionReachesTheListenerAtUdsPathUnderscorePort)
{
    int listener = unix_socket(config.uds_path->string() + "_7000", true);
    ASSERT_GE(listener, 0);
    TlConnectRequest request {};
    request.header.msgtype = static_cast<u32>(MessageType::CHANNELMSG_TL_CONNECT_REQUEST);
    request.guest_endpoint_id = hvsock::service_id_for_port(1234).bytes;
    request.host_service_id = hvsock::service_id_for_port(7000).bytes;
    ASSERT_EQ(guest.post(request), HV_STATUS_SUCCESS);
    int peer = -1;
    int after = -1; // Ticks since a connect request for a port with no listener.
    bool offered_again = false;
    std::size_t count_after_first = 99;
    run([&] {
        if (after >= 0) {
            for (auto const& message : guest.receive_all())
                offered_again |= message.msgtype() == static_cast<u32>(MessageType::CHANNELMSG_OFFERCHANNEL);
            return ++after > 50;
        }
        guest_step();
        if (peer < 0) {
            ::fcntl(listener, F_SETFL, O_NONBLOCK);
            peer = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
            return false;
        }
        if (opened)
            host_step(peer);
        if (rescinded && host_got_eof) {
            count_after_first = backend->connection_count();
            request.host_service_id = hvsock::service_id_for_port(7001).bytes;
            request.guest_endpoint_id = hvsock::service_id_for_port(1235).bytes;
            EXPECT_EQ(guest.post(request), HV_STATUS_SUCCESS);
            after = 0;
        }
        return false;
    });
    EXPECT_EQ(from_host_offer, 0);
    EXPECT_TRUE(guest_got == host_data) << guest_got.size() << " of " << host_data.size();
    EXPECT_TRUE(host_got == guest_data) << host_got.size() << " of " << guest_data.size();
    EXPECT_TRUE(rescinded);
    EXPECT_EQ(count_after_first, 0u);
    // The connect request for a port with no listener offered nothing.
    EXPECT_GT(after, 50);
    EXPECT_FALSE(offered_again);
    EXPECT_EQ(backend->connection_count(), 0u);
    ::close(peer);
    ::close(listener);
}

// The guest never opens the offer (no AF_VSOCK listener on that port): after the open timeout
// the offer is rescinded and the host client closed without "OK", as Firecracker clients expect.
TEST_F(HvSockBackendTest, HostConnectToAGuestPortNobodyOpensIsClosedWithoutOk)
{
    int client = unix_socket(config.uds_path->string(), false);
    ASSERT_GE(client, 0);
    ASSERT_EQ(::write(client, "CONNECT 9\n", 10), 10);
    ::fcntl(client, F_SETFL, O_NONBLOCK);
    // And a line that is not the convention: closed at once, nothing offered for it.
    int bad = unix_socket(config.uds_path->string(), false);
    ASSERT_GE(bad, 0);
    ASSERT_EQ(::write(bad, "CONNECT x\n", 10), 10);
    ::fcntl(bad, F_SETFL, O_NONBLOCK);
    int offers = 0;
    std::string reply;
    bool eof = false, bad_eof = false;
    run([&] {
        for (auto const& message : guest.receive_all()) {
            offers += message.msgtype() == static_cast<u32>(MessageType::CHANNELMSG_OFFERCHANNEL);
            rescinded |= message.msgtype() == static_cast<u32>(MessageType::CHANNELMSG_RESCIND_CHANNELOFFER);
        }
        char c;
        ssize_t got;
        while ((got = ::recv(client, &c, 1, MSG_DONTWAIT)) == 1)
            reply.push_back(c);
        eof |= got == 0;
        bad_eof |= ::recv(bad, &c, 1, MSG_DONTWAIT) == 0;
        return rescinded && eof && bad_eof;
    });
    EXPECT_EQ(offers, 1);
    EXPECT_TRUE(rescinded);
    EXPECT_TRUE(eof);
    EXPECT_TRUE(bad_eof);
    EXPECT_EQ(reply, "");
    EXPECT_EQ(backend->connection_count(), 0u);
    ::close(bad);
    ::close(client);
}

class HvSockBackendEndTest : public HvSockBackendTest, public ::testing::WithParamInterface<bool> {};

// The guest vanishes mid-stream (closes the channel: its socket was released, or it unloaded
// VMBus) or sends a hostile packet: the host client is closed, the channel rescinded, nothing
// else is affected.
TEST_P(HvSockBackendEndTest, GuestGoneOrHostileMidStreamClosesTheHostSide)
{
    bool hostile = GetParam();
    int client = unix_socket(config.uds_path->string(), false);
    ASSERT_GE(client, 0);
    ASSERT_EQ(::write(client, "CONNECT 5000\n", 13), 13);
    ::fcntl(client, F_SETFL, O_NONBLOCK);
    guest_data.resize(0);
    guest_fin_sent = true; // The guest never finishes on its own here.
    u32 relid = 0;
    bool ended = false;
    run([&] {
        if (!opened) {
            for (auto const& message : guest.receive_all())
                if (message.msgtype() == static_cast<u32>(MessageType::CHANNELMSG_OFFERCHANNEL)) {
                    auto offer = test::TestVmbusGuest::as<OfferChannel>(message);
                    relid = offer.child_relid;
                    opened = guest.bring_up(offer, pages, 7) == CHANNEL_STATUS_SUCCESS;
                }
            return false;
        }
        host_step(client);
        if (!ended && host_sent > 100'000) {
            if (hostile) {
                std::uint32_t header[2] = { 1, 100'000 }; // data_size beyond the packet.
                guest.write_packet(std::as_bytes(std::span(header)));
            } else {
                CloseChannel close { { static_cast<u32>(MessageType::CHANNELMSG_CLOSECHANNEL), 0 }, relid };
                guest.post(close);
            }
            ended = true;
        }
        for (auto const& message : guest.receive_all())
            rescinded |= message.msgtype() == static_cast<u32>(MessageType::CHANNELMSG_RESCIND_CHANNELOFFER);
        return ended && host_got_eof && rescinded && backend->connection_count() == 0;
    });
    EXPECT_TRUE(host_got_eof);
    EXPECT_TRUE(rescinded);
    EXPECT_EQ(backend->connection_count(), 0u);
    ::close(client);
}

INSTANTIATE_TEST_SUITE_P(CloseOrHostile, HvSockBackendEndTest, ::testing::Bool());

} // namespace

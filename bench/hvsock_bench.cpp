// SPDX-License-Identifier: MIT
// hv_sock host-side throughput and latency (`make bench`, BENCHMARKS.md "hv_sock"): bytes
// through one HvSockConnection (devices/hvsock/) on the real VMBus host, real ring pages and
// the test suite's Linux-like guest driver (tests/support), both ways, and a 64-byte round
// trip; next to the same transfers over a Unix socketpair, the ceiling a host socket gives.
// What it leaves out: the guest kernel (emulated and ~1000x slower on the test host, so a
// guest-driven figure would measure the emulator) and the back-end's socket syscalls (one
// send/recv per 64 KiB, the same as the socketpair side pays).
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "base/log.hpp"
#include "bench/report.hpp"
#include "devices/hvsock/hvsock_connection.hpp"
#include "devices/hvsock/service_id.hpp"
#include "devices/vmbus/connection.hpp"
#include "tests/support/vmbus_fakes.hpp"
#include "tests/support/vmbus_test_guest.hpp"

using namespace vmm;
using namespace vmm::vmbus;
using vmm::bench::Clock;
using vmm::bench::seconds_since;

namespace {

constexpr std::size_t TOTAL = 64 << 20; // Bytes per throughput run.
constexpr int RUNS = 5;
constexpr int ROUND_TRIPS = 20000;
constexpr std::uint32_t RING_PAGES = 14; // Linux's default: 6 data pages + header each way.

struct Rig {
    test::FakeGuestMemory memory = test::VmbusRam::make();
    test::FakeSynicPort synic;
    VmbusHost host { memory.memory(), synic, 1 };
    test::TestVmbusGuest guest { host, synic, memory };
    std::vector<mem::Gpn> pages = test::TestVmbusGuest::scattered_pages(RING_PAGES);
    hvsock::HvSockConnection conn { hvsock::service_id_for_port(5000), hvsock::service_id_for_port(1u << 30), true };

    Rig()
    {
        guest.initiate_contact(VERSION_WIN10_V5_3);
        guest.request_offers();
        (void)host.add_device(conn);
        auto offer = test::TestVmbusGuest::as<OfferChannel>(guest.receive_all().at(0));
        guest.bring_up(offer, pages, RING_PAGES / 2);
    }
    // One guest packet of `data` (vmpipe header + bytes); false when the ring is full.
    bool guest_send(std::span<std::byte const> data)
    {
        std::vector<std::byte>& packet = scratch;
        packet.resize(8 + data.size());
        std::uint32_t const header[2] = { 1, static_cast<std::uint32_t>(data.size()) };
        std::memcpy(packet.data(), header, 8);
        std::memcpy(packet.data() + 8, data.data(), data.size());
        return guest.write_packet(packet);
    }
    std::size_t guest_receive()
    {
        std::size_t bytes = 0;
        while (auto packet = guest.read_packet())
            bytes += packet->size() - 8;
        return bytes;
    }
    std::vector<std::byte> scratch;
};

double to_guest_mib_s()
{
    Rig rig;
    std::vector<std::byte> chunk(64 << 10, std::byte { 0x5a });
    std::size_t sent = 0, received = 0;
    auto start = Clock::now();
    while (received < TOTAL) {
        if (sent < TOTAL && rig.conn.to_guest_room() > 0)
            sent += rig.conn.send_to_guest(std::span(chunk).first(std::min(chunk.size(), TOTAL - sent)));
        received += rig.guest_receive();
    }
    return TOTAL / seconds_since(start) / (1 << 20);
}

double from_guest_mib_s()
{
    Rig rig;
    std::vector<std::byte> data(4088, std::byte { 0xa5 }); // Linux's HVS_SEND_BUF_SIZE payload.
    std::vector<std::byte> out(64 << 10);
    std::size_t sent = 0, received = 0;
    auto start = Clock::now();
    while (received < TOTAL) {
        while (sent < TOTAL && rig.guest_send(std::span(data).first(std::min(data.size(), TOTAL - sent))))
            sent += std::min(data.size(), TOTAL - sent);
        std::size_t n;
        while ((n = rig.conn.take_from_guest(out)) > 0)
            received += n;
        rig.host.resume_receive(rig.conn);
    }
    return TOTAL / seconds_since(start) / (1 << 20);
}

double round_trip_us()
{
    Rig rig;
    std::vector<std::byte> message(64, std::byte { 1 });
    std::vector<std::byte> out(64);
    auto start = Clock::now();
    for (int i = 0; i < ROUND_TRIPS; ++i) {
        rig.guest_send(message);
        std::size_t n = rig.conn.take_from_guest(out); // Host echoes what it got.
        rig.conn.send_to_guest(std::span(out).first(n));
        rig.guest_receive();
    }
    return seconds_since(start) * 1e6 / ROUND_TRIPS;
}

// The Unix socketpair ceiling: the same pattern (writer and reader alternating in one thread).
double socketpair_mib_s(std::size_t write_chunk)
{
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0)
        return 0;
    std::vector<char> chunk(write_chunk, 'x'), out(64 << 10);
    std::size_t sent = 0, received = 0;
    auto start = Clock::now();
    while (received < TOTAL) {
        if (sent < TOTAL) {
            ssize_t w = ::send(fds[0], chunk.data(), std::min(chunk.size(), TOTAL - sent), MSG_DONTWAIT);
            if (w > 0)
                sent += static_cast<std::size_t>(w);
        }
        ssize_t r = ::recv(fds[1], out.data(), out.size(), MSG_DONTWAIT);
        if (r > 0)
            received += static_cast<std::size_t>(r);
    }
    double mib_s = TOTAL / seconds_since(start) / (1 << 20);
    ::close(fds[0]);
    ::close(fds[1]);
    return mib_s;
}

double socketpair_round_trip_us()
{
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0)
        return 0;
    char message[64] = {}, out[64];
    auto start = Clock::now();
    for (int i = 0; i < ROUND_TRIPS; ++i) {
        (void)!::send(fds[0], message, 64, 0);
        (void)!::recv(fds[1], out, 64, MSG_WAITALL);
        (void)!::send(fds[1], out, 64, 0);
        (void)!::recv(fds[0], message, 64, MSG_WAITALL);
    }
    double us = seconds_since(start) * 1e6 / ROUND_TRIPS;
    ::close(fds[0]);
    ::close(fds[1]);
    return us;
}

} // namespace

int main()
{
    vmm::log::set_level(vmm::log::Level::Error);
    bench::Report report;
    std::vector<double> to_guest, from_guest, rtt, pair_in, pair_out, pair_rtt;
    for (int run = 0; run < RUNS; ++run) {
        to_guest.push_back(to_guest_mib_s());
        from_guest.push_back(from_guest_mib_s());
        rtt.push_back(round_trip_us());
        pair_in.push_back(socketpair_mib_s(64 << 10));
        pair_out.push_back(socketpair_mib_s(4088));
        pair_rtt.push_back(socketpair_round_trip_us());
        fmt::print(stderr, "  run {}: to guest {:.0f} MiB/s, from guest {:.0f} MiB/s, rtt {:.2f} us; socketpair {:.0f}/{:.0f} MiB/s, {:.2f} us\n",
            run, to_guest.back(), from_guest.back(), rtt.back(), pair_in.back(), pair_out.back(), pair_rtt.back());
    }
    report.samples("hvsock.to_guest_mib_s", to_guest, "MiB/s");
    report.samples("hvsock.from_guest_mib_s", from_guest, "MiB/s");
    report.samples("hvsock.rtt_64b_us", rtt, "us");
    report.samples("hvsock.socketpair_64k_mib_s", pair_in, "MiB/s");
    report.samples("hvsock.socketpair_4k_mib_s", pair_out, "MiB/s");
    report.samples("hvsock.socketpair_rtt_64b_us", pair_rtt, "us");
    report.ratio("hvsock.to_guest_vs_socketpair", "hvsock.to_guest_mib_s", "hvsock.socketpair_64k_mib_s");
    report.ratio("hvsock.from_guest_vs_socketpair", "hvsock.from_guest_mib_s", "hvsock.socketpair_4k_mib_s");
    report.note("hvsock.to_guest_mib_s", "HvSockConnection + VMBus host + real ring pages (14-page ring, Linux's default), "
                                         "guest side by the test driver; no guest kernel, no back-end socket syscalls");
    report.print();
    return 0;
}

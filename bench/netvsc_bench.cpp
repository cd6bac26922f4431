// SPDX-License-Identifier: MIT
// netvsc host-side per-packet cost (`make bench`, BENCHMARKS.md "netvsc"): 1514-byte frames
// through one NetvscDevice (devices/netvsc/) on the real VMBus host with real ring pages and
// receive/send buffers, the guest side played by the test suite's Linux-like netvsc driver
// (tests/unit/netvsc/netvsc_guest.hpp):
//   to guest: deliver_frame() -> copy into a receive sub-allocation -> transfer-page packet ->
//             the guest reads it and completes it;
//   from guest: a frame in a send-buffer section (SEND_RNDIS_PKT) -> take_frame() + completion.
// What it leaves out: the guest kernel (emulated and ~1000x slower on the test host, so a
// guest-driven figure measures the emulator) and the TAP read/write syscalls of the back-end.
// The per-packet figures include the test guest's own work (ring reads, completions), so they
// are an upper bound on the VMM's share.
#include <cstring>

#include "base/log.hpp"
#include "bench/report.hpp"
#include "tests/unit/netvsc/netvsc_guest.hpp"

using namespace vmm;
using namespace vmm::netvsc;
using vmm::bench::Clock;
using vmm::bench::seconds_since;

namespace {

constexpr int PACKETS = 100000;
constexpr int RUNS = 5;
constexpr MacAddress MAC { 0x02, 0x15, 0x5d, 0, 0, 1 };

struct Rig {
    test::FakeGuestMemory memory = test::VmbusRam::make();
    test::FakeSynicPort synic;
    vmbus::VmbusHost host { memory.memory(), synic, 1 };
    test::TestVmbusGuest guest { host, synic, memory };
    test::NetvscGuest nic { guest, memory };
    NetvscDevice device { memory.memory(), [] {
                             NetvscConfig c;
                             c.mac = MAC;
                             return c;
                         }() };
    bool ok = nic.bring_up_linux(host, device);
};

double to_guest_ns()
{
    Rig rig;
    if (!rig.ok)
        return 0;
    std::vector<std::byte> frame(1514, std::byte { 0x5a });
    std::memcpy(frame.data(), MAC.data(), 6);
    auto start = Clock::now();
    int delivered = 0;
    while (delivered < PACKETS) {
        if (rig.device.rx_room() && rig.device.deliver_frame(frame))
            ++delivered;
        if (auto got = rig.nic.receive())
            rig.nic.complete_receive(got->tid);
    }
    while (auto got = rig.nic.receive())
        rig.nic.complete_receive(got->tid);
    return seconds_since(start) * 1e9 / PACKETS;
}

double from_guest_ns()
{
    Rig rig;
    if (!rig.ok)
        return 0;
    std::vector<std::byte> frame(1514, std::byte { 0xa5 });
    auto message = test::NetvscGuest::data_message(frame);
    auto start = Clock::now();
    int taken = 0;
    while (taken < PACKETS) {
        rig.nic.send_in_section(message, static_cast<std::uint32_t>(taken % 2));
        while (rig.device.take_frame())
            ++taken;
        rig.host.resume_receive(rig.device);
        while (rig.nic.next()) { // The guest reads its send completions.
        }
    }
    return seconds_since(start) * 1e9 / PACKETS;
}

} // namespace

int main()
{
    vmm::log::set_level(vmm::log::Level::Error);
    bench::Report report;
    std::vector<double> to_guest, from_guest;
    for (int run = 0; run < RUNS; ++run) {
        to_guest.push_back(to_guest_ns());
        from_guest.push_back(from_guest_ns());
        fmt::print(stderr, "  run {}: to guest {:.0f} ns/frame, from guest {:.0f} ns/frame\n", run, to_guest.back(),
            from_guest.back());
    }
    report.samples("netvsc.to_guest_ns_per_frame", to_guest, "ns");
    report.samples("netvsc.from_guest_ns_per_frame", from_guest, "ns");
    report.note("netvsc.to_guest_ns_per_frame", "1514-byte frames: NetvscDevice + VMBus host + real ring and receive buffer "
                                                "pages, guest side by the test driver (included); no guest kernel, no TAP syscalls");
    report.print();
    return 0;
}

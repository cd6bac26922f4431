// SPDX-License-Identifier: MIT
// libFuzzer target for the synthetic NIC (devices/netvsc/) on the real VMBus host: a Linux-like
// guest (tests/unit/netvsc/netvsc_guest.hpp) brings it up, then the input scripts, in any order,
// host frames, well-formed guest frames (section or pages), arbitrary RNDIS streams and NVSP
// messages, RNDIS queries/sets with arbitrary OIDs and offsets, receive completions (right,
// repeated or made up), the owner taking frames and link changes. Invariants after every step:
//   - every transfer-page packet names the guest's receive buffer, one range inside it, at a
//     sub-allocation boundary, and never a sub-allocation still in flight (not yet completed);
//   - the device's in-flight count equals the harness's (plus, at most, the completions still
//     unread in the ring while the device holds back);
//   - every frame handed to the owner is 14..MTU+18 bytes; well-formed guest frames arrive whole,
//     in order, when nothing malformed was sent and nothing refused in between;
//   - at the end (after the teardown), guest memory changed only in the ring, receive/send
//     buffers and request page.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>

#include "base/log.hpp"
#include "tests/support/fuzz_script.hpp"
#include "tests/unit/netvsc/netvsc_guest.hpp"

using namespace vmm;
using namespace vmm::netvsc;
using vmm::test::NetvscGuest;

namespace {

constexpr MacAddress MAC { 0x02, 0x15, 0x5d, 0, 0, 1 };

// One guest RAM for every input, put back after each (restore() of the touched pages): building
// it per input was a third of the target's time (page faults and munmap).
test::FakeGuestMemory& shared_memory()
{
    static test::FakeGuestMemory memory = test::VmbusRam::make();
    return memory;
}

struct World {
    test::FakeGuestMemory& memory = shared_memory();
    test::FakeSynicPort synic;
    vmbus::VmbusHost host { memory.memory(), synic, 1 };
    test::TestVmbusGuest guest { host, synic, memory };
    NetvscGuest nic { guest, memory };
    NetvscDevice device;
    std::map<std::uint32_t, std::uint64_t> in_flight; // offset -> tid
    // Completions written while the device was not ready_for_packet(): they wait in the ring
    // (back-pressure) until resume_receive() lets it read them, so until then the device may
    // still count their sections in flight.
    std::size_t unread_completions = 0;

    World()
        : device(memory.memory(), [] {
            NetvscConfig c;
            c.mac = MAC;
            c.rx_queue_frames = 8;
            c.tx_queue_frames = 8;
            return c;
        }())
    {
    }

    // Reads every host packet, checking transfer-page ones; returns their tids.
    std::vector<std::uint64_t> drain()
    {
        std::vector<std::uint64_t> tids;
        while (auto packet = nic.next()) {
            if (packet->descriptor.type != static_cast<std::uint16_t>(vmbus::VmPacketType::VM_PKT_DATA_USING_XFER_PAGES))
                continue;
            vmbus::InboundPacket seen { vmbus::VmPacketType::VM_PKT_DATA_USING_XFER_PAGES, 0, packet->descriptor.trans_id,
                packet->header, packet->payload };
            auto pages = vmbus::parse_transfer_pages(seen);
            FUZZ_CHECK(pages.has_value());
            FUZZ_CHECK(pages->set_id == NetvscGuest::RECV_ID);
            FUZZ_CHECK(pages->ranges.size() == 1);
            auto range = pages->ranges[0];
            u64 limit = u64 { device.receive_sections() } * device.receive_section_bytes();
            FUZZ_CHECK(range.byte_offset % device.receive_section_bytes() == 0);
            FUZZ_CHECK(u64 { range.byte_offset } + range.byte_count <= limit);
            FUZZ_CHECK(range.byte_count <= device.receive_section_bytes());
            FUZZ_CHECK(!in_flight.contains(range.byte_offset));
            in_flight[range.byte_offset] = packet->descriptor.trans_id;
            tids.push_back(packet->descriptor.trans_id);
        }
        return tids;
    }
    void complete(std::uint64_t tid)
    {
        for (auto it = in_flight.begin(); it != in_flight.end(); ++it) {
            if (it->second == tid) {
                in_flight.erase(it);
                break;
            }
        }
        bool const unread = !device.ready_for_packet();
        if (nic.complete_receive(tid) && unread)
            ++unread_completions;
    }
};

// One copy (FuzzScript::fill): a byte() loop costs a coverage callback per byte.
std::vector<std::byte> bytes_of(test::FuzzScript& in, std::size_t size)
{
    std::vector<std::byte> out(size);
    in.fill(out);
    return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    static bool const quiet = (log::set_level(log::Level::Off), true);
    (void)quiet;
    // FUZZ_NETVSC_REPORT=1: print the device's counters after an input, to see what a seed reached
    // (a recorded guest's RNDIS messages are accepted, not refused as guest errors).
    static bool const report = std::getenv("FUZZ_NETVSC_REPORT") != nullptr;
    test::FuzzScript in { data, size };
    std::optional<World> world; // Destroyed before the RAM is put back (teardown may write).
    World& w = world.emplace();
    FUZZ_CHECK(w.nic.bring_up_linux(w.host, w.device));
    w.in_flight.clear();
    w.nic.completions.clear();
    std::vector<std::vector<std::byte>> expected; // Well-formed guest frames not yet taken.
    bool exact = true;                            // No malformed guest input since the last take.
    // Guest errors when `exact` was last set: a well-formed frame the device still refuses (an
    // earlier malformed message revoked the send buffer, say) is not expected either.
    std::uint64_t errors_when_exact = w.device.stats().guest_errors;

    for (int steps = 0; steps < 128 && !in.done(); ++steps) {
        switch (in.byte() % 9) {
        case 0: { // A host frame.
            std::size_t length = 14 + in.u16() % 1600;
            auto frame = bytes_of(in, length);
            int target = in.byte() % 3;
            if (target == 0)
                std::memcpy(frame.data(), MAC.data(), 6);
            else if (target == 1)
                std::memset(frame.data(), 0xff, 6);
            w.device.deliver_frame(frame);
            break;
        }
        case 1: { // A well-formed guest frame, in a section or in pages.
            if (!w.device.ready_for_packet())
                break;
            auto frame = bytes_of(in, 14 + in.u16() % 1500);
            auto message = NetvscGuest::data_message(frame);
            bool sent = (in.byte() & 1) ? w.nic.send_in_section(message, in.byte() % 2)
                                        : w.nic.send_paged(message, RMC_DATA, in.u16() % 4096);
            if (sent && w.device.link_up())
                expected.push_back(frame);
            break;
        }
        case 2: { // An arbitrary RNDIS stream.
            auto stream = bytes_of(in, in.u16() % 2048);
            if (stream.size() >= 8 && (in.byte() & 1)) { // Plausible header, arbitrary body.
                std::uint32_t header[2] = { in.byte() % 10u, static_cast<std::uint32_t>(stream.size() - in.byte() % 16) };
                std::memcpy(stream.data(), header, 8);
            }
            if (stream.empty())
                break;
            exact = false;
            // One read per statement, in the order clang evaluates the arguments (g++, the corpus
            // replay, evaluates a call's arguments in another order).
            if (in.byte() & 1) {
                std::uint32_t const index = in.byte() % 3;
                std::uint32_t const size_override = in.byte() & 1 ? 0 : in.u16();
                w.nic.send_in_section(stream, index, size_override);
            } else {
                std::uint32_t const channel_type = in.byte() & 1;
                std::uint32_t const offset = in.u16() % 4096;
                w.nic.send_paged(stream, channel_type, offset, in.byte() & 1 ? NetvscGuest::REQUEST_GPN : test::VmbusRam::HOLE_GPN);
            }
            break;
        }
        case 3: { // An arbitrary NVSP message.
            std::array<std::uint32_t, 10> message {};
            message[0] = 100 + in.byte() % 40;
            if (in.byte() % 4 == 0)
                message[0] = in.byte();
            for (std::size_t i = 1; i < message.size(); ++i) {
                std::uint32_t const low = in.u16();
                message[i] = low | (std::uint32_t { in.byte() } << 24);
            }
            exact = false;
            w.nic.send_nvsp(message, in.byte() & 1);
            break;
        }
        case 4: { // Complete what arrived: some once, some twice, some not at all.
            std::vector<std::uint64_t> tids;
            for (auto const& [offset, tid] : w.in_flight)
                tids.push_back(tid);
            for (auto tid : tids) {
                int how = in.byte() % 4;
                if (how == 0)
                    continue;
                w.complete(tid);
                if (how == 3)
                    w.nic.complete_receive(tid);
            }
            break;
        }
        case 5: { // Complete everything outstanding, or a made-up id.
            if (in.byte() & 1) {
                auto all = w.in_flight;
                for (auto const& [offset, tid] : all)
                    w.complete(tid);
            } else {
                // A made-up id may be one in flight (ids are small): then it completes that one.
                std::uint64_t const low = in.u16();
                w.complete(low | (std::uint64_t { in.u16() } << 32));
            }
            break;
        }
        case 6: { // The owner takes frames.
            if (w.device.stats().guest_errors != errors_when_exact)
                exact = false;
            while (auto frame = w.device.take_frame()) {
                FUZZ_CHECK(frame->size() >= 14 && frame->size() <= w.device.mtu() + 18u);
                if (exact) {
                    FUZZ_CHECK(!expected.empty());
                    FUZZ_CHECK(*frame == expected.front());
                    expected.erase(expected.begin());
                }
                w.host.resume_receive(w.device);
            }
            if (!exact || w.device.stats().tx_queue_full + w.device.stats().tx_link_down != 0)
                expected.clear();
            exact = true;
            errors_when_exact = w.device.stats().guest_errors;
            break;
        }
        case 7: // Link down or up.
            w.device.set_link(in.byte() & 1);
            exact = false;
            break;
        case 8: { // A query or set with an arbitrary OID and info buffer.
            std::uint32_t const id = in.byte();
            std::uint32_t const oid_low = in.u16();
            RndisQuerySetRequest request { id, oid_low | (std::uint32_t { in.u16() } << 16), in.u16() % 64, in.u16() % 256, 0 };
            auto info = bytes_of(in, in.byte() % 64);
            exact = false;
            w.nic.send_paged(NetvscGuest::rndis(in.byte() & 1 ? RNDIS_MSG_QUERY : RNDIS_MSG_SET, wire_bytes(request), info));
            break;
        }
        }
        w.drain();
        FUZZ_CHECK(w.device.receive_sections_in_flight() >= w.in_flight.size());
        FUZZ_CHECK(w.device.receive_sections_in_flight() <= w.in_flight.size() + w.unread_completions);
        if (w.device.receive_sections_in_flight() == w.in_flight.size())
            w.unread_completions = 0; // Every real one was read (a repeated one frees nothing).
    }
    // Guest memory changed only where the guest or the device may write.
    std::set<std::uint64_t> allowed { NetvscGuest::REQUEST_GPN, NetvscGuest::REQUEST_GPN + 1, NetvscGuest::REQUEST_GPN + 2 };
    for (auto const* set : { &w.nic.ring_pages, &w.nic.recv_pages, &w.nic.send_pages })
        for (auto page : *set)
            allowed.insert(page.raw());
    if (report) {
        auto const& stats = w.device.stats();
        std::fprintf(stderr, "fuzz_netvsc: guest_errors %llu tx_packets %llu control_dropped %llu link_up %d\n",
            static_cast<unsigned long long>(stats.guest_errors), static_cast<unsigned long long>(stats.tx_packets),
            static_cast<unsigned long long>(stats.control_dropped), w.device.link_up() ? 1 : 0);
    }
    // Checked after the teardown (it may write too), with the one scan of the RAM that also
    // tells restore() what to put back: two 1 MiB scans per input were ~7 % of the target.
    world.reset();
    auto& memory = shared_memory();
    auto const touched = memory.touched_pages();
    for (auto page : touched)
        FUZZ_CHECK(allowed.contains(page));
    memory.restore(touched);
    return 0;
}

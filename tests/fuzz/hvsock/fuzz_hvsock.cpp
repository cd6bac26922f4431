// SPDX-License-Identifier: MIT
// libFuzzer target for one hv_sock connection (devices/hvsock/hvsock_connection.*): the input is
// a script of what the guest does (open, close, well-formed or arbitrary vmpipe packets, reading
// the ring so space comes back) and what the host owner does (queue bytes, FIN, take bytes),
// in any order. Packets are delivered only when ready_for_packet() says so, as VmbusHost does.
// Invariants after every step:
//   - host -> guest: every packet is a vmpipe data header with data_size = payload - 8 <= MTU;
//     the bytes that reach the guest are exactly the bytes the connection accepted, in order;
//     the FIN (data_size 0) comes once, after finish_to_guest() and after every queued byte,
//     and nothing follows it; nothing is sent on a closed channel;
//   - guest -> host: take_from_guest() hands out exactly the payloads of the well-formed data
//     packets accepted while open, in order; a malformed packet fails the connection (Closed);
//   - the stats count exactly those bytes; guest_finished() only after the guest's FIN and
//     once every byte before it was taken.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "base/log.hpp"
#include "devices/hvsock/hvsock_connection.hpp"
#include "tests/support/fuzz_script.hpp"

using namespace vmm;
using hvsock::HvSockConnection;
using hvsock::HvSockState;

namespace {

// The byte the host's stream carries at `offset`: a pattern, so order is checked too. It repeats
// every 64 KiB ((o * 131 + (o >> 8)) mod 256 depends on o mod 65536 only), so the stream from any
// offset is a slice of one table: filled and compared with one memcpy/memcmp instead of a loop
// per byte (each iteration a coverage callback under -fsanitize=fuzzer: most of the run).
constexpr std::size_t PATTERN_PERIOD = 65536;
constexpr std::size_t PATTERN_SLICE = 2 * 65536; // The longest slice: send_to_guest's buffer (u16 * 2).
std::byte host_byte(std::uint64_t offset) { return static_cast<std::byte>((offset * 131 + (offset >> 8)) & 0xFF); }
std::byte const* host_stream(std::uint64_t offset)
{
    static std::vector<std::byte> const table = [] {
        std::vector<std::byte> t(PATTERN_PERIOD + PATTERN_SLICE);
        for (std::size_t i = 0; i < t.size(); ++i)
            t[i] = host_byte(i);
        return t;
    }();
    return table.data() + offset % PATTERN_PERIOD;
}

// The guest's view of the host->guest ring: space it has freed, what arrived.
class FakePort final : public vmbus::ChannelPort {
public:
    bool open = false;
    std::uint64_t space = 0;
    std::uint64_t received = 0; // Host stream bytes that reached the guest.
    bool fin = false;
    std::uint64_t accepted_by_host = 0; // Set by the harness: bytes the connection took.
    bool fin_requested = false;

    Result<void> send_packet(std::span<std::byte const> payload, std::uint64_t) override
    {
        FUZZ_CHECK(open);
        FUZZ_CHECK(!fin);
        FUZZ_CHECK(payload.size() >= hvsock::PIPE_HEADER_BYTES);
        std::uint32_t header[2];
        std::memcpy(header, payload.data(), sizeof header);
        FUZZ_CHECK(header[0] == hvsock::PIPE_PKT_TYPE_DATA);
        FUZZ_CHECK(header[1] == payload.size() - hvsock::PIPE_HEADER_BYTES);
        FUZZ_CHECK(header[1] <= hvsock::HVS_MTU_BYTES);
        // A VMBus inband packet: 16-byte descriptor, payload padded to 8, 8-byte trailer.
        std::uint64_t const ring_bytes = 16 + ((payload.size() + 7) & ~std::uint64_t { 7 }) + 8;
        if (ring_bytes > space)
            return fail(Errc::Busy, "fake ring full");
        space -= ring_bytes;
        if (header[1] == 0) {
            FUZZ_CHECK(fin_requested);
            FUZZ_CHECK(received == accepted_by_host);
            fin = true;
            return {};
        }
        FUZZ_CHECK(std::memcmp(payload.data() + hvsock::PIPE_HEADER_BYTES, host_stream(received), header[1]) == 0);
        received += header[1];
        FUZZ_CHECK(received <= accepted_by_host);
        return {};
    }
    Result<void> send(vmbus::OutboundPacket const&) override
    {
        FUZZ_CHECK(false); // hv_sock sends only plain inband packets.
        return {};
    }
    std::uint64_t send_space_bytes() const override { return space > 24 ? space - 24 : 0; }
    Result<vmbus::GpadlView> acquire_gpadl(std::uint32_t id) override
    {
        return fail(Errc::GuestProtocol, "no GPADLs in this harness", id);
    }
    void release_gpadl(std::uint32_t) override { }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    static bool const quiet = (log::set_level(log::Level::Off), true);
    (void)quiet;
    // FUZZ_HVSOCK_REPORT=1: print what an input reached (a recorded guest's packets are
    // accepted as stream bytes, not a failed connection).
    static bool const report = std::getenv("FUZZ_HVSOCK_REPORT") != nullptr;
    vmm::test::FuzzScript in { data, size };
    vmbus::Guid service {};
    vmbus::Guid instance {};
    service.bytes[0] = in.byte();
    HvSockConnection connection { service, instance, (in.byte() & 1) != 0, 4096u << (in.byte() % 7) };
    FakePort port;
    std::vector<std::byte> from_guest;  // Payloads of the accepted guest data packets, in order.
    std::uint64_t taken = 0;            // How much of it the host took.
    bool guest_fin = false;
    bool ever_opened = false;
    std::vector<std::byte> packet;
    std::vector<std::byte> buffer;

    for (int steps = 0; steps < 256 && !in.done(); ++steps) {
        switch (in.byte() % 8) {
        case 0: // The guest opens the channel (again, maybe).
            if (!ever_opened) {
                port.open = true;
                ever_opened = true;
            }
            connection.on_open(port);
            break;
        case 1: // Closed, rescinded or reset.
            port.open = false;
            connection.on_close();
            break;
        case 2:
        case 3: { // A guest packet: well-formed data (or FIN), or arbitrary bytes.
            if (!connection.ready_for_packet())
                break;
            bool const well_formed = (in.byte() & 3) != 0;
            std::size_t length = in.u16() % (hvsock::HVS_MTU_BYTES + 64);
            packet.assign(hvsock::PIPE_HEADER_BYTES + length, std::byte { 0 });
            std::uint32_t header[2] = { hvsock::PIPE_PKT_TYPE_DATA, static_cast<std::uint32_t>(length) };
            if (!well_formed) {
                // One read per statement: the operands of | are evaluated in either order (g++,
                // the corpus replay, and clang, the fuzzer, differ).
                header[0] = in.byte();
                header[0] |= std::uint32_t { in.byte() } << 24;
                header[1] = in.u16();
                header[1] |= std::uint32_t { in.byte() } << 16;
            }
            std::memcpy(packet.data(), header, sizeof header);
            // The script's bytes XOR their index (so zeros past the script's end still differ).
            auto body = std::span { packet }.subspan(hvsock::PIPE_HEADER_BYTES);
            in.fill(body);
            for (std::size_t i = 0; i < length; ++i)
                body[i] ^= static_cast<std::byte>(i);
            bool const valid = header[0] == hvsock::PIPE_PKT_TYPE_DATA && header[1] <= length
                && header[1] <= hvsock::HVS_MTU_BYTES && !guest_fin;
            bool const was_open = connection.state() == HvSockState::Open;
            connection.on_packet(vmbus::InboundPacket { vmbus::VmPacketType::VM_PKT_DATA_INBAND, 0, 0, {}, packet });
            if (!was_open)
                break;
            if (!valid) {
                FUZZ_CHECK(connection.failed() && connection.state() == HvSockState::Closed);
                port.open = false;
                break;
            }
            FUZZ_CHECK(!connection.failed());
            if (header[1] == 0)
                guest_fin = true;
            else
                from_guest.insert(from_guest.end(), packet.begin() + hvsock::PIPE_HEADER_BYTES,
                    packet.begin() + hvsock::PIPE_HEADER_BYTES + header[1]);
            break;
        }
        case 4: // The guest read its ring: space comes back.
            port.space += std::uint64_t { in.u16() } * 4;
            connection.on_ring_space();
            break;
        case 5: { // The host owner queues bytes.
            std::size_t want = std::min<std::size_t>(in.u16() * 2, connection.to_guest_room() + 16);
            buffer.resize(want);
            if (want != 0)
                std::memcpy(buffer.data(), host_stream(port.accepted_by_host), want);
            std::size_t const room = connection.to_guest_room();
            // accepted_by_host must cover what pump() sends inside send_to_guest.
            port.accepted_by_host += std::min(want, room);
            std::size_t const accepted = connection.send_to_guest(buffer);
            FUZZ_CHECK(accepted == std::min(want, room));
            break;
        }
        case 6: // The host owner ends its stream.
            port.fin_requested = true;
            connection.finish_to_guest();
            break;
        case 7: { // The host owner takes guest bytes.
            buffer.resize(in.u16());
            std::size_t const got = connection.take_from_guest(buffer);
            FUZZ_CHECK(taken + got <= from_guest.size());
            FUZZ_CHECK(got == 0 || std::memcmp(buffer.data(), from_guest.data() + taken, got) == 0);
            taken += got;
            break;
        }
        }
        auto const& stats = connection.stats();
        FUZZ_CHECK(stats.bytes_to_guest == port.received);
        FUZZ_CHECK(stats.bytes_from_guest == from_guest.size());
        FUZZ_CHECK(connection.fin_sent() == port.fin);
        FUZZ_CHECK(connection.has_from_guest() == (taken < from_guest.size()));
        FUZZ_CHECK(connection.guest_finished() == (guest_fin && taken == from_guest.size()));
        if (connection.failed())
            FUZZ_CHECK(connection.state() == HvSockState::Closed);
    }
    if (report)
        std::fprintf(stderr, "fuzz_hvsock: bytes_from_guest %llu taken %llu guest_fin %d failed %d\n",
            static_cast<unsigned long long>(connection.stats().bytes_from_guest), static_cast<unsigned long long>(taken),
            guest_fin ? 1 : 0, connection.failed() ? 1 : 0);
    return 0;
}

// SPDX-License-Identifier: MIT
// libFuzzer target for the integration components (devices/ic/): the input is a script of
// operations on a shutdown and a heartbeat IC (open, close, hv_utils-like answers, arbitrary
// guest packets, clock jumps and timers, shutdown requests, a full ring); the time sync and KVP
// ICs get the same treatment. Invariants checked
// after every step:
//   - a closed IC has nothing in flight; responses never exceed requests sent;
//   - every host packet is a well-formed ICMSG request (header, REQUEST flag, size field);
//   - after on_timer() the next deadline lies in the future (a deadline-only timer never spins);
//   - heartbeat status `none` means no beat was ever counted.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>

#include "base/log.hpp"
#include "devices/ic/heartbeat_ic.hpp"
#include "devices/ic/kvp_ic.hpp"
#include "devices/ic/kvp_protocol.hpp"
#include "devices/ic/shutdown_ic.hpp"
#include "devices/ic/timesync_ic.hpp"
#include "tests/support/fuzz_script.hpp"
#include "tests/support/ic_fake_guest.hpp"

using namespace vmm;

namespace {

struct Subject {
    Subject(ic::IcChannel& device, std::vector<ic::IcVersion> versions, std::uint64_t const& clock)
        : device(device)
        , guest(device, port, std::move(versions))
    {
        device.set_clock([&clock] { return clock; });
    }
    ic::IcChannel& device;
    test::IcFakePort port;
    test::IcFakeGuest guest;
    bool open = false;
    std::uint64_t checked = 0; // port.sent_total when check_sent last ran.
};

// Each host packet once, when it arrives (they only leave the queue, from the front): checking
// the whole queue after every step cost a pass over every unanswered request per step.
void check_sent(Subject& s)
{
    auto const fresh = static_cast<std::size_t>(std::min<std::uint64_t>(s.port.sent_total - s.checked, s.port.sent.size()));
    s.checked = s.port.sent_total;
    for (auto it = s.port.sent.end() - static_cast<std::ptrdiff_t>(fresh); it != s.port.sent.end(); ++it) {
        auto const& sent = *it;
        FUZZ_CHECK(sent.payload.size() >= ic::ICMSG_HEADER_BYTES);
        FUZZ_CHECK(sent.payload.size() <= ic::IcChannel::MAX_PACKET_BYTES);
        auto header = test::IcFakeGuest::header_of(sent.payload);
        FUZZ_CHECK((header.flags & ic::ICMSGHDRFLAG_REQUEST) != 0);
        FUZZ_CHECK(header.size == sent.payload.size() - ic::ICMSG_HEADER_BYTES);
    }
}

void step(Subject& s, vmm::test::FuzzScript& in, std::uint64_t& clock)
{
    switch (in.byte() % 9) {
    case 0:
        if (!s.open) {
            s.device.on_open(s.port);
            s.open = true;
        }
        break;
    case 1:
        if (s.open) {
            s.device.on_close();
            s.open = false;
            s.port.sent.clear();
        }
        break;
    case 2:
        if (s.open) {
            s.guest.silent = in.byte() % 4 == 0;
            s.guest.answer_twice = in.byte() % 4 == 0;
            s.guest.wrong_sequence = in.byte() % 8 == 0;
            s.guest.shutdown_status = in.byte() % 2 ? ic::HV_S_OK : ic::HV_E_FAIL;
            s.guest.answer_all();
        }
        break;
    case 3: {
        // An arbitrary guest packet, sometimes on the last request's transaction.
        // 0xFF: a u16 length follows (KVP messages are ~2.6 KB), the form in which
        // tests/fuzz/traffic_to_corpus.py writes a real guest's recorded packets.
        std::size_t const high = in.byte();
        std::size_t length = high == 0xFF ? in.u16() % (ic::IcChannel::MAX_PACKET_BYTES + 1) : high * 4u + in.byte() % 4;
        std::vector<std::byte> payload(length);
        in.fill(payload);
        std::uint64_t transaction = in.byte() % 2 ? in.byte() : 1 + in.byte() % 4;
        if (s.open)
            s.guest.deliver(payload, transaction, in.byte());
        break;
    }
    case 4: {
        // A mangled copy of a pending host message delivered as if answered.
        if (s.open && !s.port.sent.empty()) {
            auto message = s.port.sent.front();
            s.port.sent.pop_front();
            if (!message.payload.empty())
                message.payload[in.byte() % message.payload.size()] = std::byte { in.byte() };
            message.payload.resize(in.byte() % 2 ? message.payload.size() : in.byte() * 2u);
            s.guest.deliver(message.payload, message.transaction_id);
        }
        break;
    }
    case 5:
        clock += std::uint64_t { in.byte() } * 100'000'000ull;
        if (auto deadline = s.device.next_deadline(); deadline && *deadline <= clock) {
            s.device.on_timer();
            auto next = s.device.next_deadline();
            FUZZ_CHECK(!next || *next > clock);
        }
        break;
    case 6:
        if (auto* shutdown = dynamic_cast<ic::ShutdownIc*>(&s.device))
            (void)shutdown->request(in.byte() % 2);
        break;
    case 7:
        s.port.busy = in.byte() % 3 == 0;
        break;
    case 8:
        if (s.open)
            s.device.on_ring_space();
        break;
    }
    auto const& counters = s.device.counters();
    FUZZ_CHECK(counters.responses <= counters.requests_sent);
    if (s.device.state() == ic::IcState::Closed)
        FUZZ_CHECK(!s.device.request_in_flight());
    check_sent(s);
}

// The KVP daemon as the fake guest plays it: each pool holds two pairs (then HV_S_CONT, the end
// of an enumeration, hv_kvp.c kvp_respond_to_host), so a walk is a few messages. With
// wrong_sequence and answer_twice set (one op-2 in 32) it echoes every request instead: a pair
// with an empty key at every index, which walks each pool to the MAX_PAIRS_PER_POOL truncation.
// Echoing always made most of the target's time 256 2.6 KB enumerations per pool.
std::optional<std::uint32_t> kvp_daemon(test::IcFakeGuest const& guest, std::span<std::byte> body)
{
    if ((guest.wrong_sequence && guest.answer_twice) || body.size() < sizeof(ic::KvpHeader) + sizeof(ic::KvpEnumerate))
        return ic::HV_S_OK;
    auto header = wire_from<ic::KvpHeader>(body);
    if (header.operation != static_cast<std::uint8_t>(ic::KvpOperation::Enumerate))
        return ic::HV_S_OK;
    auto entry = body.subspan(sizeof(ic::KvpHeader));
    std::uint32_t index;
    std::memcpy(&index, entry.data(), sizeof index);
    if (index >= 2)
        return ic::HV_S_CONT;
    // Key "K0"/"K1", value "V", REG_SZ, UTF-16 with the NUL (sizes in bytes).
    std::uint32_t const fields[3] = { ic::KVP_REG_SZ, 6, 4 };
    std::memcpy(entry.data() + offsetof(ic::KvpEnumerate, data), fields, sizeof fields);
    std::uint8_t const key[6] = { 'K', 0, static_cast<std::uint8_t>('0' + index), 0, 0, 0 };
    std::uint8_t const value[4] = { 'V', 0, 0, 0 };
    std::memcpy(entry.data() + offsetof(ic::KvpEnumerate, data) + offsetof(ic::KvpValue, key), key, sizeof key);
    std::memcpy(entry.data() + offsetof(ic::KvpEnumerate, data) + offsetof(ic::KvpValue, value), value, sizeof value);
    return ic::HV_S_OK;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    static bool const quiet = (log::set_level(log::Level::Off), true); // Hostile input warns on every run.
    (void)quiet;
    // FUZZ_IC_REPORT=1: print each IC's counters after an input, to see what a seed reached (a
    // recorded guest's answers are accepted as responses, not dropped as unexpected).
    static bool const report = std::getenv("FUZZ_IC_REPORT") != nullptr;
    vmm::test::FuzzScript in { data, size };
    std::uint64_t clock = 1'000'000'000;
    ic::ShutdownIc shutdown { vmbus::Guid { { 1 } } };
    ic::HeartbeatIc heartbeat { vmbus::Guid { { 2 } }, ic::HeartbeatConfig { 1'000'000'000, 3'000'000'000 } };
    ic::TimeSyncIc timesync { vmbus::Guid { { 3 } }, ic::TimeSyncConfig { 2'000'000'000 }, [] { return ic::WLTIMEDELTA; },
        [&clock] { return clock / 100; } };
    ic::KvpIc kvp { vmbus::Guid { { 4 } }, ic::KvpConfig { { { "VmName", "fuzz" }, { "Role", "x" } }, 3'000'000'000 } };
    Subject subjects[4] { { shutdown, { { 3, 2 }, { 3, 0 } }, clock }, { heartbeat, { { 3, 0 }, { 1, 0 } }, clock },
        { timesync, { { 4, 0 }, { 3, 0 } }, clock }, { kvp, { { 4, 0 }, { 1, 0 } }, clock } };
    subjects[3].guest.service_answer = [&guest = subjects[3].guest](ic::IcMessageHeader const&, std::span<std::byte> body) {
        return kvp_daemon(guest, body);
    };
    // At most 512 steps (a recorded seed takes ~150): the invariants are checked after every
    // step, so an uncapped 30 KB input (the fuzzer grows inputs to the largest seed, a KVP
    // transcript) cost ~15,000 checks per execution.
    for (int steps = 0; steps < 512 && !in.done(); ++steps) {
        auto& s = subjects[in.byte() % 4];
        step(s, in, clock);
        if (heartbeat.status(clock) == ic::HeartbeatStatus::None)
            FUZZ_CHECK(heartbeat.beats() == 0);
        FUZZ_CHECK(kvp.snapshot().intrinsic.size() <= ic::KvpIc::MAX_PAIRS_PER_POOL);
        FUZZ_CHECK(kvp.snapshot().guest.size() <= ic::KvpIc::MAX_PAIRS_PER_POOL);
        if (timesync.synced())
            FUZZ_CHECK(timesync.time_counters().syncs_acknowledged > 0);
    }
    if (report) {
        static constexpr char const* names[4] { "shutdown", "heartbeat", "timesync", "kvp" };
        for (std::size_t i = 0; i < 4; ++i) {
            auto const& c = subjects[i].device.counters();
            std::fprintf(stderr, "fuzz_ic: %s requests %llu responses %llu unexpected %llu bad %llu timeouts %llu\n",
                names[i], static_cast<unsigned long long>(c.requests_sent), static_cast<unsigned long long>(c.responses),
                static_cast<unsigned long long>(c.unexpected_responses), static_cast<unsigned long long>(c.bad_packets),
                static_cast<unsigned long long>(c.timeouts));
        }
    }
    return 0;
}

// SPDX-License-Identifier: MIT
// Integration components against a guest that answers like Linux hv_utils, and against guests
// that misbehave: short and oversized packets, unknown versions, no answer, two answers.
#include <gtest/gtest.h>

#include "devices/ic/heartbeat_ic.hpp"
#include "devices/ic/shutdown_ic.hpp"
#include "tests/support/ic_fake_guest.hpp"

using namespace vmm;
using namespace vmm::ic;
using vmm::test::IcFakeGuest;
using vmm::test::IcFakePort;

namespace {

constexpr vmbus::Guid INSTANCE { { 1, 2, 3 } };
constexpr u64 MS = 1'000'000;

struct Clock {
    u64 now = 1'000 * MS;
};

template<typename Device>
struct Rig {
    template<typename... Args>
    explicit Rig(std::vector<IcVersion> guest_versions, Args&&... args)
        : device(INSTANCE, std::forward<Args>(args)...)
        , guest(device, port, std::move(guest_versions))
    {
        device.set_clock([this] { return clock.now; });
        device.set_deadline_hook([this](std::optional<u64> next) {
            ++deadline_hooks;
            EXPECT_EQ(next, device.next_deadline()); // The hook gets the channel's new deadline.
        });
    }
    void open_and_negotiate()
    {
        device.on_open(port);
        guest.answer_all();
    }
    Clock clock;
    IcFakePort port;
    Device device;
    IcFakeGuest guest;
    int deadline_hooks = 0;
};

std::vector<IcVersion> linux_shutdown_versions() { return { { 3, 2 }, { 3, 1 }, { 3, 0 }, { 1, 0 } }; }
std::vector<IcVersion> linux_heartbeat_versions() { return { { 3, 0 }, { 1, 0 } }; }

} // namespace

TEST(IcProtocol, HeaderLayoutMatchesLinux)
{
    // icmsg_hdr is 20 bytes packed; ICMSG_HDR = 28 (include/linux/hyperv.h:1581-1593).
    EXPECT_EQ(sizeof(IcMessageHeader), 20u);
    EXPECT_EQ(offsetof(IcMessageHeader, type), 4u);
    EXPECT_EQ(offsetof(IcMessageHeader, size), 10u);
    EXPECT_EQ(offsetof(IcMessageHeader, status_lo), 12u);
    EXPECT_EQ(offsetof(IcMessageHeader, transaction), 16u);
    EXPECT_EQ(offsetof(IcMessageHeader, flags), 17u);
    IcMessageHeader header {};
    header.set_status(HV_E_FAIL);
    EXPECT_EQ(header.status(), HV_E_FAIL);
}

TEST(IcChannel, OfferUsesTheClassGuidAndInbandOnly)
{
    ShutdownIc shutdown { INSTANCE };
    auto offer = shutdown.offer();
    EXPECT_EQ(offer.interface_type, SHUTDOWN_GUID);
    EXPECT_EQ(offer.interface_instance, INSTANCE);
    EXPECT_EQ(offer.accepted_packets, vmbus::ACCEPT_INBAND);
    // hv_utils' 3-page rings (hv_util.c:558) must fit the bounds.
    EXPECT_LE(offer.min_ring_data_bytes, 2u * 4096);
}

TEST(IcChannel, HostNegotiatesFirstWithEveryVersionNewestFirst)
{
    Rig<ShutdownIc> rig { linux_shutdown_versions() };
    rig.device.on_open(rig.port);
    ASSERT_EQ(rig.port.sent.size(), 1u);
    auto const& packet = rig.port.sent.front().payload;
    auto header = IcFakeGuest::header_of(packet);
    EXPECT_EQ(header.type, static_cast<u16>(IcMessageType::Negotiate));
    EXPECT_EQ(header.flags, ICMSGHDRFLAG_TRANSACTION | ICMSGHDRFLAG_REQUEST);
    auto negotiate = wire_from<IcNegotiate>(std::span<std::byte const>(packet).subspan(ICMSG_HEADER_BYTES));
    EXPECT_EQ(negotiate.framework_count, 2u);
    EXPECT_EQ(negotiate.message_count, 4u);
    EXPECT_EQ(header.size, packet.size() - ICMSG_HEADER_BYTES);
    EXPECT_EQ(rig.device.state(), IcState::Negotiating);
    EXPECT_EQ(rig.deadline_hooks, 1);
    rig.guest.answer_all();
    EXPECT_EQ(rig.device.state(), IcState::Ready);
    EXPECT_EQ(rig.device.framework_version(), (IcVersion { 3, 0 }));
    EXPECT_EQ(rig.device.service_version(), (IcVersion { 3, 2 }));
}

TEST(IcChannel, OlderGuestGetsTheNewestVersionItKnows)
{
    Rig<ShutdownIc> rig { { { 3, 0 } } };
    rig.open_and_negotiate();
    EXPECT_EQ(rig.device.state(), IcState::Ready);
    EXPECT_EQ(rig.device.service_version(), (IcVersion { 3, 0 }));
}

TEST(IcChannel, GuestWithNoCommonVersionLeavesTheServiceRefused)
{
    Rig<ShutdownIc> rig { { { 9, 9 } } };
    rig.open_and_negotiate();
    EXPECT_EQ(rig.device.state(), IcState::Refused);
    EXPECT_EQ(rig.device.counters().negotiation_refused, 1u);
    EXPECT_FALSE(rig.device.request(false).has_value());
    EXPECT_TRUE(rig.port.sent.empty());
}

TEST(IcChannel, NegotiationAnswerNamingAVersionWeNeverOfferedIsRefused)
{
    Rig<ShutdownIc> rig { linux_shutdown_versions() };
    rig.device.on_open(rig.port);
    auto message = rig.port.sent.front();
    rig.port.sent.clear();
    auto header = IcFakeGuest::header_of(message.payload);
    header.flags = ICMSGHDRFLAG_TRANSACTION | ICMSGHDRFLAG_RESPONSE;
    std::memcpy(message.payload.data() + 8, &header, sizeof(header));
    IcNegotiate one { 1, 1, 0 };
    IcVersion framework { 3, 0 }, bogus { 7, 7 };
    std::memcpy(message.payload.data() + 28, &one, 8);
    std::memcpy(message.payload.data() + 36, &framework, 4);
    std::memcpy(message.payload.data() + 40, &bogus, 4);
    rig.guest.deliver(message.payload, message.transaction_id);
    EXPECT_EQ(rig.device.state(), IcState::Refused);
}

TEST(IcChannel, ShortOversizedAndNonResponsePacketsAreDropped)
{
    Rig<ShutdownIc> rig { linux_shutdown_versions() };
    rig.device.on_open(rig.port);
    u64 transaction = rig.port.sent.front().transaction_id;
    rig.guest.deliver(std::vector<std::byte>(27), transaction);
    rig.guest.deliver(std::vector<std::byte>(IcChannel::MAX_PACKET_BYTES + 1), transaction);
    rig.guest.deliver(std::vector<std::byte>(64), transaction); // flags 0: not a response.
    EXPECT_EQ(rig.device.counters().bad_packets, 3u);
    EXPECT_EQ(rig.device.state(), IcState::Negotiating);
    rig.guest.answer_all(); // The real answer still works.
    EXPECT_EQ(rig.device.state(), IcState::Ready);
}

TEST(IcChannel, SecondAnswerAndWrongTransactionAreIgnored)
{
    Rig<ShutdownIc> rig { linux_shutdown_versions() };
    rig.guest.answer_twice = true;
    rig.open_and_negotiate();
    EXPECT_EQ(rig.device.state(), IcState::Ready);
    EXPECT_EQ(rig.device.counters().unexpected_responses, 1u);
    int outcomes = 0;
    rig.device.set_outcome_handler([&](ShutdownOutcome) { ++outcomes; });
    ASSERT_TRUE(rig.device.request(false).has_value());
    rig.guest.answer_all();
    EXPECT_EQ(outcomes, 1);
    EXPECT_EQ(rig.device.counters().unexpected_responses, 2u);
}

TEST(IcChannel, SilentGuestTimesOutNegotiationAndGetsNoServiceTraffic)
{
    Rig<HeartbeatIc> rig { linux_heartbeat_versions(), HeartbeatConfig {} };
    rig.guest.silent = true;
    rig.device.on_open(rig.port);
    rig.guest.answer_all();
    auto deadline = rig.device.next_deadline();
    ASSERT_TRUE(deadline.has_value());
    EXPECT_EQ(*deadline, rig.clock.now + IcChannel::RESPONSE_TIMEOUT_NS);
    rig.clock.now = *deadline;
    rig.device.on_timer();
    EXPECT_EQ(rig.device.state(), IcState::Refused);
    EXPECT_EQ(rig.device.counters().timeouts, 1u);
    EXPECT_FALSE(rig.device.next_deadline().has_value()); // Idle: no timer at all.
    EXPECT_TRUE(rig.port.sent.empty());
}

TEST(IcChannel, FullRingDefersTheRequestUntilSpace)
{
    Rig<ShutdownIc> rig { linux_shutdown_versions() };
    rig.port.busy = true;
    rig.device.on_open(rig.port);
    EXPECT_TRUE(rig.port.sent.empty());
    EXPECT_EQ(rig.device.counters().busy_sends, 1u);
    rig.port.busy = false;
    rig.device.on_ring_space();
    ASSERT_EQ(rig.port.sent.size(), 1u);
    rig.guest.answer_all();
    EXPECT_EQ(rig.device.state(), IcState::Ready);
}

TEST(ShutdownIc, RequestCarriesShutdownOrRestartFlagsAndReportsTheAnswer)
{
    Rig<ShutdownIc> rig { linux_shutdown_versions() };
    std::vector<ShutdownOutcome> outcomes;
    rig.device.set_outcome_handler([&](ShutdownOutcome outcome) { outcomes.push_back(outcome); });
    EXPECT_EQ(rig.device.request(false).error().code(), Errc::Unsupported); // Not open yet.
    rig.open_and_negotiate();
    ASSERT_TRUE(rig.device.request(false).has_value());
    EXPECT_EQ(rig.device.request(false).error().code(), Errc::Busy); // One in flight.
    auto header = IcFakeGuest::header_of(rig.port.sent.front().payload);
    EXPECT_EQ(header.type, static_cast<u16>(IcMessageType::Shutdown));
    EXPECT_EQ(header.size, sizeof(ShutdownBody));
    EXPECT_EQ(header.message_major, 3);
    EXPECT_EQ(header.message_minor, 2);
    rig.guest.answer_all();
    EXPECT_EQ(rig.guest.last_shutdown_flags, 0u);
    ASSERT_TRUE(rig.device.request(true).has_value());
    rig.guest.shutdown_status = HV_E_FAIL;
    rig.guest.answer_all();
    EXPECT_EQ(rig.guest.last_shutdown_flags, SHUTDOWN_FLAG_RESTART);
    EXPECT_EQ(outcomes, (std::vector { ShutdownOutcome::Accepted, ShutdownOutcome::Refused }));
}

TEST(ShutdownIc, UnansweredRequestIsReportedLostOnTimeoutOrClose)
{
    Rig<ShutdownIc> rig { linux_shutdown_versions() };
    std::vector<ShutdownOutcome> outcomes;
    rig.device.set_outcome_handler([&](ShutdownOutcome outcome) { outcomes.push_back(outcome); });
    rig.open_and_negotiate();
    rig.guest.silent = true;
    ASSERT_TRUE(rig.device.request(false).has_value());
    rig.guest.answer_all();
    rig.clock.now += IcChannel::RESPONSE_TIMEOUT_NS;
    rig.device.on_timer();
    ASSERT_TRUE(rig.device.request(false).has_value());
    rig.device.on_close();
    EXPECT_EQ(outcomes, (std::vector { ShutdownOutcome::Lost, ShutdownOutcome::Lost }));
    EXPECT_EQ(rig.device.state(), IcState::Closed);
}

TEST(HeartbeatIc, StatusGoesNoneOkLateAndReportsLateOnce)
{
    HeartbeatConfig config { 2'000 * MS, 10'000 * MS };
    Rig<HeartbeatIc> rig { linux_heartbeat_versions(), config };
    int late_reports = 0;
    rig.device.set_late_handler([&] { ++late_reports; });
    EXPECT_EQ(rig.device.status(rig.clock.now), HeartbeatStatus::None);
    rig.open_and_negotiate(); // Ready -> first beat sent at once, and answered.
    EXPECT_TRUE(rig.port.sent.empty());
    EXPECT_EQ(rig.guest.received, 2u);
    EXPECT_EQ(rig.device.beats(), 1u);
    EXPECT_EQ(rig.device.status(rig.clock.now), HeartbeatStatus::Ok);
    // Next deadline: the next beat, 2 s on.
    EXPECT_EQ(rig.device.next_deadline(), rig.clock.now + config.interval_ns);
    for (int i = 0; i < 5; ++i) {
        rig.clock.now += config.interval_ns;
        rig.device.on_timer();
        rig.guest.answer_all();
    }
    EXPECT_EQ(rig.device.beats(), 6u);
    EXPECT_EQ(rig.device.age_ns(rig.clock.now), 0u);
    // The guest's hv_utils goes away: the channel closes, the age grows, late after 10 s.
    rig.device.on_close();
    auto deadline = rig.device.next_deadline();
    ASSERT_TRUE(deadline.has_value());
    EXPECT_EQ(*deadline, rig.clock.now + config.late_after_ns + 1);
    rig.clock.now = *deadline;
    rig.device.on_timer();
    EXPECT_EQ(rig.device.status(rig.clock.now), HeartbeatStatus::Late);
    EXPECT_EQ(late_reports, 1);
    EXPECT_FALSE(rig.device.next_deadline().has_value()); // Nothing more can change on its own.
    rig.device.on_timer();
    EXPECT_EQ(late_reports, 1);
}

TEST(HeartbeatIc, WrongSequenceAnswersDoNotCount)
{
    Rig<HeartbeatIc> rig { linux_heartbeat_versions(), HeartbeatConfig {} };
    rig.guest.wrong_sequence = true;
    rig.open_and_negotiate();
    rig.guest.answer_all();
    EXPECT_EQ(rig.device.beats(), 0u);
    EXPECT_EQ(rig.device.wrong_sequence(), 1u);
    EXPECT_EQ(rig.device.status(rig.clock.now), HeartbeatStatus::None);
}

TEST(HeartbeatIc, SilentGuestAfterNegotiationTurnsLate)
{
    HeartbeatConfig config { 2'000 * MS, 5'000 * MS };
    Rig<HeartbeatIc> rig { linux_heartbeat_versions(), config };
    rig.open_and_negotiate();
    rig.guest.answer_all();
    ASSERT_EQ(rig.device.status(rig.clock.now), HeartbeatStatus::Ok);
    rig.guest.silent = true;
    for (int i = 0; i < 10; ++i) {
        auto next = rig.device.next_deadline();
        ASSERT_TRUE(next.has_value());
        rig.clock.now = *next;
        rig.device.on_timer();
        rig.guest.answer_all();
    }
    EXPECT_EQ(rig.device.status(rig.clock.now), HeartbeatStatus::Late);
    EXPECT_GE(rig.device.counters().timeouts, 1u);
}

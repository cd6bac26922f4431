// SPDX-License-Identifier: MIT
// TimeSyncIc against a guest that answers like Linux 6.1 hv_utils (timesync_onchannelcallback
// echoes every sample) and against one that does not: lost, refused and duplicate answers.
#include <gtest/gtest.h>

#include <cstring>

#include "devices/ic/timesync_ic.hpp"
#include "tests/support/ic_fake_guest.hpp"

using namespace vmm;
using namespace vmm::ic;
using vmm::test::IcFakeGuest;
using vmm::test::IcFakePort;

namespace {

constexpr vmbus::Guid INSTANCE { { 7, 7 } };
constexpr u64 MS = 1'000'000;
constexpr u64 PERIOD = 5'000 * MS;
// 2026-12-05 00:00:00 UTC in FILETIME units.
constexpr u64 HOST_TIME = 1'796'428'800ull * 10'000'000 + WLTIMEDELTA;

std::vector<IcVersion> linux_versions() { return { { 4, 0 }, { 3, 0 }, { 1, 0 } }; }

struct Rig {
    explicit Rig(std::vector<IcVersion> versions)
        : device(INSTANCE, TimeSyncConfig { PERIOD }, [this] { return wall; }, [this] { return reference; })
        , guest(device, port, std::move(versions))
    {
        device.set_clock([this] { return now; });
    }
    u64 now = 1'000 * MS;
    u64 wall = HOST_TIME;
    u64 reference = 123'456'789;
    IcFakePort port;
    TimeSyncIc device;
    IcFakeGuest guest;
};

struct Sample {
    u64 host_time;
    u64 reference_time;
    u8 flags;
    std::size_t size;
};

// Reads the body of the one packet the host queued (ictimesync_ref_data or ictimesync_data).
Sample only_sample(IcFakePort& port, IcVersion service)
{
    EXPECT_EQ(port.sent.size(), 1u);
    auto const& payload = port.sent.front().payload;
    auto header = IcFakeGuest::header_of(payload);
    EXPECT_EQ(header.type, static_cast<u16>(IcMessageType::TimeSync));
    Sample sample {};
    sample.size = payload.size() - ICMSG_HEADER_BYTES;
    EXPECT_EQ(header.size, sample.size);
    auto const* body = payload.data() + ICMSG_HEADER_BYTES;
    std::memcpy(&sample.host_time, body, 8);
    if (service.major >= 4) {
        std::memcpy(&sample.reference_time, body + 8, 8);
        sample.flags = std::to_integer<u8>(body[16]);
    } else {
        sample.flags = std::to_integer<u8>(body[24]);
    }
    return sample;
}

} // namespace

TEST(TimeSyncIc, FiletimeCountsHundredNanosecondsSince1601)
{
    EXPECT_EQ(TimeSyncIc::filetime_from_unix_ns(0), WLTIMEDELTA);
    EXPECT_EQ(TimeSyncIc::filetime_from_unix_ns(1'796'428'800'000'000'123ll), HOST_TIME + 1); // 123 ns -> 1 tick
    EXPECT_EQ(TimeSyncIc::filetime_from_unix_ns(-5), WLTIMEDELTA); // Before 1970: clamped.
    // Linux turns it back with (t - WLTIMEDELTA) * 100 (hv_util.c reftime_to_ns).
    EXPECT_EQ((HOST_TIME - WLTIMEDELTA) * 100, 1'796'428'800'000'000'000ull);
}

TEST(TimeSyncIc, Version4GuestGetsASyncWithReferenceTimeOnConnect)
{
    Rig rig { linux_versions() };
    EXPECT_EQ(rig.device.offer().interface_type, TIMESYNC_GUID);
    std::vector<std::byte> seen;
    rig.guest.service_answer = [&](IcMessageHeader const&, std::span<std::byte> body) -> std::optional<u32> {
        seen.assign(body.begin(), body.end());
        EXPECT_FALSE(rig.device.synced()); // Not before the guest's answer.
        return HV_S_OK;
    };
    rig.device.on_open(rig.port);
    rig.guest.answer_all(); // The negotiation's answer makes the device send its first sample.
    EXPECT_EQ(rig.device.service_version(), (IcVersion { 4, 0 }));
    ASSERT_EQ(seen.size(), TIMESYNC_REF_BODY_BYTES); // ictimesync_ref_data
    u64 parent = 0, reference = 0;
    std::memcpy(&parent, seen.data(), 8);
    std::memcpy(&reference, seen.data() + 8, 8);
    EXPECT_EQ(parent, HOST_TIME);
    EXPECT_EQ(reference, 123'456'789u);
    EXPECT_EQ(std::to_integer<u8>(seen[16]), ICTIMESYNCFLAG_SYNC);
    EXPECT_TRUE(rig.device.synced());
    EXPECT_EQ(rig.device.time_counters().syncs_acknowledged, 1u);
}

TEST(TimeSyncIc, SamplesFollowEveryPeriodAfterTheSync)
{
    Rig rig { linux_versions() };
    rig.device.on_open(rig.port);
    rig.guest.answer_all();
    ASSERT_TRUE(rig.device.synced());
    auto deadline = rig.device.next_deadline();
    ASSERT_TRUE(deadline.has_value());
    EXPECT_EQ(*deadline, rig.now + PERIOD);
    rig.now = *deadline;
    rig.wall += PERIOD / 100;
    rig.reference += PERIOD / 100;
    rig.device.on_timer();
    auto sample = only_sample(rig.port, { 4, 0 });
    EXPECT_EQ(sample.flags, ICTIMESYNCFLAG_SAMPLE);
    EXPECT_EQ(sample.host_time, HOST_TIME + PERIOD / 100);
    rig.guest.answer_all();
    EXPECT_EQ(rig.device.time_counters().samples_acknowledged, 1u);
    EXPECT_EQ(*rig.device.next_deadline(), rig.now + PERIOD);
}

TEST(TimeSyncIc, OlderGuestGetsTheVersion3Layout)
{
    Rig rig { { { 3, 0 } } };
    std::vector<std::byte> seen;
    rig.guest.service_answer = [&](IcMessageHeader const&, std::span<std::byte> body) -> std::optional<u32> {
        seen.assign(body.begin(), body.end());
        return HV_S_OK;
    };
    rig.device.on_open(rig.port);
    rig.guest.answer_all();
    EXPECT_EQ(rig.device.service_version(), (IcVersion { 3, 0 }));
    ASSERT_EQ(seen.size(), TIMESYNC_BODY_BYTES); // ictimesync_data: parenttime, childtime, roundtriptime, flags
    u64 parent = 0, child = 1, roundtrip = 1;
    std::memcpy(&parent, seen.data(), 8);
    std::memcpy(&child, seen.data() + 8, 8);
    std::memcpy(&roundtrip, seen.data() + 16, 8);
    EXPECT_EQ(parent, HOST_TIME);
    EXPECT_EQ(child, 0u);
    EXPECT_EQ(roundtrip, 0u);
    EXPECT_EQ(std::to_integer<u8>(seen[24]), ICTIMESYNCFLAG_SYNC);
    EXPECT_TRUE(rig.device.synced());
}

TEST(TimeSyncIc, UnansweredOrRefusedSyncIsSentAgainAsSync)
{
    Rig rig { linux_versions() };
    rig.device.on_open(rig.port);
    rig.guest.service_answer = [](IcMessageHeader const&, std::span<std::byte>) -> std::optional<u32> { return std::nullopt; };
    rig.guest.answer_all(); // The SYNC goes unanswered.
    rig.now += IcChannel::RESPONSE_TIMEOUT_NS; // == PERIOD: the next sample is due too.
    rig.device.on_timer();
    EXPECT_EQ(rig.device.counters().timeouts, 1u);
    EXPECT_FALSE(rig.device.synced());
    EXPECT_EQ(only_sample(rig.port, { 4, 0 }).flags, ICTIMESYNCFLAG_SYNC);
    rig.guest.service_answer = [](IcMessageHeader const&, std::span<std::byte>) -> std::optional<u32> { return HV_E_FAIL; };
    rig.guest.answer_all(); // Refused.
    EXPECT_FALSE(rig.device.synced());
    EXPECT_EQ(rig.device.time_counters().failed_answers, 1u);
    rig.now = *rig.device.next_deadline();
    rig.guest.service_answer = {};
    rig.device.on_timer();
    EXPECT_EQ(only_sample(rig.port, { 4, 0 }).flags, ICTIMESYNCFLAG_SYNC);
    rig.guest.answer_all();
    EXPECT_TRUE(rig.device.synced());
}

TEST(TimeSyncIc, ReopenedChannelGetsAFreshSyncAndAClosedOneNoTimer)
{
    Rig rig { linux_versions() };
    rig.device.on_open(rig.port);
    rig.guest.answer_all();
    ASSERT_TRUE(rig.device.synced());
    rig.device.on_close();
    EXPECT_FALSE(rig.device.synced());
    EXPECT_FALSE(rig.device.next_deadline().has_value());
    rig.device.on_open(rig.port);
    rig.guest.answer_all();
    EXPECT_TRUE(rig.device.synced());
    EXPECT_EQ(rig.device.time_counters().syncs_acknowledged, 2u);
}

TEST(TimeSyncIc, DuplicateAnswersCountOnce)
{
    Rig rig { linux_versions() };
    rig.guest.answer_twice = true;
    rig.device.on_open(rig.port);
    rig.guest.answer_all();
    EXPECT_EQ(rig.device.time_counters().syncs_acknowledged, 1u);
    EXPECT_EQ(rig.device.counters().unexpected_responses, 2u); // Negotiation and SYNC answered twice.
}

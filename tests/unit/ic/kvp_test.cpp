// SPDX-License-Identifier: MIT
// KvpIc against a guest that answers like Linux 6.1 hv_kvp + hv_kvp_daemon (SET stores into a
// pool, ENUMERATE answers the index-th pair or HV_S_CONT) and against hostile ones: no daemon,
// a stuck daemon, wrong echoes, short answers, unbounded sizes, endless pools, double answers.
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "devices/ic/kvp_ic.hpp"
#include "devices/ic/utf16.hpp"
#include "tests/support/ic_fake_guest.hpp"

using namespace vmm;
using namespace vmm::ic;
using vmm::test::IcFakeGuest;
using vmm::test::IcFakePort;

namespace {

constexpr vmbus::Guid INSTANCE { { 9, 9 } };
constexpr u64 MS = 1'000'000;
constexpr u64 REFRESH = 30'000 * MS;

std::vector<IcVersion> linux_versions() { return { { 4, 0 }, { 3, 0 }, { 1, 0 } }; }

void put_text(std::span<std::byte> field, std::string_view text)
{
    auto units = *utf16_from_utf8(text);
    std::memset(field.data(), 0, field.size());
    if (!units.empty()) // An empty vector may have no data pointer, which memcpy must not get.
        std::memcpy(field.data(), units.data(), std::min(field.size(), units.size() * 2));
}

// hv_kvp_daemon's pools as the guest kernel relays them (key/value sizes as kvp_respond_to_host
// sets them: UTF-16 bytes including the NUL).
struct FakeDaemon {
    std::map<u8, std::vector<KvpPair>> pools;
    int sets = 0;
    std::optional<u32> answer(IcMessageHeader const&, std::span<std::byte> body)
    {
        auto header = wire_from<KvpHeader>(body);
        auto const op = static_cast<KvpOperation>(header.operation);
        if (op == KvpOperation::Set) {
            auto value = wire_from<KvpValue>(body.subspan(sizeof(KvpHeader)));
            auto key = utf8_from_utf16le(std::as_bytes(std::span { value.key, value.key_size }));
            auto text = utf8_from_utf16le(std::as_bytes(std::span { value.value, value.value_size }));
            ++sets;
            auto& pool = pools[header.pool];
            std::erase_if(pool, [&](KvpPair const& p) { return p.key == key; });
            pool.push_back({ key, text });
            return HV_S_OK;
        }
        if (op != KvpOperation::Enumerate)
            return HV_E_FAIL;
        u32 index;
        std::memcpy(&index, body.data() + sizeof(KvpHeader), 4);
        auto const& pool = pools[header.pool];
        if (index >= pool.size())
            return HV_S_CONT;
        auto entry = body.subspan(sizeof(KvpHeader) + 4);
        u32 type = KVP_REG_SZ;
        u32 key_size = static_cast<u32>((utf16_from_utf8(pool[index].key)->size() + 1) * 2);
        u32 value_size = static_cast<u32>((utf16_from_utf8(pool[index].value)->size() + 1) * 2);
        std::memcpy(entry.data(), &type, 4);
        std::memcpy(entry.data() + 4, &key_size, 4);
        std::memcpy(entry.data() + 8, &value_size, 4);
        put_text(entry.subspan(12, KVP_MAX_KEY_BYTES), pool[index].key);
        put_text(entry.subspan(12 + KVP_MAX_KEY_BYTES, KVP_MAX_VALUE_BYTES), pool[index].value);
        return HV_S_OK;
    }
};

struct Rig {
    explicit Rig(std::vector<KvpPair> host_pairs = {})
        : device(INSTANCE, KvpConfig { std::move(host_pairs), REFRESH })
        , guest(device, port, linux_versions())
    {
        device.set_clock([this] { return now; });
        daemon.pools[static_cast<u8>(KvpPool::Auto)] = { { "FullyQualifiedDomainName", "guest-7" }, { "OSName", "Linux" },
            { "OSVersion", "6.1.0" }, { "NetworkAddressIPv4", "" } };
        daemon.pools[static_cast<u8>(KvpPool::Guest)] = { { "app", "ready" } };
        guest.service_answer = [this](IcMessageHeader const& h, std::span<std::byte> b) { return daemon.answer(h, b); };
    }
    void connect()
    {
        device.on_open(port);
        guest.answer_all();
    }
    u64 now = 1'000 * MS;
    IcFakePort port;
    KvpIc device;
    IcFakeGuest guest;
    FakeDaemon daemon;
};

} // namespace

TEST(KvpProtocol, LayoutMatchesLinux)
{
    // hv_kvp_msg: 4-byte header + the ipaddr union member (include/uapi/linux/hyperv.h:339-403).
    EXPECT_EQ(KVP_MESSAGE_BYTES, 7430u);
    EXPECT_EQ(offsetof(KvpValue, key), 12u);
    EXPECT_EQ(offsetof(KvpValue, value), 524u);
    EXPECT_EQ(offsetof(KvpEnumerate, data), 4u);
    // The guest writes its enumerate answer up to body offset 2580; the request must hold it.
    EXPECT_GE(KVP_MESSAGE_BYTES, sizeof(KvpHeader) + sizeof(KvpEnumerate));
    EXPECT_LE(ICMSG_HEADER_BYTES + KVP_MESSAGE_BYTES, IcChannel::MAX_PACKET_BYTES);
}

TEST(KvpIc, EncodesSetAsUtf16WithTheTerminatorCounted)
{
    auto body = KvpIc::encode_set(KvpPool::External, { "VmName", "vm-\xc3\xa9" }); // "vm-é"
    ASSERT_EQ(body.size(), KVP_MESSAGE_BYTES);
    auto header = wire_from<KvpHeader>(body);
    EXPECT_EQ(header.operation, static_cast<u8>(KvpOperation::Set));
    EXPECT_EQ(header.pool, static_cast<u8>(KvpPool::External));
    auto value = wire_from<KvpValue>(std::span<std::byte const>(body).subspan(4));
    EXPECT_EQ(value.value_type, KVP_REG_SZ);
    EXPECT_EQ(value.key_size, 14u);  // 6 units + NUL
    EXPECT_EQ(value.value_size, 10u); // 4 units + NUL
    EXPECT_EQ(value.key[0], 'V');
    EXPECT_EQ(value.key[1], 0);
    EXPECT_EQ(value.value[6], 0xe9); // U+00E9 little-endian
    EXPECT_EQ(value.value[7], 0x00);
    auto enumerate = KvpIc::encode_enumerate(KvpPool::Guest, 5);
    u32 index;
    std::memcpy(&index, enumerate.data() + 4, 4);
    EXPECT_EQ(index, 5u);
    EXPECT_EQ(wire_from<KvpHeader>(enumerate).operation, static_cast<u8>(KvpOperation::Enumerate));
}

TEST(KvpIc, ChecksPairsAgainstTheGuestsBuffers)
{
    EXPECT_FALSE(KvpIc::check_pair({ "k", "v" }));
    EXPECT_TRUE(KvpIc::check_pair({ "", "v" }));
    EXPECT_FALSE(KvpIc::check_pair({ std::string(255, 'k'), std::string(1023, 'v') }));
    EXPECT_TRUE(KvpIc::check_pair({ std::string(256, 'k'), "v" }));
    EXPECT_TRUE(KvpIc::check_pair({ "k", std::string(1024, 'v') }));
    EXPECT_TRUE(KvpIc::check_pair({ "k", "bad \xff utf8" }));
    EXPECT_TRUE(KvpIc::check_pair({ std::string("a\0b", 3), "v" }));
}

TEST(KvpIc, SetsHostPairsThenReadsTheAutoAndGuestPools)
{
    Rig rig { { { "VmName", "vm1" }, { "Role", "web" } } };
    EXPECT_EQ(rig.device.offer().interface_type, KVP_GUID);
    rig.connect();
    EXPECT_EQ(rig.device.state(), IcState::Ready);
    EXPECT_EQ(rig.device.service_version(), (IcVersion { 4, 0 }));
    auto const& external = rig.daemon.pools[static_cast<u8>(KvpPool::External)];
    ASSERT_EQ(external.size(), 2u);
    EXPECT_EQ(external[0].key, "VmName");
    EXPECT_EQ(external[0].value, "vm1");
    EXPECT_EQ(rig.device.kvp_counters().sets_acknowledged, 2u);
    auto const& snapshot = rig.device.snapshot();
    EXPECT_EQ(snapshot.intrinsic.at("FullyQualifiedDomainName"), "guest-7");
    EXPECT_EQ(snapshot.intrinsic.at("OSName"), "Linux");
    EXPECT_EQ(snapshot.intrinsic.at("NetworkAddressIPv4"), "");
    EXPECT_EQ(snapshot.guest.at("app"), "ready");
    EXPECT_EQ(snapshot.updated_at, rig.now);
    EXPECT_EQ(rig.device.kvp_counters().walks, 1u);
    EXPECT_EQ(rig.device.next_deadline(), rig.now + REFRESH);
    EXPECT_FALSE(rig.device.request_in_flight());
}

TEST(KvpIc, RefreshReadsChangesAndDropsRemovedKeysWithoutResettingPairs)
{
    Rig rig { { { "VmName", "vm1" } } };
    rig.connect();
    rig.daemon.pools[static_cast<u8>(KvpPool::Auto)] = { { "FullyQualifiedDomainName", "renamed" } };
    rig.now = *rig.device.next_deadline();
    rig.device.on_timer();
    rig.guest.answer_all();
    EXPECT_EQ(rig.device.snapshot().intrinsic.size(), 1u);
    EXPECT_EQ(rig.device.snapshot().intrinsic.at("FullyQualifiedDomainName"), "renamed");
    EXPECT_EQ(rig.daemon.sets, 1); // Stored pairs are not sent again.
    EXPECT_EQ(rig.device.kvp_counters().walks, 2u);
}

TEST(KvpIc, NegotiationWaitsForTheDaemonWithoutATimer)
{
    Rig rig;
    rig.guest.silent = true; // hv_kvp answers nothing until hv_kvp_daemon registered.
    rig.device.on_open(rig.port);
    rig.guest.answer_all();
    EXPECT_EQ(rig.device.state(), IcState::Negotiating);
    EXPECT_FALSE(rig.device.next_deadline().has_value());
    rig.now += 3'600'000 * MS;
    rig.device.on_timer();
    EXPECT_EQ(rig.device.state(), IcState::Negotiating);
    EXPECT_EQ(rig.device.counters().timeouts, 0u);
}

TEST(KvpIc, StuckDaemonTimesOutAndTheWalkIsRetriedLater)
{
    Rig rig;
    rig.guest.service_answer = [](IcMessageHeader const&, std::span<std::byte>) -> std::optional<u32> { return std::nullopt; };
    rig.connect();
    ASSERT_TRUE(rig.device.request_in_flight());
    EXPECT_EQ(rig.device.next_deadline(), rig.now + KvpIc::REQUEST_TIMEOUT_NS);
    rig.now += KvpIc::REQUEST_TIMEOUT_NS;
    rig.device.on_timer();
    EXPECT_EQ(rig.device.kvp_counters().walks_failed, 1u);
    EXPECT_FALSE(rig.device.request_in_flight()); // No retry storm: the next walk waits.
    EXPECT_EQ(rig.device.next_deadline(), rig.now + REFRESH);
    rig.guest.service_answer = [&rig](IcMessageHeader const& h, std::span<std::byte> b) { return rig.daemon.answer(h, b); };
    rig.now += REFRESH;
    rig.device.on_timer();
    rig.guest.answer_all();
    EXPECT_EQ(rig.device.snapshot().intrinsic.at("OSName"), "Linux");
}

TEST(KvpIc, FailedSetIsRetriedOnTheNextWalk)
{
    Rig rig { { { "VmName", "vm1" } } };
    bool refuse = true;
    rig.guest.service_answer = [&](IcMessageHeader const& h, std::span<std::byte> b) -> std::optional<u32> {
        if (refuse && wire_from<KvpHeader>(b).operation == static_cast<u8>(KvpOperation::Set))
            return HV_S_CONT; // The daemon could not store it.
        return rig.daemon.answer(h, b);
    };
    rig.connect();
    EXPECT_EQ(rig.device.kvp_counters().sets_failed, 1u);
    EXPECT_EQ(rig.device.kvp_counters().walks, 1u); // The walk went on.
    refuse = false;
    rig.now = *rig.device.next_deadline();
    rig.device.on_timer();
    rig.guest.answer_all();
    EXPECT_EQ(rig.device.kvp_counters().sets_acknowledged, 1u);
    EXPECT_EQ(rig.daemon.pools[static_cast<u8>(KvpPool::External)].size(), 1u);
}

TEST(KvpIc, AnswerEchoingAnotherOperationOrPoolIsRefused)
{
    Rig rig;
    rig.guest.service_answer = [&](IcMessageHeader const& h, std::span<std::byte> b) -> std::optional<u32> {
        auto status = rig.daemon.answer(h, b);
        b[1] = std::byte { 4 }; // Another pool.
        return status;
    };
    rig.connect();
    EXPECT_EQ(rig.device.kvp_counters().bad_answers, 1u);
    EXPECT_EQ(rig.device.kvp_counters().walks_failed, 1u);
    EXPECT_TRUE(rig.device.snapshot().intrinsic.empty());
}

TEST(KvpIc, ShortEnumerateAnswerIsRefused)
{
    Rig rig;
    rig.guest.service_answer = [](IcMessageHeader const&, std::span<std::byte>) -> std::optional<u32> { return std::nullopt; };
    rig.connect();
    ASSERT_TRUE(rig.device.request_in_flight());
    // Answer the queued enumerate (already popped by answer_all) by hand with 100 body bytes.
    auto request = KvpIc::encode_enumerate(KvpPool::Auto, 0);
    std::vector<std::byte> packet(ICMSG_HEADER_BYTES + 100);
    IcMessageHeader header {};
    header.type = static_cast<u16>(IcMessageType::KvpExchange);
    header.flags = ICMSGHDRFLAG_TRANSACTION | ICMSGHDRFLAG_RESPONSE;
    std::memcpy(packet.data() + sizeof(PipeHeader), &header, sizeof(header));
    std::memcpy(packet.data() + ICMSG_HEADER_BYTES, request.data(), 100);
    // The device numbers VMBus transactions 1, 2, ...: the in-flight one is the last sent.
    rig.guest.deliver(packet, rig.device.counters().requests_sent);
    EXPECT_EQ(rig.device.kvp_counters().bad_answers, 1u);
    EXPECT_EQ(rig.device.kvp_counters().walks_failed, 1u);
    EXPECT_FALSE(rig.device.request_in_flight());
}

TEST(KvpIc, ClaimedSizesBeyondTheBuffersAreBoundedAndTextIsValidUtf8)
{
    Rig rig;
    rig.guest.service_answer = [&](IcMessageHeader const& h, std::span<std::byte> b) -> std::optional<u32> {
        auto status = rig.daemon.answer(h, b);
        if (status != HV_S_OK || wire_from<KvpHeader>(b).operation != static_cast<u8>(KvpOperation::Enumerate))
            return status;
        auto entry = b.subspan(sizeof(KvpHeader) + 4);
        u32 huge = 0xffff'ffff;
        std::memcpy(entry.data() + 4, &huge, 4);
        std::memcpy(entry.data() + 8, &huge, 4);
        // An unterminated key of 'K's and a value with a lone surrogate and no NUL.
        for (std::size_t i = 0; i < KVP_MAX_KEY_BYTES; i += 2) {
            entry[12 + i] = std::byte { 'K' };
            entry[12 + i + 1] = std::byte { 0 };
        }
        auto value = entry.subspan(12 + KVP_MAX_KEY_BYTES, KVP_MAX_VALUE_BYTES);
        for (std::size_t i = 0; i < value.size(); i += 2) {
            value[i] = std::byte { 0x00 };
            value[i + 1] = std::byte { 0xd8 }; // U+D800
        }
        return status;
    };
    rig.connect();
    auto const& intrinsic = rig.device.snapshot().intrinsic;
    ASSERT_EQ(intrinsic.size(), 1u); // Every answer had the same key.
    EXPECT_EQ(intrinsic.begin()->first, std::string(KVP_MAX_KEY_BYTES / 2, 'K'));
    EXPECT_EQ(intrinsic.begin()->second.size(), 3u * KVP_MAX_VALUE_BYTES / 2); // U+FFFD each, 3 bytes
}

TEST(KvpIc, EndlessPoolIsCutAtTheLimit)
{
    Rig rig;
    u32 served = 0;
    rig.guest.service_answer = [&](IcMessageHeader const& h, std::span<std::byte> b) -> std::optional<u32> {
        u32 index;
        std::memcpy(&index, b.data() + sizeof(KvpHeader), 4);
        auto& pool = rig.daemon.pools[wire_from<KvpHeader>(b).pool];
        pool.push_back({ "key" + std::to_string(index), "v" }); // Always one more.
        ++served;
        return rig.daemon.answer(h, b);
    };
    rig.connect();
    EXPECT_EQ(rig.device.snapshot().intrinsic.size(), KvpIc::MAX_PAIRS_PER_POOL);
    EXPECT_EQ(rig.device.kvp_counters().truncated_pools, 2u);
    EXPECT_EQ(served, 2 * KvpIc::MAX_PAIRS_PER_POOL);
    EXPECT_EQ(rig.device.kvp_counters().walks, 1u);
}

TEST(KvpIc, DoubleAnswersAreIgnoredAndReopenSetsPairsAgain)
{
    Rig rig { { { "VmName", "vm1" } } };
    rig.guest.answer_twice = true;
    rig.connect();
    EXPECT_EQ(rig.device.kvp_counters().sets_acknowledged, 1u);
    EXPECT_EQ(rig.device.kvp_counters().walks, 1u);
    EXPECT_GT(rig.device.counters().unexpected_responses, 0u);
    rig.guest.answer_twice = false;
    rig.device.on_close();
    EXPECT_FALSE(rig.device.next_deadline().has_value());
    EXPECT_EQ(rig.device.snapshot().intrinsic.at("OSName"), "Linux"); // Last known info stays.
    rig.connect();
    EXPECT_EQ(rig.device.kvp_counters().sets_acknowledged, 2u);
}

TEST(Utf16, RoundTripsAndReplacesLoneSurrogates)
{
    std::string text = "h\xc3\xa9llo \xf0\x9f\x98\x80"; // "héllo 😀"
    auto units = *utf16_from_utf8(text);
    ASSERT_EQ(units.size(), 8u); // 6 + a surrogate pair
    std::vector<std::byte> bytes(units.size() * 2 + 3); // NUL and an odd byte after it
    std::memcpy(bytes.data(), units.data(), units.size() * 2);
    EXPECT_EQ(utf8_from_utf16le(bytes), text);
    std::vector<std::byte> lone { std::byte { 0x00 }, std::byte { 0xdc }, std::byte { 'a' }, std::byte { 0 }, std::byte { 'b' } };
    EXPECT_EQ(utf8_from_utf16le(lone), "\xef\xbf\xbd" "a");
    EXPECT_FALSE(utf16_from_utf8("\xc0\x80").has_value()); // Overlong NUL.
    EXPECT_FALSE(utf16_from_utf8("\xed\xa0\x80").has_value()); // Encoded surrogate.
    EXPECT_FALSE(utf16_from_utf8("\xe2\x82").has_value()); // Truncated.
}

TEST(KvpIc, NumericValuesAreReadAsDecimalText)
{
    // REG_U32 / REG_U64 values (include/uapi/linux/hyperv.h:252-254): Linux always answers REG_SZ,
    // other guests may not.
    Rig rig;
    rig.guest.service_answer = [&](IcMessageHeader const& h, std::span<std::byte> b) -> std::optional<u32> {
        auto status = rig.daemon.answer(h, b);
        auto header = wire_from<KvpHeader>(b);
        if (status != HV_S_OK || header.operation != static_cast<u8>(KvpOperation::Enumerate))
            return status;
        auto entry = b.subspan(sizeof(KvpHeader) + 4);
        bool wide = header.pool == static_cast<u8>(KvpPool::Guest);
        u32 type = wide ? 8 : 4;
        u64 number = wide ? 1ull << 40 : 4'000'000'000ull;
        std::memcpy(entry.data(), &type, 4);
        std::memcpy(entry.data() + 12 + KVP_MAX_KEY_BYTES, &number, wide ? 8 : 4);
        return status;
    };
    rig.connect();
    EXPECT_EQ(rig.device.snapshot().intrinsic.at("OSName"), "4000000000");
    EXPECT_EQ(rig.device.snapshot().guest.at("app"), "1099511627776");
}

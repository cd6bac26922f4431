// SPDX-License-Identifier: MIT
// KvpIc: see kvp_ic.hpp.
#include "devices/ic/kvp_ic.hpp"

#include <cstring>

#include <fmt/format.h>

#include "base/log.hpp"
#include "devices/ic/utf16.hpp"

namespace vmm::ic {
namespace {

// Walked in this order: the intrinsic items first (host name, OS, addresses).
constexpr std::array<KvpPool, 2> WALKED_POOLS { KvpPool::Auto, KvpPool::Guest };

constexpr u32 KVP_REG_U32 = 4; // REG_U32, REG_U64 (include/uapi/linux/hyperv.h:252-254)
constexpr u32 KVP_REG_U64 = 8;

// Writes `units` + NUL into `field` (which the caller sized); returns the byte count incl. NUL.
u32 put_utf16(std::span<u8> field, std::vector<u16> const& units)
{
    std::size_t bytes = (units.size() + 1) * 2;
    VMM_ASSERT(bytes <= field.size());
    std::memset(field.data(), 0, field.size());
    for (std::size_t i = 0; i < units.size(); ++i) {
        field[2 * i] = static_cast<u8>(units[i]);
        field[2 * i + 1] = static_cast<u8>(units[i] >> 8);
    }
    return static_cast<u32>(bytes);
}

std::vector<std::byte> message(KvpOperation operation, KvpPool pool)
{
    std::vector<std::byte> body(KVP_MESSAGE_BYTES);
    KvpHeader header { static_cast<u8>(operation), static_cast<u8>(pool), 0 };
    std::memcpy(body.data(), &header, sizeof(header));
    return body;
}

// Text of a field the guest filled: at most `claimed` bytes (its size field) and never past the
// buffer, up to the first NUL.
std::string field_text(u8 const* field, std::size_t capacity, u32 claimed)
{
    std::size_t length = std::min<std::size_t>(capacity, claimed);
    return utf8_from_utf16le(std::as_bytes(std::span { field, length }));
}

} // namespace

KvpIc::KvpIc(vmbus::Guid instance, KvpConfig config)
    : IcChannel(instance, VERSIONS)
    , m_config(std::move(config))
    , m_set_done(m_config.host_pairs.size(), false)
{
}

std::optional<std::string> KvpIc::check_pair(KvpPair const& pair)
{
    if (pair.key.empty())
        return std::string("the key is empty");
    if (pair.key.size() > MAX_KEY_UTF8)
        return fmt::format("the key is {} bytes long, at most {} fit the guest's buffer", pair.key.size(), MAX_KEY_UTF8);
    if (pair.value.size() > MAX_VALUE_UTF8)
        return fmt::format("the value is {} bytes long, at most {} fit the guest's buffer", pair.value.size(), MAX_VALUE_UTF8);
    // The guest stores NUL-terminated strings: an embedded NUL would cut the text.
    if (pair.key.find('\0') != std::string::npos || pair.value.find('\0') != std::string::npos)
        return std::string("it holds a NUL character");
    if (!utf16_from_utf8(pair.key) || !utf16_from_utf8(pair.value))
        return std::string("it is not valid UTF-8");
    return std::nullopt;
}

std::vector<std::byte> KvpIc::encode_set(KvpPool pool, KvpPair const& pair)
{
    VMM_ASSERT(!check_pair(pair)); // The config checked every pair.
    auto body = message(KvpOperation::Set, pool);
    KvpValue value {};
    value.value_type = KVP_REG_SZ;
    value.key_size = put_utf16(value.key, *utf16_from_utf8(pair.key));
    value.value_size = put_utf16(value.value, *utf16_from_utf8(pair.value));
    std::memcpy(body.data() + sizeof(KvpHeader), &value, sizeof(value)); // hv_kvp_msg_set
    return body;
}

std::vector<std::byte> KvpIc::encode_enumerate(KvpPool pool, u32 index)
{
    auto body = message(KvpOperation::Enumerate, pool);
    std::memcpy(body.data() + sizeof(KvpHeader), &index, sizeof(index)); // hv_kvp_msg_enumerate.index
    return body;
}

std::optional<u64> KvpIc::response_timeout_ns(IcMessageType type) const
{
    if (type == IcMessageType::Negotiate)
        return std::nullopt; // Answered once the guest's daemon is up, however late that is.
    return REQUEST_TIMEOUT_NS;
}

void KvpIc::on_ready()
{
    m_next_set = 0;
    start_walk();
}

void KvpIc::start_walk()
{
    m_walking = true;
    m_walk_pool = 0;
    m_walk_index = 0;
    m_walk_pairs.clear();
    m_next_walk.reset();
    pump();
}

void KvpIc::pump()
{
    if (state() != IcState::Ready || request_in_flight())
        return;
    while (m_next_set < m_config.host_pairs.size() && m_set_done[m_next_set])
        ++m_next_set;
    if (m_next_set < m_config.host_pairs.size()) {
        auto const& pair = m_config.host_pairs[m_next_set];
        if (send_request(encode_set(KvpPool::External, pair)))
            m_sent = Sent { KvpOperation::Set, KvpPool::External, m_next_set };
        return;
    }
    if (m_walking && send_request(encode_enumerate(WALKED_POOLS[m_walk_pool], m_walk_index)))
        m_sent = Sent { KvpOperation::Enumerate, WALKED_POOLS[m_walk_pool], 0 };
}

void KvpIc::on_response(std::span<std::byte const> body, u32 status)
{
    auto sent = std::exchange(m_sent, std::nullopt);
    if (!sent)
        return; // A request of ours that the IcChannel matched always has m_sent; defensive.
    bool echoed = body.size() >= sizeof(KvpHeader);
    if (echoed) {
        auto header = wire_from<KvpHeader>(body);
        echoed = header.operation == static_cast<u8>(sent->operation) && header.pool == static_cast<u8>(sent->pool);
    }
    if (!echoed) {
        ++m_kvp_counters.bad_answers;
        VMM_GUEST_WARN("ic", "KVP answer does not echo the request's operation and pool: dropped");
    }
    if (sent->operation == KvpOperation::Set) {
        if (echoed && status == HV_S_OK) {
            m_set_done[sent->set_slot] = true;
            ++m_kvp_counters.sets_acknowledged;
        } else {
            ++m_kvp_counters.sets_failed; // Retried on the next walk.
            VMM_GUEST_WARN("ic", "guest did not store KVP pair {} (status {:#x})", m_config.host_pairs[sent->set_slot].key, status);
        }
        ++m_next_set;
        pump();
        return;
    }
    if (!echoed) {
        walk_failed();
        return;
    }
    on_enumerate_answer(body, status);
}

void KvpIc::on_enumerate_answer(std::span<std::byte const> body, u32 status)
{
    if (status == HV_S_CONT) { // The daemon has no pair at this index: the pool is done.
        end_pool(true);
        return;
    }
    if (status != HV_S_OK) { // E.g. HV_E_FAIL: the guest kernel gave up on its daemon.
        VMM_GUEST_WARN("ic", "KVP enumeration answered with status {:#x}", status);
        walk_failed();
        return;
    }
    if (body.size() < sizeof(KvpHeader) + sizeof(KvpEnumerate)) {
        ++m_kvp_counters.bad_answers;
        VMM_GUEST_WARN("ic", "KVP enumeration answer of {} bytes is too short", body.size());
        walk_failed();
        return;
    }
    auto entry = wire_from<KvpEnumerate>(body.subspan(sizeof(KvpHeader)));
    std::string key = field_text(entry.data.key, sizeof(entry.data.key), entry.data.key_size);
    std::string value;
    switch (entry.data.value_type) {
    case KVP_REG_U32: {
        u32 number;
        std::memcpy(&number, entry.data.value, sizeof(number));
        value = std::to_string(number);
        break;
    }
    case KVP_REG_U64: {
        u64 number;
        std::memcpy(&number, entry.data.value, sizeof(number));
        value = std::to_string(number);
        break;
    }
    default: // REG_SZ (all Linux sends, hv_kvp.c kvp_respond_to_host); anything else read as text.
        value = field_text(entry.data.value, sizeof(entry.data.value), entry.data.value_size);
        break;
    }
    if (key.empty()) {
        ++m_kvp_counters.bad_answers;
        VMM_GUEST_WARN("ic", "KVP pair with an empty key ignored");
    } else {
        ++m_kvp_counters.pairs_received;
        m_walk_pairs.insert_or_assign(std::move(key), std::move(value));
    }
    if (++m_walk_index >= MAX_PAIRS_PER_POOL) {
        ++m_kvp_counters.truncated_pools;
        VMM_GUEST_WARN("ic", "KVP pool {} has more than {} pairs: the rest is not read",
            static_cast<int>(WALKED_POOLS[m_walk_pool]), MAX_PAIRS_PER_POOL);
        end_pool(true);
        return;
    }
    pump();
}

void KvpIc::end_pool(bool complete)
{
    if (complete) {
        auto& target = WALKED_POOLS[m_walk_pool] == KvpPool::Auto ? m_snapshot.intrinsic : m_snapshot.guest;
        target = std::move(m_walk_pairs);
    }
    m_walk_pairs.clear();
    m_walk_index = 0;
    if (++m_walk_pool < WALKED_POOLS.size()) {
        pump();
        return;
    }
    m_walking = false;
    m_snapshot.updated_at = now();
    ++m_kvp_counters.walks;
    m_next_walk = now() + m_config.refresh_ns;
}

void KvpIc::walk_failed()
{
    // Pools already read stay; the one under way keeps its previous snapshot. Try again later.
    m_walking = false;
    m_walk_pairs.clear();
    ++m_kvp_counters.walks_failed;
    m_next_walk = now() + m_config.refresh_ns;
}

void KvpIc::on_request_lost()
{
    auto sent = std::exchange(m_sent, std::nullopt);
    if (state() != IcState::Ready)
        return; // Closed: on_closed() resets everything.
    if (sent && sent->operation == KvpOperation::Set) {
        ++m_kvp_counters.sets_failed;
        ++m_next_set;
    }
    // No answer within REQUEST_TIMEOUT_NS: the daemon is stuck or gone; no retry storm.
    walk_failed();
    m_next_set = m_config.host_pairs.size(); // Unsent pairs wait for the next walk too.
}

void KvpIc::on_closed()
{
    m_sent.reset();
    m_walking = false;
    m_walk_pairs.clear();
    m_next_walk.reset();
    std::fill(m_set_done.begin(), m_set_done.end(), false); // A new daemon/guest: set them again.
}

std::optional<u64> KvpIc::service_deadline() const
{
    if (state() == IcState::Ready && !m_walking)
        return m_next_walk;
    return std::nullopt;
}

void KvpIc::on_service_timer()
{
    if (state() != IcState::Ready || m_walking || !m_next_walk || now() < *m_next_walk)
        return;
    m_next_set = 0; // Pairs the guest did not store yet go again.
    start_walk();
}

} // namespace vmm::ic

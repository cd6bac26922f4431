// SPDX-License-Identifier: MIT
// KvpIc: the key/value pair exchange integration component, host side, as Hyper-V drives it.
// Host -> guest: the configured pairs go into the guest's External pool with KVP_OP_SET (Linux's
// hv_kvp_daemon stores them in /var/lib/hyperv/.kvp_pool_0). Guest -> host: the host walks the
// Auto pool (host name, OS, addresses: the daemon's "intrinsic" items) and the Guest pool with
// KVP_OP_ENUMERATE, index 0, 1, ... until the guest answers HV_S_CONT, and publishes what it read
// as one snapshot per pool; it walks them again every `refresh` (addresses change).
//
// A Linux guest answers nothing, not even the version negotiation, until its user-space daemon
// registered (hv_kvp.c:692-703): the negotiation therefore has no timeout here. Each later
// request may take the guest kernel up to HV_UTIL_TIMEOUT (30 s, drivers/hv/hyperv_vmbus.h:28)
// to answer for a slow daemon, so ours is longer.
//
// Hostile guest: answers are matched to the one request in flight (IcChannel); their operation
// and pool must echo ours; sizes inside are bounded by the fixed buffers whatever the guest
// claims; text is decoded to valid UTF-8; a pool holds at most MAX_PAIRS_PER_POOL pairs, so a
// guest that never ends an enumeration costs bounded memory and time.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "devices/ic/ic_channel.hpp"
#include "devices/ic/kvp_protocol.hpp"

namespace vmm::ic {

struct KvpPair {
    std::string key;
    std::string value;
};

struct KvpConfig {
    std::vector<KvpPair> host_pairs; // Checked with KvpIc::check_pair (the config does).
    u64 refresh_ns = 60'000'000'000ull;
};

struct KvpSnapshot {
    std::map<std::string, std::string> intrinsic; // Auto pool.
    std::map<std::string, std::string> guest;     // Guest pool.
    std::optional<u64> updated_at;                // Steady ns of the last complete walk.
};

struct KvpCounters {
    u64 sets_acknowledged { 0 };
    u64 sets_failed { 0 };
    u64 pairs_received { 0 };
    u64 bad_answers { 0 }; // Wrong operation/pool echoed, short body, empty key.
    u64 walks { 0 };       // Complete walks of both pools.
    u64 walks_failed { 0 };
    u64 truncated_pools { 0 };
};

class KvpIc final : public IcChannel {
public:
    // hv_kvp.c:52-56 (kvp_versions): 4.0 (Windows 8), 3.0 (Windows 7), 1.0 (WS2008).
    static constexpr std::array<IcVersion, 3> VERSIONS { IcVersion { 4, 0 }, IcVersion { 3, 0 }, IcVersion { 1, 0 } };
    static constexpr u64 REQUEST_TIMEOUT_NS = 40'000'000'000ull;
    static constexpr std::size_t MAX_PAIRS_PER_POOL = 256;
    // Longest key and value in UTF-8 bytes: the guest kernel converts the UTF-16 it receives
    // into 511- and 2047-byte UTF-8 buffers (hv_kvp.c kvp_send_key), and the UTF-16 (plus NUL)
    // must fit 512 and 2048 bytes; these bounds satisfy both.
    static constexpr std::size_t MAX_KEY_UTF8 = 255;
    static constexpr std::size_t MAX_VALUE_UTF8 = 1023;

    KvpIc(vmbus::Guid instance, KvpConfig config);

    // Why `pair` cannot be sent (empty key, too long, not UTF-8, an embedded NUL), or nullopt.
    static std::optional<std::string> check_pair(KvpPair const& pair);
    // hv_kvp_msg bodies (KVP_MESSAGE_BYTES) as the host sends them.
    static std::vector<std::byte> encode_set(KvpPool pool, KvpPair const& pair);
    static std::vector<std::byte> encode_enumerate(KvpPool pool, u32 index);

    KvpSnapshot const& snapshot() const { return m_snapshot; }
    KvpCounters const& kvp_counters() const { return m_kvp_counters; }

protected:
    vmbus::Guid class_guid() const override { return KVP_GUID; }
    IcMessageType service_type() const override { return IcMessageType::KvpExchange; }
    std::optional<u64> response_timeout_ns(IcMessageType type) const override;
    void on_ready() override;
    void on_response(std::span<std::byte const> body, u32 status) override;
    void on_request_lost() override;
    void on_closed() override;
    std::optional<u64> service_deadline() const override;
    void on_service_timer() override;

private:
    struct Sent {
        KvpOperation operation;
        KvpPool pool;
        std::size_t set_slot; // Set: index into host_pairs.
    };
    void start_walk();
    void pump();
    void on_enumerate_answer(std::span<std::byte const> body, u32 status);
    void end_pool(bool complete);
    void walk_failed();

    KvpConfig m_config;
    std::vector<bool> m_set_done;
    std::size_t m_next_set { 0 };
    bool m_walking { false };
    std::size_t m_walk_pool { 0 }; // Index into WALKED_POOLS.
    u32 m_walk_index { 0 };
    std::map<std::string, std::string> m_walk_pairs;
    std::optional<u64> m_next_walk;
    std::optional<Sent> m_sent;
    KvpSnapshot m_snapshot;
    KvpCounters m_kvp_counters;
};

} // namespace vmm::ic

// SPDX-License-Identifier: MIT
// HeartbeatIc: the heartbeat integration component. While negotiated, the host sends a
// sequence number every `interval`; a live guest answers seq + 1 (hv_util.c:530-543). The
// status is `none` until the first good answer, `ok` while the last one is younger than
// `late_after`, `late` after that (also once the guest closes the channel: its hv_utils is
// gone). A change to `late` is reported through the handler.
//
// Timers: next_deadline() is the next send while negotiated, and the moment an `ok` turns
// `late`; nothing while the status cannot change on its own.
#pragma once

#include <functional>

#include "devices/ic/ic_channel.hpp"

namespace vmm::ic {

enum class HeartbeatStatus : u8 { None, Ok, Late };
std::string_view heartbeat_status_name(HeartbeatStatus);

struct HeartbeatConfig {
    u64 interval_ns = 2'000'000'000ull;
    u64 late_after_ns = 10'000'000'000ull;
};

class HeartbeatIc final : public IcChannel {
public:
    // hv_util.c:71-75: 3.0, 1.0.
    static constexpr std::array<IcVersion, 2> VERSIONS { IcVersion { 3, 0 }, IcVersion { 1, 0 } };

    HeartbeatIc(vmbus::Guid instance, HeartbeatConfig config);

    HeartbeatStatus status(u64 now_ns) const;
    // Age of the last good answer (nullopt before the first).
    std::optional<u64> age_ns(u64 now_ns) const;
    u64 beats() const { return m_beats; }
    u64 wrong_sequence() const { return m_wrong_sequence; }
    void set_late_handler(std::function<void()> handler) { m_late_handler = std::move(handler); }

protected:
    vmbus::Guid class_guid() const override { return HEARTBEAT_GUID; }
    IcMessageType service_type() const override { return IcMessageType::Heartbeat; }
    void on_ready() override;
    void on_response(std::span<std::byte const> body, u32 status) override;
    std::optional<u64> service_deadline() const override;
    void on_service_timer() override;

private:
    void beat();
    HeartbeatConfig m_config;
    u64 m_sequence { 0 };
    std::optional<u64> m_next_send;
    std::optional<u64> m_last_answer;
    bool m_reported_late { false };
    u64 m_beats { 0 };
    u64 m_wrong_sequence { 0 };
    std::function<void()> m_late_handler;
};

} // namespace vmm::ic

// SPDX-License-Identifier: MIT
// TimeSyncIc: see timesync_ic.hpp.
#include "devices/ic/timesync_ic.hpp"

#include <cstring>

#include "base/log.hpp"

namespace vmm::ic {

TimeSyncIc::TimeSyncIc(vmbus::Guid instance, TimeSyncConfig config, WallClock wall, ReferenceTime reference)
    : IcChannel(instance, VERSIONS)
    , m_config(config)
    , m_wall(std::move(wall))
    , m_reference(std::move(reference))
{
}

u64 TimeSyncIc::filetime_from_unix_ns(i64 unix_ns)
{
    if (unix_ns < 0)
        unix_ns = 0;
    return static_cast<u64>(unix_ns) / 100 + WLTIMEDELTA;
}

std::vector<std::byte> TimeSyncIc::encode(IcVersion service, u64 host_time, u64 reference_time, u8 flags)
{
    // Both structs are __packed (include/linux/hyperv.h:1628-1642): written field by field.
    auto put64 = [](std::vector<std::byte>& out, std::size_t at, u64 value) { std::memcpy(out.data() + at, &value, 8); };
    if (service.major >= 4) {
        // ictimesync_ref_data: parenttime, vmreferencetime, flags, leapflags, stratum, reserved[3].
        std::vector<std::byte> body(TIMESYNC_REF_BODY_BYTES);
        put64(body, 0, host_time);
        put64(body, 8, reference_time);
        body[16] = std::byte { flags };
        return body; // leapflags 0 (no leap second pending), stratum 0 (unspecified), reserved 0.
    }
    // ictimesync_data: parenttime, childtime, roundtriptime (both unused by the guest), flags.
    std::vector<std::byte> body(TIMESYNC_BODY_BYTES);
    put64(body, 0, host_time);
    body[24] = std::byte { flags };
    return body;
}

void TimeSyncIc::on_ready()
{
    m_synced = false;
    send_sample();
}

void TimeSyncIc::send_sample()
{
    bool sync = !m_synced;
    // Sampled as late as possible: the packet goes out now (or on ring space: then 4.0's reference
    // time still lets the guest add the delay).
    auto body = encode(service_version(), m_wall(), m_reference(), sync ? ICTIMESYNCFLAG_SYNC : ICTIMESYNCFLAG_SAMPLE);
    if (send_request(body))
        m_sync_in_flight = sync;
    m_next_send = now() + m_config.period_ns;
}

void TimeSyncIc::on_response(std::span<std::byte const>, u32 status)
{
    bool was_sync = std::exchange(m_sync_in_flight, false);
    if (status != HV_S_OK) {
        ++m_time_counters.failed_answers;
        VMM_GUEST_WARN("ic", "time sync sample answered with status {:#x}", status);
        return;
    }
    if (was_sync) {
        m_synced = true;
        ++m_time_counters.syncs_acknowledged;
    } else {
        ++m_time_counters.samples_acknowledged;
    }
}

void TimeSyncIc::on_request_lost() { m_sync_in_flight = false; } // m_synced stays false: SYNC again.

void TimeSyncIc::on_closed()
{
    m_synced = false;
    m_sync_in_flight = false;
    m_next_send.reset();
}

std::optional<u64> TimeSyncIc::service_deadline() const
{
    if (state() == IcState::Ready)
        return m_next_send;
    return std::nullopt;
}

void TimeSyncIc::on_service_timer()
{
    if (state() == IcState::Ready && m_next_send && now() >= *m_next_send)
        send_sample();
}

} // namespace vmm::ic

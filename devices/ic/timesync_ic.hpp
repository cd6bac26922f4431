// SPDX-License-Identifier: MIT
// TimeSyncIc: the time synchronization integration component. Once negotiated the host sends a
// SYNC sample (the guest sets its clock from it: Linux hv_utils adj_guesttime() schedules
// do_settimeofday64() for ICTIMESYNCFLAG_SYNC, hv_util.c:364-395), then a SAMPLE every `period`
// (a hint the guest may use, e.g. the PTP clock hv_utils registers). The SYNC is repeated until
// the guest acknowledged one, and again whenever the channel reopens (a rebooted or rebound
// hv_utils), as Hyper-V sends it after boot and restore.
//
// Samples carry the host's wall-clock time in Windows FILETIME units (100 ns since 1601-01-01,
// hv_util.c reftime_to_ns and WLTIMEDELTA, include/linux/hyperv.h:1623). Service 4.0 adds the
// partition reference time at the moment of the sample (struct ictimesync_ref_data), so the
// guest adds the delivery delay itself; 3.0 and 1.0 use struct ictimesync_data, which the guest
// takes as "now".
#pragma once

#include <functional>
#include <vector>

#include "devices/ic/ic_channel.hpp"

namespace vmm::ic {

struct TimeSyncConfig {
    u64 period_ns = 5'000'000'000ull; // Hyper-V samples every 5 s.
};

struct TimeSyncCounters {
    u64 syncs_acknowledged { 0 };
    u64 samples_acknowledged { 0 };
    u64 failed_answers { 0 }; // Answered with a failure status.
};

class TimeSyncIc final : public IcChannel {
public:
    // hv_util.c:64-68 (ts_versions): 4.0, 3.0, 1.0.
    static constexpr std::array<IcVersion, 3> VERSIONS { IcVersion { 4, 0 }, IcVersion { 3, 0 }, IcVersion { 1, 0 } };

    // Host wall-clock time now, FILETIME units (see filetime_from_unix_ns).
    using WallClock = std::function<u64()>;
    // The guest's partition reference time now (100 ns units, the TIME_REF_COUNT value).
    using ReferenceTime = std::function<u64()>;

    TimeSyncIc(vmbus::Guid instance, TimeSyncConfig config, WallClock wall, ReferenceTime reference);

    // Unix-epoch nanoseconds -> FILETIME (100 ns since 1601); times before 1970 clamp to 1970.
    static u64 filetime_from_unix_ns(i64 unix_ns);
    // The sample body for `service` (ictimesync_ref_data for 4.0, ictimesync_data below it).
    static std::vector<std::byte> encode(IcVersion service, u64 host_time, u64 reference_time, u8 flags);

    // True once the guest acknowledged a SYNC on the current channel.
    bool synced() const { return m_synced; }
    TimeSyncCounters const& time_counters() const { return m_time_counters; }

protected:
    vmbus::Guid class_guid() const override { return TIMESYNC_GUID; }
    IcMessageType service_type() const override { return IcMessageType::TimeSync; }
    void on_ready() override;
    void on_response(std::span<std::byte const> body, u32 status) override;
    void on_request_lost() override;
    void on_closed() override;
    std::optional<u64> service_deadline() const override;
    void on_service_timer() override;

private:
    void send_sample();
    TimeSyncConfig m_config;
    WallClock m_wall;
    ReferenceTime m_reference;
    std::optional<u64> m_next_send;
    bool m_synced { false };
    bool m_sync_in_flight { false };
    TimeSyncCounters m_time_counters;
};

} // namespace vmm::ic

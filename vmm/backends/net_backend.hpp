// SPDX-License-Identifier: MIT
// NetBackend: the [[net]] NICs. Each is a devices/netvsc NetvscDevice (rebuilt per boot on the
// machine's VMBus) plus a host TapDevice (opened once at start, kept across guest reboots), and
// this class moves Ethernet frames between them. It also decorates the REST backend: GET
// /api/v1/vm gains "nics", /metrics the per-NIC counters.
//
// Threads and locks: one thread of its own, "net", serves every TAP fd with epoll (level
// triggered) and an eventfd; nothing here runs on a vCPU thread or the event loop, so a burst
// from the host never delays either. The devices live under the VMBus host lock (VmbusGlue) like
// every VMBus device; "net" takes it briefly per batch of up to BATCH frames and never across a
// syscall. m_lock (rank NetDevices, before VmbusGlue) guards the per-boot devices against
// attach/detach (loop thread) and API reads. Device change hooks run under VmbusGlue (vCPU
// threads, or "net" itself) and only set a flag and write the eventfd. Flow control:
// guest->host frames are taken while the TAP accepts them (a refused write drops the frame and
// counts it: the kernel's queue is full); host->guest frames are read only while the device's
// bounded queue has room, otherwise EPOLLIN is switched off for that TAP and the kernel's TAP
// queue holds (or drops and counts) the burst until the guest completes receives.
#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/ranked_mutex.hpp"
#include "devices/netvsc/netvsc_device.hpp"
#include "vmm/api/api_backend.hpp"
#include "vmm/backends/tap_device.hpp"
#include "vmm/config.hpp"
#include "vmm/machine.hpp"
#include "vmm/vmbus_glue.hpp"

namespace vmm {

class NetBackend final : public api::ForwardingApiBackend {
public:
    // Frames moved per direction per lock hold.
    static constexpr std::size_t BATCH = 32;

    NetBackend(std::vector<NetSection> const& nics, api::ApiBackend& inner);
    ~NetBackend() override;
    NetBackend(NetBackend const&) = delete;
    NetBackend& operator=(NetBackend const&) = delete;

    // Before run: opens every TAP and starts the "net" thread (nothing when there are no NICs).
    Result<void> start();
    // Loop thread, per boot before the vCPUs start / before the Machine goes.
    void attach(Machine& machine);
    void detach(Machine& machine);
    // The same on a bare VMBus host (tests).
    void attach(mem::GuestMemory const& memory, VmbusGlue& glue);
    void detach(VmbusGlue& glue);

    std::vector<api::NicInfo> nic_info();

    // api::ApiBackend: VM view and metrics gain the NICs, link control; everything else forwarded.
    api::VmInfo vm_info() override;
    std::string extra_metrics() override;
    // The link state is the host's (a cable): it holds across guest reboots and driver reloads
    // until changed again. Down: the guest gets RNDIS_STATUS_MEDIA_DISCONNECT (Linux: carrier
    // off), frames both ways are dropped and counted as link_down.
    std::expected<api::NicInfo, std::string> set_link(std::uint32_t nic, bool up) override;

private:
    struct Nic {
        NetSection config;
        std::optional<TapDevice> tap;
        std::unique_ptr<netvsc::NetvscDevice> device; // This boot's; null between boots.
        bool reading = true;                          // EPOLLIN armed on the TAP.
        bool link_up = true;                          // The host's cable (set_link).
        u64 no_driver = 0;     // Host frames read while no guest driver could take them.
        u64 link_down = 0;     // ... while the link was down and no driver was there either.
        u64 tap_full = 0;      // Guest frames the TAP refused (queue full, interface down).
        u64 tap_errors = 0;
        netvsc::NetvscStats last {}; // The device's counters, kept across boots.
        netvsc::NetvscStats total {};
    };
    void run();
    void wake();
    // "net" thread, m_lock held: one round on one NIC; true if it moved anything.
    bool service(Nic& nic);
    void set_reading(Nic& nic, bool on);
    void fold_stats(Nic& nic); // m_lock held: adds the device's counter deltas to total.
    api::NicInfo info_of(std::size_t index); // m_lock held.

    RankedMutex<LockRank::NetDevices> m_lock;
    std::vector<Nic> m_nics;
    VmbusGlue* m_glue { nullptr };
    Fd m_epoll;
    Fd m_wake;
    std::atomic<bool> m_wake_pending { false };
    std::atomic<bool> m_stop { false };
    std::thread m_thread;
    std::vector<std::byte> m_frame; // "net" thread's read buffer.
};

} // namespace vmm

// SPDX-License-Identifier: MIT
// DmApiBackend: the REST API's view of Dynamic Memory (api::ApiBackend) across boots. The loop
// thread attaches each boot's Machine (building its DmDevice, vmm/dm_device.*) and detaches it
// before the Machine goes; the API thread reads status and sets targets through the published
// device; DM events (from whichever thread drove the engine) fan out to the EventHub here.
//
// Locks (their order: ARCHITECTURE.md "Threads and locks"): m_lock guards which device is
// published; the API thread holds it across a with_engine() call so detach() cannot free the
// device underneath (DmBackend before VmbusGlue). m_host_lock guards the Machine for the host
// memory figures and nests nothing, so reading /proc never holds up the DM tick (which takes only
// the VMBus glue lock) nor a detach waiting for m_lock.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>

#include "base/ranked_mutex.hpp"
#include "devices/hv_balloon/dynamic_memory.hpp"
#include "vmm/api/api_backend.hpp"
#include "vmm/api/event_hub.hpp"
#include "vmm/config.hpp"
#include "vmm/dm_device.hpp"
#include "vmm/event_loop.hpp"
#include "vmm/machine.hpp"

namespace vmm {

class DmApiBackend final : public api::ApiBackend {
public:
    using Clock = std::chrono::steady_clock;

    DmApiBackend(Config const& config, EventLoop& loop, api::EventHub& hub, Clock::time_point start);
    ~DmApiBackend() override;

    // Loop thread, each boot before its vCPUs start (Runner::on_machine_created): records the
    // boot and, with [dynamic_memory] enabled, builds and publishes its DmDevice.
    void attach(Machine& machine, u64 boot_count);
    // Loop thread, after the vCPUs stopped and before the Machine is destroyed (reset or exit).
    void detach(Machine& machine, bool guest_reset);
    // The same for a device built elsewhere (unit tests with fake machine parts): `machine`
    // may be null (no host memory figures).
    void attach_device(std::unique_ptr<DmDevice> device, Machine* machine, u64 boot_count);
    void detach_device(bool guest_reset);

    // Builds the device for `setup` with this backend as its event sink.
    Result<std::unique_ptr<DmDevice>> make_device(DmDeviceSetup const& setup);

    // api::ApiBackend (API thread).
    api::VmInfo vm_info() override;
    api::MemoryInfo memory_info() override;
    std::expected<api::Operation, api::SetTargetError> set_target(std::uint64_t target_mib) override;
    std::optional<api::Operation> operation(std::uint64_t id) override;
    api::MemoryCounters counters() override;
    std::expected<api::MemoryPolicy, std::string> set_policy(api::PolicyUpdate const&) override;
    std::expected<std::optional<api::MemoryCeiling>, std::string> set_ceiling(
        std::optional<api::CeilingRequest> const&) override;
    std::string extra_metrics() override;

private:
    api::MemoryInfo dm_memory_info(); // memory_info() without the host figures.
    std::optional<hv_balloon::DmStatus> status(); // Live, or the last detached engine's.
    void on_event(hv_balloon::DmEvent const& event); // Under the VMBus glue lock.
    api::Operation to_api(hv_balloon::DmOperation const& op) const;
    api::MemoryPolicy policy() const; // m_lock held.
    u64 uptime_ms(Clock::time_point at) const;
    hyperv::PartitionStats hyperv_totals(); // Every boot's Hyper-V counters, summed.
    // `action(engine)` on the published device, or false without one.
    template<typename F>
    bool with_engine(F&& action);

    Config const& m_config;
    EventLoop& m_loop;
    api::EventHub& m_hub;
    Clock::time_point m_start;

    // The host ceiling's lease as last PUT (docs/auto-memory.md): the engine holds the same; this
    // copy carries it across a reboot (the next boot's engine gets what is left of it).
    struct CeilingLease {
        u64 mib = 0;
        u64 lease_ms = 0;
        Clock::time_point expires;
    };

    RankedMutex<LockRank::DmBackend> m_lock; // Guards the seven below.
    std::unique_ptr<DmDevice> m_device;       // This boot's device; the loop thread replaces it.
    u64 m_boot_count = 0;
    std::optional<hv_balloon::DmStatus> m_last; // Last status of a detached engine.
    DynamicMemorySection m_dm;                // The policy now ([dynamic_memory], then PUTs): every boot's.
    std::optional<mem::PageCount> m_last_size; // The guest's size when it last rebooted.
    std::optional<CeilingLease> m_ceiling;
    std::atomic<u64> m_guest_reboots { 0 };      // Loop thread writes, API thread reads.

    RankedMutex<LockRank::HostMemory> m_host_lock;
    Machine* m_machine = nullptr; // The booted Machine (with or without DM), for host memory use.
    hyperv::PartitionStats m_hyperv_past {}; // Hyper-V counters of the boots before it, summed.

    RankedMutex<LockRank::DmOperations> m_ops_lock; // Operations by id (the engine keeps the latest).
    std::map<u64, api::Operation> m_ops;
    std::optional<Clock::time_point> m_last_progress;
};

} // namespace vmm

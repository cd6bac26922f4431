// SPDX-License-Identifier: MIT
// DmIntegration: wires the Hyper-V Dynamic Memory engine into each Machine (GuestPhysicalMap,
// OnDemandMemslots over the hot-add window, the memfd discard backend, VmbusHost registration,
// a timer armed for the engine's next deadline only, vmm/dm_clock.hpp) and serves the REST API (api::ApiBackend) over it, publishing DM events.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "devices/hv_balloon/dynamic_memory.hpp"
#include "mem/guest_physical_map.hpp"
#include "mem/memslots.hpp"
#include "vmm/api/api_backend.hpp"
#include "vmm/api/event_hub.hpp"
#include "vmm/config.hpp"
#include "vmm/dm_clock.hpp"
#include "vmm/event_loop.hpp"
#include "vmm/machine.hpp"

namespace vmm {

class DmIntegration final : public api::ApiBackend {
public:
    DmIntegration(Config const& config, EventLoop& loop, api::EventHub& hub,
        std::chrono::steady_clock::time_point start);
    ~DmIntegration() override;

    // Loop thread, for each boot before its vCPUs start (Runner::on_machine_created): builds the engine for `machine`.
    void attach(Machine& machine, u64 boot_count);
    // Loop thread, before the Machine is destroyed (reset or exit): resets and drops the engine.
    void detach(Machine& machine, bool guest_reset);

    // api::ApiBackend (API thread).
    api::VmInfo vm_info() override;
    api::MemoryInfo memory_info() override;
    std::expected<api::Operation, api::SetTargetError> set_target(std::uint64_t target_mib) override;
    std::optional<api::Operation> operation(std::uint64_t id) override;
    api::MemoryCounters counters() override;
    std::string extra_metrics() override;

private:
    // One boot's engine and the memory-map state it drives. Destroyed before its Machine.
    struct PerMachine {
        Machine* machine = nullptr;
        std::optional<mem::GuestPhysicalMap> map;
        std::optional<mem::OnDemandMemslots> memslots;
        std::unique_ptr<hv_balloon::DynamicMemory> engine;
        EventLoop::Timer tick;          // One-shot, at the engine's next deadline.
        std::unique_ptr<DmClock> clock; // What the VMBus host calls: the engine with the time.
    };
    Result<void> build(PerMachine& per, Machine& machine);
    api::MemoryInfo dm_memory_info(); // memory_info() without the host figures.
    void on_event(hv_balloon::DmEvent const& event); // Runs with the VMBus host lock held.
    api::Operation to_api(hv_balloon::DmOperation const& op) const;
    u64 uptime_ms(std::chrono::steady_clock::time_point at) const;
    // Calls `action(engine, status)` under the VMBus host lock, or returns false without a guest.
    template<typename F>
    bool with_engine(F&& action);

    Config const& m_config;
    EventLoop& m_loop;
    api::EventHub& m_hub;
    std::chrono::steady_clock::time_point m_start;

    std::mutex m_lock; // Guards m_current, m_machine, m_boot_count, m_last (API vs loop thread).
    std::unique_ptr<PerMachine> m_current;
    Machine* m_machine = nullptr; // The booted Machine (with or without DM), for host memory use.
    u64 m_boot_count = 0;
    std::optional<hv_balloon::DmStatus> m_last; // Last status of a detached engine.
    std::atomic<u64> m_guest_reboots { 0 }; // Loop thread writes, API thread reads.

    std::mutex m_ops_lock; // Operations by id (the engine only keeps the latest one).
    std::map<u64, api::Operation> m_ops;
    std::optional<std::chrono::steady_clock::time_point> m_last_progress;
};

} // namespace vmm

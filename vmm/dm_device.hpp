// SPDX-License-Identifier: MIT
// DmDevice: one boot's Hyper-V Dynamic Memory device, from registration to reset. It builds the
// engine's view of the machine (GuestPhysicalMap, OnDemandMemslots over the hot-add window, the
// discard backend), registers the engine on the VMBus host behind a DmClock (vmm/dm_clock.hpp:
// the time around every input, one timer at the engine's next deadline, none while idle). The REST side lives in vmm/dm_api_backend.*; it reaches the engine only through
// with_engine().
//
// Threads: created, ticked, reset and destroyed on the event-loop thread (vmm/runner.hpp
// callbacks); with_engine() from any thread. Every engine call runs under the VMBus glue lock
// (the engine shares the VmbusHost with the vCPU threads that deliver guest messages).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <span>

#include "base/error.hpp"
#include "devices/hv_balloon/dynamic_memory.hpp"
#include "mem/guest_physical_map.hpp"
#include "mem/memslots.hpp"
#include "vmm/config.hpp"
#include "vmm/dm_clock.hpp"
#include "vmm/event_loop.hpp"
#include "vmm/hyperv/memory_hint_sink.hpp"
#include "vmm/machine.hpp"
#include "vmm/vmbus_glue.hpp"

namespace vmm {

// What one boot lends its DM device; everything outlives the device.
struct DmDeviceSetup {
    MemoryLayout layout;
    std::span<std::byte> hot_add_host;    // The reserved hot-add window (empty without one).
    mem::MemslotSink& memslot_sink;       // KVM slots from FIRST_HOT_ADD_SLOT.
    mem::GuestMemory* guest_memory;       // Plugs hot-added chunks; null leaves that to the sink.
    mem::DiscardBackend& discard;         // Ballooned pages back to the host.
    VmbusGlue& vmbus;

    // The booted Machine's parts; fails without [hyperv] (no VMBus host).
    static Result<DmDeviceSetup> of(Machine&);
};

// The engine's settings from [dynamic_memory] (the Linux profile plus the configured timeouts).
hv_balloon::DmConfig dm_config_from(DynamicMemorySection const&);
// The automatic-sizing policy from [dynamic_memory] (checked by check_dynamic_memory()). The
// guest is taken for Linux (its reports include compute_balloon_floor(), dm_policy.hpp), like
// the engine's Linux profile above.
hv_balloon::PolicyConfig policy_config_from(DynamicMemorySection const&);

// Also the partition's MemoryHintSink (free page reporting) when [dynamic_memory]
// free_page_reporting is on: DmApiBackend sets it before the vCPUs start and clears it before
// reset().
class DmDevice final : public hyperv::MemoryHintSink {
public:
    using Clock = std::chrono::steady_clock;

    // Builds and registers the device; on error nothing stays registered anywhere. `events`
    // runs under the VMBus glue lock, on whichever thread drove the engine.
    static Result<std::unique_ptr<DmDevice>> create(DmDeviceSetup const&, hv_balloon::DmConfig const&,
        EventLoop&, hv_balloon::DynamicMemory::EventSink events, hv_balloon::PolicyConfig const& policy = {});
    DmDevice(DmDevice const&) = delete;
    DmDevice& operator=(DmDevice const&) = delete;
    ~DmDevice() override; // reset() if not done yet.

    // hyperv::MemoryHintSink (a vCPU thread): the engine validates and discards, under the
    // VMBus glue lock like every engine call. After reset() nothing is accepted.
    std::uint32_t cold_discard(std::span<std::uint64_t const> ranges) override;

    // Loop thread, after the vCPUs stopped and before the Machine goes: stops the tick, resets
    // the engine, then the VMBus host (the order dynamic_memory.hpp asks for), withdraws the
    // engine from the host and unplugs the hot-add memslots. Returns the engine's last status.
    // Idempotent; later with_engine() calls find no engine.
    hv_balloon::DmStatus reset();
    // The guest's size just before reset() (nullopt before it), for [dynamic_memory]
    // on_reboot_size = "last".
    std::optional<mem::PageCount> size_at_reset() const { return m_size_at_reset; }

    // Any thread: `action(engine)` under the VMBus glue lock. The engine's sends (tick, new
    // target) may find the host->guest ring broken; such channels are closed right after,
    // instead of at the guest's next VMBus message. False (action not run) after reset().
    template<typename F>
    bool with_engine(F&& action)
    {
        return m_vmbus.with_host([&](vmbus::VmbusHost& host) {
            if (m_reset)
                return false;
            m_clock->tick(); // The engine timestamps with the latest tick.
            action(*m_engine);
            m_clock->rearm(); // A new target may have started a wait.
            host.close_broken_channels();
            return true;
        });
    }

private:
    explicit DmDevice(VmbusGlue&);
    Result<void> start_ticking(EventLoop&);
    void tick();

    VmbusGlue& m_vmbus;
    std::optional<mem::GuestPhysicalMap> m_map;
    std::optional<mem::OnDemandMemslots> m_memslots;
    std::unique_ptr<hv_balloon::DynamicMemory> m_engine;
    std::unique_ptr<DmClock> m_clock; // What the VMBus host calls: the engine, with the time.
    bool m_registered { false }; // add_device() succeeded (create() returned the device).
    bool m_reset { false };      // Under the VMBus glue lock.
    std::optional<mem::PageCount> m_size_at_reset; // Written by reset() under the glue lock.
    EventLoop::Timer m_tick; // One-shot, at the engine's next deadline (DmClock). Last: cancelled first.
};

} // namespace vmm

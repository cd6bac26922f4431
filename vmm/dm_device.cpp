// SPDX-License-Identifier: MIT
// DmDevice: one boot's DM engine, its memory-map state, VMBus registration and tick timer.
#include "vmm/dm_device.hpp"

#include "base/log.hpp"
#include "firmware/e820.hpp"

namespace vmm {

namespace {
// The engine wants a tick every <= 100 ms (devices/hv_balloon/dynamic_memory.hpp wiring note).
constexpr std::chrono::milliseconds TICK_PERIOD { 100 };
// A fixed instance GUID: one DM device per VM ("microvmm-dm-0001" in ASCII).
constexpr vmbus::Guid DM_INSTANCE { { 'm', 'i', 'c', 'r', 'o', 'v', 'm', 'm', '-', 'd', 'm', '-', '0', '0', '0', '1' } };
} // namespace

Result<DmDeviceSetup> DmDeviceSetup::of(Machine& machine)
{
    auto* vmbus = machine.vmbus();
    if (vmbus == nullptr)
        return fail(Errc::Config, "dynamic_memory needs [hyperv] enabled");
    auto const window = machine.hot_add_window().bytes();
    // The window is reserved address space the memslot sink maps in; the engine never writes it.
    std::span<std::byte> const window_host { const_cast<std::byte*>(window.data()), window.size() };
    return DmDeviceSetup { machine.layout(), window_host, machine.memslot_sink(), &machine.guest_memory(),
        machine.discard_backend(), *vmbus };
}

hv_balloon::DmConfig dm_config_from(DynamicMemorySection const& section)
{
    using std::chrono::milliseconds;
    hv_balloon::DmConfig dm = hv_balloon::DmConfig::linux_profile();
    dm.post_connect_delay = milliseconds { section.post_connect_delay_ms };
    dm.balloon_reply_timeout = milliseconds { section.balloon_reply_timeout_ms };
    dm.unballoon_reply_timeout = milliseconds { section.unballoon_reply_timeout_ms };
    dm.hot_add_reply_timeout_base = milliseconds { section.hot_add_reply_timeout_ms };
    dm.hot_add_reply_timeout_per_block = milliseconds { section.hot_add_reply_timeout_per_block_ms };
    if (section.max_request_pages > 0)
        dm.max_balloon_pages_per_request = mem::PageCount { section.max_request_pages };
    dm.instance = DM_INSTANCE;
    return dm;
}

DmDevice::DmDevice(VmbusGlue& vmbus)
    : m_vmbus(vmbus)
{
}

Result<std::unique_ptr<DmDevice>> DmDevice::create(DmDeviceSetup const& setup, hv_balloon::DmConfig const& config,
    EventLoop& loop, hv_balloon::DynamicMemory::EventSink events)
{
    std::unique_ptr<DmDevice> device { new DmDevice(setup.vmbus) }; // Private constructor.
    auto const& layout = setup.layout;
    std::vector<mem::PageRange> boot;
    for (auto const& range : firmware::ram_ranges(layout.ram_bytes)) {
        auto pages = mem::PageCount::from_bytes_floor(range.size_bytes);
        if (pages.raw() > 0)
            boot.push_back(mem::PageRange { range.start.page(), pages });
    }
    std::optional<mem::PageRange> window;
    if (layout.hot_add_size_bytes > 0)
        window = mem::PageRange { mem::Gpa { layout.hot_add_base_gpa }.page(),
            mem::PageCount::from_bytes_floor(layout.hot_add_size_bytes) };
    auto const reserved = firmware::firmware_reserved_pages(layout.ram_bytes);
    device->m_map.emplace(VMM_TRY(mem::GuestPhysicalMap::create(boot, window, reserved)));
    if (window) {
        auto plan = VMM_TRY(mem::MemslotPlan::make(*window, mem::DEFAULT_MAX_HOT_ADD_MEMSLOTS, FIRST_HOT_ADD_SLOT));
        device->m_memslots.emplace(VMM_TRY(
            mem::OnDemandMemslots::create(setup.memslot_sink, plan, setup.hot_add_host, setup.guest_memory)));
    }
    device->m_engine = std::make_unique<hv_balloon::DynamicMemory>(*device->m_map, setup.discard,
        device->m_memslots ? &*device->m_memslots : nullptr, config);
    device->m_engine->set_event_sink(std::move(events));
    device->m_engine->on_tick(Clock::now());
    // Everything that can fail comes before the registration, so a failure never leaves the
    // VMBus host holding an engine that is about to be freed.
    VMM_TRY(device->start_ticking(loop));
    VMM_TRY(device->m_vmbus.with_host([&](vmbus::VmbusHost& host) { return host.add_device(*device->m_engine); }));
    device->m_registered = true;
    return device;
}

// The one place the tick is armed (a fixed period today).
Result<void> DmDevice::start_ticking(EventLoop& loop)
{
    m_tick = VMM_TRY(loop.create_timer([this] { tick(); }));
    return m_tick.arm(TICK_PERIOD, TICK_PERIOD);
}

void DmDevice::tick()
{
    with_engine([](hv_balloon::DynamicMemory& engine) { engine.on_tick(Clock::now()); });
}

hv_balloon::DmStatus DmDevice::reset()
{
    m_tick = {};
    auto status = m_vmbus.with_host([&](vmbus::VmbusHost& host) {
        if (!m_reset && m_registered) {
            m_engine->on_machine_reset();
            host.reset();
            host.rescind(*m_engine); // Not offered after the reset: the host just forgets it.
        }
        m_reset = true;
        return m_engine->status();
    });
    if (m_memslots)
        if (auto removed = m_memslots->reset(); !removed)
            log::error("dm", "removing the hot-add memory slots at reset: {}", removed.error());
    return status;
}

DmDevice::~DmDevice()
{
    if (m_engine)
        reset();
}

} // namespace vmm

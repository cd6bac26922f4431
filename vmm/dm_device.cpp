// SPDX-License-Identifier: MIT
// DmDevice: one boot's DM engine, its memory-map state, VMBus registration and deadline timer.
#include "vmm/dm_device.hpp"

#include "base/log.hpp"
#include "firmware/e820.hpp"

namespace vmm {

namespace {
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

hv_balloon::PolicyConfig policy_config_from(DynamicMemorySection const& section)
{
    auto const mib = [](u64 n) { return mem::PageCount::from_bytes_floor(n << 20); };
    hv_balloon::PolicyConfig policy;
    policy.mode = section.auto_mode ? hv_balloon::PolicyMode::Auto : hv_balloon::PolicyMode::Manual;
    policy.min = mib(section.min_mib);
    policy.max = mib(section.max_mib);
    policy.buffer_percent = static_cast<std::uint32_t>(section.buffer_percent);
    policy.weight = static_cast<std::uint32_t>(section.weight);
    policy.min_step = mib(section.min_step_mib);
    policy.min_interval = std::chrono::milliseconds { section.min_interval_ms };
    policy.hysteresis_percent = static_cast<std::uint32_t>(section.hysteresis_percent);
    policy.shrink_delay = std::chrono::milliseconds { section.shrink_delay_ms };
    policy.linux_floor = true;
    return policy;
}

DmDevice::DmDevice(VmbusGlue& vmbus)
    : m_vmbus(vmbus)
{
}

Result<std::unique_ptr<DmDevice>> DmDevice::create(DmDeviceSetup const& setup, hv_balloon::DmConfig const& config,
    EventLoop& loop, hv_balloon::DynamicMemory::EventSink events, hv_balloon::PolicyConfig const& policy)
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
    VMM_TRY(device->m_engine->set_policy(policy));
    // Everything that can fail comes before the registration, so a failure never leaves the
    // VMBus host holding an engine that is about to be freed.
    VMM_TRY(device->start_ticking(loop));
    VMM_TRY(device->m_vmbus.with_host([&](vmbus::VmbusHost& host) { return host.add_device(*device->m_clock); }));
    device->m_registered = true;
    return device;
}

// No periodic tick: the timer is created disarmed and DmClock (the device the VMBus host sees,
// and with_engine()'s wrapper) arms it for the engine's next deadline only, so an idle VM gets
// no DM wake-ups at all.
Result<void> DmDevice::start_ticking(EventLoop& loop)
{
    m_tick = VMM_TRY(loop.create_timer([this] { tick(); }));
    m_clock = std::make_unique<DmClock>(*m_engine, m_tick);
    return {};
}

void DmDevice::tick()
{
    with_engine([this](hv_balloon::DynamicMemory&) { m_clock->expired(); });
}

hv_balloon::DmStatus DmDevice::reset()
{
    auto status = m_vmbus.with_host([&](vmbus::VmbusHost& host) {
        if (!m_reset && m_registered) {
            m_size_at_reset = m_engine->status().current;
            m_engine->on_machine_reset();
            host.reset(); // Its on_close() still reaches m_clock, which disarms the timer.
            host.rescind(*m_clock); // Not offered after the reset: the host just forgets it.
        }
        m_reset = true;
        return m_engine->status();
    });
    m_tick = {}; // After the host let go of m_clock (loop thread: the timer cannot be running).
    if (m_memslots)
        if (auto removed = m_memslots->reset(); !removed)
            log::error("dm", "removing the hot-add memory slots at reset: {}", removed.error());
    return status;
}

std::uint32_t DmDevice::cold_discard(std::span<std::uint64_t const> ranges)
{
    std::uint32_t accepted = 0;
    with_engine([&](hv_balloon::DynamicMemory& engine) { accepted = engine.on_cold_discard(ranges).accepted; });
    return accepted;
}

DmDevice::~DmDevice()
{
    if (m_engine)
        reset();
}

} // namespace vmm

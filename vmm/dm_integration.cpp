// SPDX-License-Identifier: MIT
// DmIntegration: per-boot Dynamic Memory engine, its deadline timer, and the REST backend over it.
#include "vmm/dm_integration.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "base/log.hpp"
#include "firmware/e820.hpp"
#include "vmm/api/api_events.hpp"

namespace vmm {

namespace {
using Clock = std::chrono::steady_clock;
// Progress events at most ~10 per second (vmm/api/api_events.hpp).
constexpr std::chrono::milliseconds PROGRESS_INTERVAL { 100 };
// Recommended safe floor (vmm/api/api_backend.hpp MemoryInfo::floor_mib).
constexpr u64 FLOOR_MIN_MIB = 128;

u64 pages_to_mib(mem::PageCount pages) { return pages.mib(); }
} // namespace

DmIntegration::DmIntegration(Config const& config, EventLoop& loop, api::EventHub& hub, Clock::time_point start)
    : m_config(config)
    , m_loop(loop)
    , m_hub(hub)
    , m_start(start)
{
}

DmIntegration::~DmIntegration() = default;

u64 DmIntegration::uptime_ms(Clock::time_point at) const
{
    if (at < m_start)
        return 0;
    return static_cast<u64>(std::chrono::duration_cast<std::chrono::milliseconds>(at - m_start).count());
}

Result<void> DmIntegration::build(PerMachine& per, Machine& machine)
{
    auto const& layout = machine.layout();
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
    per.map.emplace(VMM_TRY(mem::GuestPhysicalMap::create(boot, window, reserved)));
    if (window) {
        auto plan = VMM_TRY(mem::MemslotPlan::make(*window, mem::DEFAULT_MAX_HOT_ADD_MEMSLOTS, FIRST_HOT_ADD_SLOT));
        auto window_host = std::span<std::byte> { const_cast<std::byte*>(machine.hot_add_window().bytes().data()),
            machine.hot_add_window().bytes().size() };
        per.memslots.emplace(VMM_TRY(mem::OnDemandMemslots::create(machine.memslot_sink(), plan, window_host,
            &machine.guest_memory())));
    }
    hv_balloon::DmConfig dm = hv_balloon::DmConfig::linux_profile();
    dm.post_connect_delay = std::chrono::milliseconds { m_config.dynamic_memory.post_connect_delay_ms };
    // This host emulates the guest kernel (~3.5 M instr/s, ms per page touched): measured, 64 Ki
    // unballooned pages and onlining 128 MiB blocks each exceed the engine's defaults (10 s, 10 s +
    // 6 s per block). Late replies only delay failure detection, so wait generously.
    dm.balloon_reply_timeout = std::max<hv_balloon::Duration>(dm.balloon_reply_timeout, std::chrono::seconds { 120 });
    dm.unballoon_reply_timeout = std::max<hv_balloon::Duration>(dm.unballoon_reply_timeout, std::chrono::seconds { 120 });
    dm.hot_add_reply_timeout_base = std::max<hv_balloon::Duration>(dm.hot_add_reply_timeout_base, std::chrono::seconds { 60 });
    dm.hot_add_reply_timeout_per_block = std::max<hv_balloon::Duration>(dm.hot_add_reply_timeout_per_block, std::chrono::seconds { 60 });
    if (m_config.dynamic_memory.max_request_pages > 0)
        dm.max_balloon_pages_per_request = mem::PageCount { m_config.dynamic_memory.max_request_pages };
    // A fixed instance GUID: one DM device per VM ("microvmm-dm-0001" in ASCII).
    dm.instance = vmbus::Guid { { 'm', 'i', 'c', 'r', 'o', 'v', 'm', 'm', '-', 'd', 'm', '-', '0', '0', '0', '1' } };
    per.engine = std::make_unique<hv_balloon::DynamicMemory>(*per.map, machine.discard_backend(),
        per.memslots ? &*per.memslots : nullptr, dm);
    per.engine->set_event_sink([this](hv_balloon::DmEvent const& event) { on_event(event); });
    per.engine->on_tick(Clock::now());
    auto* vmbus = machine.vmbus();
    if (vmbus == nullptr)
        return fail(Errc::Config, "dynamic_memory needs [hyperv] enabled");
    // No periodic tick: DmClock arms the timer for the engine's next deadline only.
    per.tick = VMM_TRY(m_loop.create_timer([this] {
        with_engine([this](hv_balloon::DynamicMemory&) { m_current->clock->expired(); });
    }));
    per.clock = std::make_unique<DmClock>(*per.engine, per.tick);
    VMM_TRY(vmbus->with_host([&](vmbus::VmbusHost& host) -> Result<u32> { return host.add_device(*per.clock); }));
    return {};
}

void DmIntegration::attach(Machine& machine, u64 boot_count)
{
    {
        std::lock_guard guard { m_lock };
        m_boot_count = boot_count;
        m_machine = &machine;
    }
    if (!m_config.dynamic_memory.enabled)
        return;
    auto per = std::make_unique<PerMachine>();
    per->machine = &machine;
    if (auto built = build(*per, machine); !built) {
        log::error("dm", "dynamic memory device not available: {}", built.error());
        return;
    }
    log::info("dm", "dynamic memory device registered (boot {} MiB, max {} MiB)", m_config.machine.memory_mib,
        per->engine->status().max.mib());
    std::lock_guard guard { m_lock };
    m_current = std::move(per);
}

void DmIntegration::detach(Machine& machine, bool guest_reset)
{
    std::unique_ptr<PerMachine> per;
    {
        std::lock_guard guard { m_lock };
        if (m_current && m_current->machine == &machine)
            per = std::move(m_current);
        if (m_machine == &machine)
            m_machine = nullptr;
    }
    if (guest_reset)
        ++m_guest_reboots;
    u64 boot_count = 0;
    {
        std::lock_guard guard { m_lock };
        boot_count = m_boot_count;
    }
    if (!per) {
        if (guest_reset)
            api::publish_guest_reboot(m_hub, boot_count);
        return;
    }
    // Reset order (dynamic_memory.hpp): the engine first, then the VMBus host (whose on_close()
    // still reaches the DmClock, so its timer goes only after).
    machine.vmbus()->with_host([&](vmbus::VmbusHost& host) {
        per->engine->on_machine_reset();
        host.reset();
        std::lock_guard guard { m_lock };
        m_last = per->engine->status();
    });
    per->clock.reset();
    per->tick = {};
    if (per->memslots)
        (void)per->memslots->reset();
    if (guest_reset)
        api::publish_guest_reboot(m_hub, boot_count);
}

template<typename F>
bool DmIntegration::with_engine(F&& action)
{
    std::lock_guard guard { m_lock };
    if (!m_current || !m_current->engine)
        return false;
    auto& engine = *m_current->engine;
    auto& clock = *m_current->clock;
    m_current->machine->vmbus()->with_host([&](vmbus::VmbusHost& host) {
        clock.tick(); // The engine timestamps with the latest tick.
        action(engine);
        clock.rearm(); // A new target may start a wait.
        // The engine's sends (tick, new target) may find the host->guest ring broken; close such
        // channels now instead of at the guest's next VMBus message.
        host.close_broken_channels();
    });
    return true;
}

api::Operation DmIntegration::to_api(hv_balloon::DmOperation const& op) const
{
    api::Operation out;
    out.id = op.id;
    out.kind = std::string { hv_balloon::operation_kind_name(op.kind) };
    out.from_mib = pages_to_mib(op.from);
    out.target_mib = pages_to_mib(op.target);
    out.state = std::string { hv_balloon::operation_state_name(op.state) };
    out.done_mib = pages_to_mib(op.done);
    out.remaining_mib = op.requested > op.done ? pages_to_mib(op.requested - op.done) : 0;
    out.started_ms = uptime_ms(op.started_at);
    if (op.finished_at)
        out.finished_ms = uptime_ms(*op.finished_at);
    if (!op.reason.empty())
        out.reason = std::string { op.reason };
    return out;
}

void DmIntegration::on_event(hv_balloon::DmEvent const& event)
{
    using namespace hv_balloon;
    if (auto const* connected = std::get_if<DmConnected>(&event)) {
        api::publish_dm_connected(m_hub, true, connected->protocol_version);
    } else if (auto const* status = std::get_if<DmStatusReported>(&event)) {
        api::publish_status_report(m_hub, api::GuestStatus { status->report.num_avail.mib(),
                                              status->report.num_committed.mib(), 0 });
    } else if (auto const* progress = std::get_if<DmOperationProgress>(&event)) {
        auto op = to_api(progress->operation);
        std::lock_guard guard { m_ops_lock };
        m_ops[op.id] = op;
        auto const now = Clock::now();
        if (!m_last_progress || now - *m_last_progress >= PROGRESS_INTERVAL) {
            m_last_progress = now;
            api::publish_operation_progress(m_hub, op);
        }
    } else if (auto const* done = std::get_if<DmOperationDone>(&event)) {
        auto op = to_api(done->operation);
        {
            std::lock_guard guard { m_ops_lock };
            m_ops[op.id] = op;
            while (m_ops.size() > 64) // Bounded history: the oldest ids are forgotten.
                m_ops.erase(m_ops.begin());
        }
        api::publish_operation_done(m_hub, op);
    } else if (auto const* reset = std::get_if<DmGuestReset>(&event)) {
        if (reset->kind != ResetKind::MachineReset)
            api::publish_dm_connected(m_hub, false, 0);
    } else if (auto const* rejected = std::get_if<DmRejectedGuestRange>(&event)) {
        api::publish_rejected_guest_range(m_hub, mem::reject_reason_name(rejected->reason), rejected->start,
            rejected->count);
    }
}

api::VmInfo DmIntegration::vm_info()
{
    api::VmInfo info;
    info.state = "running";
    info.vcpus = m_config.machine.vcpus;
    info.uptime_ms = uptime_ms(Clock::now());
    std::lock_guard guard { m_lock };
    info.boot_count = m_boot_count;
    info.version = MICROVMM_VERSION;
    return info;
}

api::MemoryInfo DmIntegration::memory_info()
{
    auto info = dm_memory_info();
    // Under m_lock: detach() clears m_machine under it before the Machine is destroyed.
    std::lock_guard guard { m_lock };
    if (m_machine != nullptr) {
        if (auto use = m_machine->host_memory_use())
            info.host = api::HostMemory { use->boot_ram_resident_bytes, use->hot_add_resident_bytes };
        else
            VMM_GUEST_WARN("dm", "host memory use unavailable: {}", use.error()); // Per API request: rate-limited.
    }
    return info;
}

api::MemoryInfo DmIntegration::dm_memory_info()
{
    std::optional<hv_balloon::DmStatus> status;
    if (!with_engine([&](hv_balloon::DynamicMemory& engine) { status = engine.status(); })) {
        std::lock_guard guard { m_lock };
        status = m_last;
    }
    api::MemoryInfo info;
    info.boot_mib = m_config.machine.memory_mib;
    info.max_mib = std::max(m_config.machine.memory_mib, m_config.machine.max_memory_mib);
    info.target_mib = info.boot_mib;
    info.current_mib = info.boot_mib;
    info.floor_mib = std::max(FLOOR_MIN_MIB, info.boot_mib / 4);
    if (!status)
        return info;
    info.max_mib = status->max.mib();
    info.current_mib = status->current.mib();
    info.target_mib = status->target ? status->target->mib() : info.current_mib;
    info.ballooned_mib = status->ballooned.mib();
    info.hot_added_mib = status->hot_added.mib();
    info.dm_connected = status->connected;
    info.dm_protocol_version = status->protocol_version;
    if (status->guest_status) {
        auto age = status->guest_status_age.value_or(hv_balloon::Duration {});
        info.guest_status = api::GuestStatus { status->guest_status->num_avail.mib(),
            status->guest_status->num_committed.mib(),
            static_cast<u64>(std::chrono::duration_cast<std::chrono::milliseconds>(age).count()) };
        info.floor_mib = std::max(info.floor_mib, info.guest_status->committed_mib);
    }
    if (status->operation)
        info.operation = to_api(*status->operation);
    return info;
}

std::expected<api::Operation, api::SetTargetError> DmIntegration::set_target(std::uint64_t target_mib)
{
    auto const info = dm_memory_info(); // Limits only: no host figures (no /proc read per PUT).
    if (target_mib > info.max_mib)
        return std::unexpected(api::SetTargetError::AboveMax);
    if (target_mib < info.floor_mib)
        return std::unexpected(api::SetTargetError::BelowFloor);
    if (!info.dm_connected)
        return std::unexpected(api::SetTargetError::NotConnected);
    std::optional<Result<std::uint64_t>> started;
    std::optional<hv_balloon::DmOperation> op;
    bool const attached = with_engine([&](hv_balloon::DynamicMemory& engine) {
        started = engine.set_target_mib(target_mib);
        op = engine.status().operation;
    });
    if (!attached || !started || !*started || !op)
        return std::unexpected(api::SetTargetError::NotConnected);
    auto result = to_api(*op);
    std::lock_guard guard { m_ops_lock };
    m_ops[result.id] = result;
    return result;
}

std::optional<api::Operation> DmIntegration::operation(std::uint64_t id)
{
    std::optional<hv_balloon::DmOperation> current;
    with_engine([&](hv_balloon::DynamicMemory& engine) { current = engine.status().operation; });
    if (current && current->id == id)
        return to_api(*current);
    std::lock_guard guard { m_ops_lock };
    if (auto it = m_ops.find(id); it != m_ops.end())
        return it->second;
    return std::nullopt;
}

api::MemoryCounters DmIntegration::counters()
{
    std::optional<hv_balloon::DmStatus> status;
    if (!with_engine([&](hv_balloon::DynamicMemory& engine) { status = engine.status(); })) {
        std::lock_guard guard { m_lock };
        status = m_last;
    }
    api::MemoryCounters out;
    out.guest_reboots = m_guest_reboots;
    if (!status)
        return out;
    auto const& c = status->counters;
    out.operations_started = c.operations_started;
    out.operations_done = c.operations_done;
    out.operations_superseded = c.operations_superseded;
    out.operations_failed = c.operations_failed;
    out.operations_timed_out = c.operations_timed_out;
    for (auto n : c.rejected_ranges)
        out.rejected_guest_ranges += n;
    out.status_reports = c.status_reports;
    out.balloon_pages_total = c.balloon_pages_total;
    out.unballoon_pages_total = c.unballoon_pages_total;
    out.hot_added_pages_total = c.hot_added_pages_total;
    return out;
}

std::string DmIntegration::extra_metrics()
{
    std::uint32_t slots = 0;
    with_engine([&](hv_balloon::DynamicMemory& engine) { slots = engine.status().memslots_mapped; });
    return fmt::format("# HELP microvmm_hot_add_memslots KVM memory slots mapped in the hot-add window.\n"
                       "# TYPE microvmm_hot_add_memslots gauge\n"
                       "microvmm_hot_add_memslots {}\n",
        slots);
}

} // namespace vmm

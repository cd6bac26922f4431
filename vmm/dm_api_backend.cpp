// SPDX-License-Identifier: MIT
// DmApiBackend: REST status, targets, counters and events over each boot's DmDevice.
#include "vmm/dm_api_backend.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "base/log.hpp"
#include "vmm/api/api_events.hpp"
#include "vmm/api/api_json.hpp"

namespace vmm {

namespace {
// Progress events at most ~10 per second (vmm/api/api_events.hpp).
constexpr std::chrono::milliseconds PROGRESS_INTERVAL { 100 };
// Recommended safe floor (vmm/api/api_backend.hpp MemoryInfo::floor_mib).
constexpr u64 FLOOR_MIN_MIB = 128;
// Finished operations remembered for GET /memory/operations/{id}; older ids are forgotten.
constexpr std::size_t MAX_REMEMBERED_OPERATIONS = 64;
} // namespace

DmApiBackend::DmApiBackend(Config const& config, EventLoop& loop, api::EventHub& hub, Clock::time_point start)
    : m_config(config)
    , m_loop(loop)
    , m_hub(hub)
    , m_start(start)
    , m_dm(config.dynamic_memory)
{
}

// A device still attached is reset here, while the maps its events write into still exist
// (members die in reverse order: m_ops before m_device).
DmApiBackend::~DmApiBackend() { detach_device(false); }

u64 DmApiBackend::uptime_ms(Clock::time_point at) const
{
    if (at < m_start)
        return 0;
    return static_cast<u64>(std::chrono::duration_cast<std::chrono::milliseconds>(at - m_start).count());
}

Result<std::unique_ptr<DmDevice>> DmApiBackend::make_device(DmDeviceSetup const& setup)
{
    hv_balloon::PolicyConfig policy;
    {
        std::lock_guard guard { m_lock };
        policy = policy_config_from(m_dm);
    }
    return DmDevice::create(setup, dm_config_from(m_config.dynamic_memory), m_loop,
        [this](hv_balloon::DmEvent const& event) { on_event(event); }, policy);
}

void DmApiBackend::attach(Machine& machine, u64 boot_count)
{
    std::unique_ptr<DmDevice> device;
    if (m_config.dynamic_memory.enabled) {
        auto setup = DmDeviceSetup::of(machine);
        auto built = setup ? make_device(*setup) : std::unexpected(setup.error());
        if (built)
            device = std::move(*built);
        else
            log::error("dm", "dynamic memory device not available: {}", built.error());
        // Before the vCPUs start: the guest queries the capability once (hv_query_ext_cap).
        if (device && m_config.dynamic_memory.free_page_reporting)
            if (auto* partition = machine.partition())
                partition->set_memory_hint_sink(device.get());
    }
    attach_device(std::move(device), &machine, boot_count);
}

void DmApiBackend::attach_device(std::unique_ptr<DmDevice> device, Machine* machine, u64 boot_count)
{
    if (device) {
        std::optional<hv_balloon::DmStatus> status;
        device->with_engine([&](hv_balloon::DynamicMemory& engine) { status = engine.status(); });
        log::info("dm", "dynamic memory device registered (boot {} MiB, max {} MiB)", m_config.machine.memory_mib,
            status ? status->max.mib() : 0);
    }
    {
        std::lock_guard guard { m_lock };
        m_boot_count = boot_count;
        m_device = std::move(device);
        // A host ceiling still leased binds the new boot too, for what is left of its lease.
        if (m_device && m_ceiling) {
            auto const now = Clock::now();
            if (m_ceiling->expires > now)
                m_device->with_engine([&](hv_balloon::DynamicMemory& engine) {
                    engine.set_ceiling(mem::PageCount::from_bytes_floor(m_ceiling->mib << 20), m_ceiling->expires - now);
                });
            else
                m_ceiling.reset();
        }
        // on_reboot_size = "last": the new boot is driven to the size the guest had when it
        // rebooted, within min/max, as soon as its DM driver connects (the boot RAM itself is the
        // configured memory_mib; docs/auto-memory.md).
        if (m_device && m_dm.reboot_last_size && m_last_size) {
            u64 const last = std::clamp(m_last_size->mib(), m_dm.min_mib, m_dm.max_mib);
            if (last != m_config.machine.memory_mib) {
                m_device->with_engine([&](hv_balloon::DynamicMemory& engine) {
                    if (auto set = engine.set_target_mib(last); !set)
                        log::warn("dm", "on_reboot_size = \"last\": {}", set.error());
                });
                log::info("dm", "on_reboot_size = \"last\": target {} MiB after the reboot", last);
            }
        }
    }
    std::lock_guard guard { m_host_lock };
    m_machine = machine;
}

void DmApiBackend::detach(Machine&, bool guest_reset) { detach_device(guest_reset); }

void DmApiBackend::detach_device(bool guest_reset)
{
    {
        std::lock_guard guard { m_host_lock }; // Waits for a /proc read in progress.
        if (m_machine != nullptr)
            if (auto* partition = m_machine->partition()) {
                m_hyperv_past += partition->stats();
                partition->set_memory_hint_sink(nullptr); // The vCPUs stopped: no hint in flight.
            }
        m_machine = nullptr;
    }
    std::unique_ptr<DmDevice> device;
    u64 boot_count = 0;
    {
        // DmBackend, then (inside reset) VmbusGlue: the same order as every API call, and the
        // last status is published in the same step as the device disappears.
        std::lock_guard guard { m_lock };
        device = std::move(m_device);
        if (device) {
            m_last = device->reset();
            if (guest_reset)
                m_last_size = device->size_at_reset();
        }
        boot_count = m_boot_count;
    }
    device.reset();
    if (guest_reset) {
        ++m_guest_reboots;
        api::publish_guest_reboot(m_hub, boot_count);
    }
}

template<typename F>
bool DmApiBackend::with_engine(F&& action)
{
    std::lock_guard guard { m_lock };
    return m_device && m_device->with_engine(std::forward<F>(action));
}

std::optional<hv_balloon::DmStatus> DmApiBackend::status()
{
    std::optional<hv_balloon::DmStatus> status;
    std::lock_guard guard { m_lock };
    if (!m_device || !m_device->with_engine([&](hv_balloon::DynamicMemory& engine) { status = engine.status(); }))
        status = m_last;
    return status;
}

api::Operation DmApiBackend::to_api(hv_balloon::DmOperation const& op) const
{
    api::Operation out;
    out.id = op.id;
    out.kind = std::string { hv_balloon::operation_kind_name(op.kind) };
    out.from_mib = op.from.mib();
    out.target_mib = op.target.mib();
    out.state = std::string { hv_balloon::operation_state_name(op.state) };
    out.done_mib = op.done.mib();
    out.remaining_mib = op.requested > op.done ? (op.requested - op.done).mib() : 0;
    out.started_ms = uptime_ms(op.started_at);
    if (op.finished_at)
        out.finished_ms = uptime_ms(*op.finished_at);
    if (!op.reason.empty())
        out.reason = std::string { op.reason };
    return out;
}

void DmApiBackend::on_event(hv_balloon::DmEvent const& event)
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
            while (m_ops.size() > MAX_REMEMBERED_OPERATIONS)
                m_ops.erase(m_ops.begin());
        }
        api::publish_operation_done(m_hub, op);
    } else if (auto const* reset = std::get_if<DmGuestReset>(&event)) {
        if (reset->kind != ResetKind::MachineReset)
            api::publish_dm_connected(m_hub, false, 0);
    } else if (auto const* decided = std::get_if<DmPolicyDecided>(&event)) {
        auto const& d = decided->decision;
        m_hub.publish("policy_decision",
            { { "from_mib", decided->from.mib() }, { "target_mib", d.target ? d.target->mib() : 0 },
                { "demand_mib", d.demand ? d.demand->mib() : 0 }, { "reason", d.reason } });
    } else if (auto const* ceiling = std::get_if<DmCeilingChanged>(&event)) {
        if (ceiling->limit)
            m_hub.publish("ceiling_changed",
                { { "mib", ceiling->limit->mib() },
                    { "lease_ms", std::chrono::duration_cast<std::chrono::milliseconds>(ceiling->lease).count() } });
        else
            m_hub.publish("ceiling_changed", { { "mib", nullptr }, { "lease_ms", 0 } });
    } else if (auto const* expired = std::get_if<DmCeilingExpired>(&event)) {
        m_hub.publish("ceiling_expired", { { "mib", expired->limit.mib() } });
    } else if (auto const* rejected = std::get_if<DmRejectedGuestRange>(&event)) {
        api::publish_rejected_guest_range(m_hub, mem::reject_reason_name(rejected->reason), rejected->start,
            rejected->count);
    }
}

api::VmInfo DmApiBackend::vm_info()
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

api::MemoryInfo DmApiBackend::memory_info()
{
    auto info = dm_memory_info();
    // Under m_host_lock only: detach() clears m_machine under it before the Machine goes, and
    // neither the DM tick nor a guest message needs it while /proc is read.
    std::lock_guard guard { m_host_lock };
    if (m_machine != nullptr) {
        if (auto use = m_machine->host_memory_use())
            info.host = api::HostMemory { use->boot_ram_resident_bytes, use->hot_add_resident_bytes };
        else
            VMM_GUEST_WARN("dm", "host memory use unavailable: {}", use.error()); // Per API request: rate-limited.
    }
    return info;
}

api::MemoryInfo DmApiBackend::dm_memory_info()
{
    auto const status = this->status();
    api::MemoryInfo info;
    info.boot_mib = m_config.machine.memory_mib;
    info.max_mib = std::max(m_config.machine.memory_mib, m_config.machine.max_memory_mib);
    info.target_mib = info.boot_mib;
    info.current_mib = info.boot_mib;
    info.floor_mib = std::max(FLOOR_MIN_MIB, info.boot_mib / 4);
    {
        std::lock_guard guard { m_lock };
        info.policy = policy();
    }
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
    if (status->policy_counters.evaluations > 0) {
        auto const& d = status->policy_decision;
        api::PolicyDecision out;
        out.reason = std::string { d.reason };
        out.at_ms = uptime_ms(d.at);
        auto mib = [](std::optional<mem::PageCount> p) { return p ? std::optional<u64> { p->mib() } : std::nullopt; };
        out.demand_mib = mib(d.demand);
        out.desired_mib = mib(d.desired);
        out.wanted_mib = mib(d.wanted);
        out.target_mib = mib(d.target);
        info.last_decision = out;
    }
    // The engine's lease, if it still holds one (it expires it at its own deadline).
    auto const now = Clock::now();
    if (status->ceiling && status->ceiling->expires > now) {
        api::MemoryCeiling ceiling;
        ceiling.mib = status->ceiling->limit.mib();
        ceiling.expires_in_ms = static_cast<u64>(
            std::chrono::ceil<std::chrono::milliseconds>(status->ceiling->expires - now).count());
        std::lock_guard guard { m_lock };
        ceiling.lease_ms = m_ceiling ? m_ceiling->lease_ms : 0;
        ceiling.applied = m_dm.auto_mode && m_device != nullptr;
        info.ceiling = ceiling;
    }
    return info;
}

api::MemoryPolicy DmApiBackend::policy() const
{
    api::MemoryPolicy out;
    out.mode = m_dm.auto_mode ? "auto" : "manual";
    out.min_mib = m_dm.min_mib;
    out.max_mib = m_dm.max_mib;
    out.buffer_percent = m_dm.buffer_percent;
    out.weight = m_dm.weight;
    out.min_step_mib = m_dm.min_step_mib;
    out.min_interval_ms = m_dm.min_interval_ms;
    out.hysteresis_percent = m_dm.hysteresis_percent;
    out.shrink_delay_ms = m_dm.shrink_delay_ms;
    out.on_reboot_size = m_dm.reboot_last_size ? "last" : "boot";
    return out;
}

std::expected<api::MemoryPolicy, std::string> DmApiBackend::set_policy(api::PolicyUpdate const& update)
{
    constexpr u64 MAX_MS = 24ull * 3600 * 1000; // As the config's timeouts: a day.
    std::lock_guard guard { m_lock };
    DynamicMemorySection next = m_dm;
    if (update.mode)
        next.auto_mode = *update.mode == "auto";
    if (update.on_reboot_size)
        next.reboot_last_size = *update.on_reboot_size == "last";
    struct Bounded { char const* name; std::optional<u64> const& value; u64 lowest; u64 highest; u64& out; };
    Bounded const fields[] = {
        { "min_mib", update.min_mib, 1, MAX_MEMORY_MIB_LIMIT, next.min_mib },
        { "max_mib", update.max_mib, 1, MAX_MEMORY_MIB_LIMIT, next.max_mib },
        { "buffer_percent", update.buffer_percent, 0, hv_balloon::MAX_BUFFER_PERCENT, next.buffer_percent },
        { "weight", update.weight, 0, hv_balloon::MAX_WEIGHT, next.weight },
        { "min_step_mib", update.min_step_mib, 1, MAX_MEMORY_MIB_LIMIT, next.min_step_mib },
        { "min_interval_ms", update.min_interval_ms, 0, MAX_MS, next.min_interval_ms },
        { "hysteresis_percent", update.hysteresis_percent, 0, hv_balloon::MAX_HYSTERESIS_PERCENT, next.hysteresis_percent },
        { "shrink_delay_ms", update.shrink_delay_ms, 0, MAX_MS, next.shrink_delay_ms },
    };
    for (auto const& field : fields) {
        if (!field.value)
            continue;
        if (*field.value < field.lowest || *field.value > field.highest)
            return std::unexpected(fmt::format("field '{}' must be {}..{} (got {})", field.name, field.lowest,
                field.highest, *field.value));
        field.out = *field.value;
    }
    if (auto checked = check_dynamic_memory(next, m_config.machine); !checked)
        return std::unexpected(std::string { checked.error().what() });
    std::optional<Result<void>> applied;
    if (m_device)
        m_device->with_engine([&](hv_balloon::DynamicMemory& engine) { applied = engine.set_policy(policy_config_from(next)); });
    if (applied && !*applied)
        return std::unexpected(std::string { applied->error().message() });
    m_dm = next;
    auto out = policy();
    log::info("dm", "memory policy now {} ({}..{} MiB, buffer {} %)", out.mode, out.min_mib, out.max_mib, out.buffer_percent);
    m_hub.publish("policy_changed", api::to_json(out));
    return out;
}

std::expected<std::optional<api::MemoryCeiling>, std::string> DmApiBackend::set_ceiling(
    std::optional<api::CeilingRequest> const& request)
{
    if (!m_config.dynamic_memory.enabled)
        return std::unexpected(std::string("[dynamic_memory] is not enabled: there is no target to bound"));
    if (request && request->mib > (UINT64_MAX >> 20))
        return std::unexpected(fmt::format("ceiling {} MiB is out of range", request->mib));
    auto const now = Clock::now();
    std::chrono::milliseconds const lease { request ? request->lease_ms : 0 };
    std::optional<api::MemoryCeiling> out;
    std::lock_guard guard { m_lock };
    if (request) {
        m_ceiling = CeilingLease { request->mib, request->lease_ms, now + lease };
        out = api::MemoryCeiling { request->mib, request->lease_ms, request->lease_ms, m_dm.auto_mode && m_device };
    } else {
        m_ceiling.reset();
    }
    // Between boots there is no engine: attach_device() hands the next one what is left.
    if (m_device)
        m_device->with_engine([&](hv_balloon::DynamicMemory& engine) {
            engine.set_ceiling(
                request ? std::optional { mem::PageCount::from_bytes_floor(request->mib << 20) } : std::nullopt, lease);
        });
    return out;
}

std::expected<api::Operation, api::SetTargetError> DmApiBackend::set_target(std::uint64_t target_mib)
{
    {
        std::lock_guard guard { m_lock };
        if (m_dm.auto_mode)
            return std::unexpected(api::SetTargetError::AutoMode);
    }
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
        engine.on_tick(Clock::now());
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

std::optional<api::Operation> DmApiBackend::operation(std::uint64_t id)
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

api::MemoryCounters DmApiBackend::counters()
{
    auto const status = this->status();
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
    out.reported_pages_total = c.cold_discard_pages_total;
    out.reporting_refused = c.cold_discard_refused;
    auto const& p = status->policy_counters;
    out.auto_grow_decisions = p.grow_decisions;
    out.auto_shrink_decisions = p.shrink_decisions;
    out.auto_ignored_reports = p.ignored_reports;
    out.ceiling_changes = p.ceiling_changes;
    out.ceiling_expiries = p.ceiling_expiries;
    out.under_pressure_ms = static_cast<u64>(std::chrono::duration_cast<std::chrono::milliseconds>(p.under_pressure).count());
    return out;
}

hyperv::PartitionStats DmApiBackend::hyperv_totals()
{
    std::lock_guard guard { m_host_lock };
    auto totals = m_hyperv_past;
    if (m_machine != nullptr)
        if (auto const* partition = m_machine->partition())
            totals += partition->stats();
    return totals;
}

std::string DmApiBackend::extra_metrics()
{
    std::uint32_t slots = 0;
    with_engine([&](hv_balloon::DynamicMemory& engine) { slots = engine.status().memslots_mapped; });
    std::string out = fmt::format("# HELP microvmm_hot_add_memslots KVM memory slots mapped in the hot-add window.\n"
                                  "# TYPE microvmm_hot_add_memslots gauge\n"
                                  "microvmm_hot_add_memslots {}\n",
        slots);
    if (!m_config.hyperv.enabled)
        return out;
    // The user-space Hyper-V partition (vmm/hyperv/partition.hpp PartitionStats), every boot.
    auto const h = hyperv_totals();
    auto counter = [&](char const* name, char const* help, std::uint64_t value) {
        out += fmt::format("# HELP {0} {1}\n# TYPE {0} counter\n{0} {2}\n", name, help, value);
    };
    counter("microvmm_hyperv_msr_faults_total", "Synthetic MSR accesses answered with #GP.", h.msr_faults);
    counter("microvmm_hyperv_hypercalls_total", "Hypercalls dispatched.", h.hypercalls);
    counter("microvmm_hyperv_hypercall_failures_total", "Hypercalls answered with a failure status.",
        h.hypercall_failures);
    counter("microvmm_hyperv_synic_messages_delivered_total", "SynIC messages written into a slot.",
        h.messages_delivered);
    counter("microvmm_hyperv_synic_messages_refused_total", "SynIC posts refused (slot busy or SynIC disabled).",
        h.messages_refused);
    counter("microvmm_hyperv_synic_events_signalled_total", "SynIC event flags newly set.", h.events_signalled);
    counter("microvmm_hyperv_ipis_sent_total", "IPIs sent by the IPI hypercalls.", h.ipis_sent);
    counter("microvmm_hyperv_stimer_programmed_total", "Synthetic timer MSR writes that armed a timer (guest clock events).",
        h.stimer_programmed);
    counter("microvmm_hyperv_stimer_expirations_total", "Synthetic timer expirations delivered to the guest.",
        h.stimer_expirations);
    return out;
}

} // namespace vmm

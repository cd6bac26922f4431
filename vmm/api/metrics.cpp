// SPDX-License-Identifier: MIT
// GET /metrics: sizes in bytes and times in seconds, as Prometheus naming conventions ask
// (prometheus.io/docs/practices/naming); counters end in _total.
#include "vmm/api/metrics.hpp"

#include <fmt/format.h>

#include "base/types.hpp"
#include "vmm/api/api_router.hpp"
#include "vmm/api/event_hub.hpp"

namespace vmm::api {

namespace {

class Writer {
public:
    void metric(char const* name, char const* type, char const* help, std::uint64_t value)
    {
        header(name, type, help);
        m_out += fmt::format("{} {}\n", name, value);
    }
    void header(char const* name, char const* type, char const* help)
    {
        m_out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    }
    void sample(char const* name, char const* labels, std::uint64_t value)
    {
        m_out += fmt::format("{}{{{}}} {}\n", name, labels, value);
    }
    std::string take() { return std::move(m_out); }

private:
    std::string m_out;
};

} // namespace

std::string render_metrics(VmInfo const& vm, MemoryInfo const& memory, MemoryCounters const& counters,
    ServerStats const& stats, EventHub const& hub)
{
    Writer w;
    w.metric("microvmm_vm_uptime_seconds", "gauge", "Time since the VM started.", vm.uptime_ms / 1000);
    w.metric("microvmm_vm_vcpus", "gauge", "Number of vCPUs.", vm.vcpus);
    w.metric("microvmm_vm_boots_total", "counter", "Guest boots, including reboots.", vm.boot_count);

    w.metric("microvmm_memory_boot_bytes", "gauge", "Guest RAM at boot.", memory.boot_mib * MIB);
    w.metric("microvmm_memory_max_bytes", "gauge", "Largest allowed memory target.", memory.max_mib * MIB);
    w.metric("microvmm_memory_floor_bytes", "gauge", "Smallest allowed memory target.", memory.floor_mib * MIB);
    w.metric("microvmm_memory_target_bytes", "gauge", "Requested guest memory size.", memory.target_mib * MIB);
    w.metric("microvmm_memory_current_bytes", "gauge", "Guest-visible memory: boot - ballooned + hot-added.",
        memory.current_mib * MIB);
    w.metric("microvmm_memory_ballooned_bytes", "gauge", "Memory the guest has given back.",
        memory.ballooned_mib * MIB);
    w.metric("microvmm_memory_hot_added_bytes", "gauge", "Memory hot-added to the guest.",
        memory.hot_added_mib * MIB);
    if (memory.host) {
        w.header("microvmm_host_resident_bytes", "gauge",
            "Host memory backing guest RAM now: the boot-RAM memfd's blocks, the hot-add window's resident pages.");
        w.sample("microvmm_host_resident_bytes", "region=\"boot_ram\"", memory.host->boot_ram_resident_bytes);
        w.sample("microvmm_host_resident_bytes", "region=\"hot_add\"", memory.host->hot_add_resident_bytes);
    }
    w.metric("microvmm_dm_connected", "gauge", "1 when the guest's Dynamic Memory driver is connected.",
        memory.dm_connected ? 1 : 0);
    if (memory.guest_status) {
        w.metric("microvmm_guest_available_bytes", "gauge", "Guest-reported available memory.",
            memory.guest_status->available_mib * MIB);
        w.metric("microvmm_guest_committed_bytes", "gauge", "Guest-reported committed memory.",
            memory.guest_status->committed_mib * MIB);
        w.metric("microvmm_guest_status_age_seconds", "gauge", "Age of the last guest status report.",
            memory.guest_status->age_ms / 1000);
    }

    w.metric("microvmm_memory_operations_started_total", "counter", "Memory target operations started.",
        counters.operations_started);
    w.header("microvmm_memory_operations_finished_total", "counter", "Memory target operations finished, by result.");
    w.sample("microvmm_memory_operations_finished_total", "result=\"done\"", counters.operations_done);
    w.sample("microvmm_memory_operations_finished_total", "result=\"superseded\"", counters.operations_superseded);
    w.sample("microvmm_memory_operations_finished_total", "result=\"failed\"", counters.operations_failed);
    w.sample("microvmm_memory_operations_finished_total", "result=\"timed_out\"", counters.operations_timed_out);
    w.metric("microvmm_dm_rejected_guest_ranges_total", "counter",
        "Page ranges from the guest that were refused (invalid, duplicate or stale).", counters.rejected_guest_ranges);
    w.metric("microvmm_dm_status_reports_total", "counter", "DM status reports received.", counters.status_reports);
    w.metric("microvmm_guest_reboots_total", "counter", "Guest reboots seen by the DM device.", counters.guest_reboots);
    w.metric("microvmm_dm_ballooned_pages_total", "counter", "4 KiB pages ballooned out of the guest, ever.",
        counters.balloon_pages_total);
    w.metric("microvmm_dm_unballooned_pages_total", "counter", "4 KiB pages returned to the guest, ever.",
        counters.unballoon_pages_total);
    w.metric("microvmm_dm_hot_added_pages_total", "counter", "4 KiB pages hot-added, ever.",
        counters.hot_added_pages_total);

    w.metric("microvmm_memory_auto_mode", "gauge", "1 when the memory policy is \"auto\".",
        memory.policy.mode == "auto" ? 1 : 0);
    w.header("microvmm_memory_auto_decisions_total", "counter", "Memory targets set by auto mode, by direction.");
    w.sample("microvmm_memory_auto_decisions_total", "direction=\"grow\"", counters.auto_grow_decisions);
    w.sample("microvmm_memory_auto_decisions_total", "direction=\"shrink\"", counters.auto_shrink_decisions);
    w.metric("microvmm_memory_auto_ignored_reports_total", "counter",
        "Guest status reports auto mode would not act on (stale).", counters.auto_ignored_reports);
    w.metric("microvmm_memory_under_pressure_seconds_total", "counter",
        "Auto mode: time the guest wanted more memory (use plus buffer) than it had.", counters.under_pressure_ms / 1000);
    w.metric("microvmm_memory_ceiling_bytes", "gauge",
        "Host-wide arbiter's ceiling on the auto-mode target (0: none in force).",
        memory.ceiling ? memory.ceiling->mib * MIB : 0);
    w.metric("microvmm_memory_ceiling_changes_total", "counter", "Host ceilings set to a new value (not renewals).",
        counters.ceiling_changes);
    w.metric("microvmm_memory_ceiling_expiries_total", "counter",
        "Host ceiling leases that lapsed without renewal (the arbiter stopped).", counters.ceiling_expiries);
    w.metric("microvmm_memory_reclaimed_by_balloon_bytes_total", "counter",
        "Memory the guest gave back by ballooning, ever (this boot).", counters.balloon_pages_total * 4096);

    w.metric("microvmm_memory_reclaimed_by_reporting_bytes_total", "counter",
        "Guest free memory discarded through free page reporting (cold discard hints), ever (this boot).",
        counters.reported_pages_total * 4096);
    w.metric("microvmm_dm_reporting_refused_total", "counter",
        "Free page reporting calls stopped at a range the guest does not own.", counters.reporting_refused);

    w.metric("microvmm_api_requests_total", "counter", "HTTP requests parsed.", stats.requests.load());
    w.header("microvmm_api_responses_total", "counter", "HTTP error responses, by class.");
    w.sample("microvmm_api_responses_total", "class=\"4xx\"", stats.responses_4xx.load());
    w.sample("microvmm_api_responses_total", "class=\"5xx\"", stats.responses_5xx.load());
    w.metric("microvmm_api_connections_accepted_total", "counter", "API connections accepted.",
        stats.connections_accepted.load());
    w.metric("microvmm_api_connections_rejected_total", "counter", "API connections refused over the limit.",
        stats.connections_rejected.load());
    w.metric("microvmm_api_connections_timed_out_total", "counter", "API connections closed by a timeout.",
        stats.connections_timed_out.load());
    w.metric("microvmm_api_connections_open", "gauge", "Open API connections.", stats.connections_open.load());
    w.metric("microvmm_api_event_streams_open", "gauge", "Open /api/v1/events streams.", stats.event_streams_open.load());
    w.metric("microvmm_api_events_published_total", "counter", "Events published.", hub.published());
    w.metric("microvmm_api_events_dropped_total", "counter", "Events lost because a client read too slowly.",
        hub.dropped());
    return w.take();
}

} // namespace vmm::api

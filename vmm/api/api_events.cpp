// SPDX-License-Identifier: MIT
// Event helpers (see api_events.hpp).
#include "vmm/api/api_events.hpp"

#include <nlohmann/json.hpp>

#include "vmm/api/api_json.hpp"

namespace vmm::api {

void publish_dm_connected(EventHub& hub, bool connected, std::uint32_t protocol_version)
{
    hub.publish("dm_connected", { { "connected", connected }, { "protocol_version", protocol_version } });
}

void publish_status_report(EventHub& hub, GuestStatus const& status)
{
    hub.publish("status_report",
        { { "available_mib", status.available_mib }, { "committed_mib", status.committed_mib } });
}

void publish_operation_progress(EventHub& hub, Operation const& op)
{
    hub.publish("operation_progress", to_json(op));
}

void publish_operation_done(EventHub& hub, Operation const& op)
{
    hub.publish("operation_done", to_json(op));
}

void publish_guest_reboot(EventHub& hub, std::uint64_t boot_count)
{
    hub.publish("guest_reboot", { { "boot_count", boot_count } });
}

void publish_rejected_guest_range(EventHub& hub, std::string_view reason, std::uint64_t start_pfn,
    std::uint64_t page_count)
{
    hub.publish("rejected_guest_range",
        { { "reason", reason }, { "start_pfn", start_pfn }, { "page_count", page_count } });
}

} // namespace vmm::api

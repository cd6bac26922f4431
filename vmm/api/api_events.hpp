// SPDX-License-Identifier: MIT
// The events of GET /api/v1/events and their fields, as helpers the DM engine and the VM call
// (from any thread) so every producer emits the same shapes. API.md documents them for users.
#pragma once

#include <cstdint>
#include <string_view>

#include "vmm/api/api_backend.hpp"
#include "vmm/api/event_hub.hpp"

namespace vmm::api {

// {"event":"dm_connected","connected":true,"protocol_version":131072} after the DM version and
// capabilities handshake; "connected": false when the channel closes (driver unload, reset).
void publish_dm_connected(EventHub&, bool connected, std::uint32_t protocol_version);

// {"event":"status_report","available_mib":..,"committed_mib":..} per DM_STATUS_REPORT. Linux sends
// one per second at most (drivers/hv/hv_balloon.c post_status()); producers need not thin it.
void publish_status_report(EventHub&, GuestStatus const&);

// The operation object (API.md "Operation") plus "event". Progress: whenever done_mib moves, but
// at most ~10 per second (producers coalesce); done: exactly once when state leaves "running".
void publish_operation_progress(EventHub&, Operation const&);
void publish_operation_done(EventHub&, Operation const&);

// {"event":"guest_reboot","boot_count":N}: the guest reset; balloon and hot-add state are gone.
void publish_guest_reboot(EventHub&, std::uint64_t boot_count);

// {"event":"rejected_guest_range","reason":"...","start_pfn":..,"page_count":..}: the guest sent a
// page range that was refused. `reason` must be host text (a constant), never guest bytes.
void publish_rejected_guest_range(EventHub&, std::string_view reason, std::uint64_t start_pfn,
    std::uint64_t page_count);

} // namespace vmm::api

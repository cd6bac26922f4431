// SPDX-License-Identifier: MIT
// DmConfig: tunables of the Dynamic Memory engine, with a Linux and a Windows profile.
#pragma once

#include <chrono>
#include <cstdint>

#include "mem/gpa.hpp"
#include "devices/vmbus/channel_device.hpp"

namespace vmm::hv_balloon {

using Instant = std::chrono::steady_clock::time_point; // Passed in by the caller; never read here.
using Duration = std::chrono::steady_clock::duration;

// Windows ignores balloon requests above this many pages (~2.23 GiB) (QEMU
// HV_BALLOON_HR_CHUNK_PAGES, dm-anchors-qemu-openvmm.md §1.4). Linux honours any count.
inline constexpr std::uint64_t WINDOWS_MAX_BALLOON_PAGES_PER_REQUEST = 585728;
// Windows Server 2019 crashes on DM requests right after boot; Hyper-V 2016 and QEMU wait 50 s
// after the capabilities exchange (QEMU HV_BALLOON_POST_INIT_WAIT, anchors §1.11).
inline constexpr std::chrono::seconds WINDOWS_POST_CONNECT_DELAY { 50 };
// Largest hot-add per message: 2 GiB (QEMU HV_BALLOON_HA_CHUNK_SIZE), keeping each guest
// operation short (Linux adds 128 MiB blocks one at a time, up to 5 s each).
inline constexpr std::uint64_t DEFAULT_MAX_HOT_ADD_PAGES_PER_REQUEST = (2ull << 30) / mem::PAGE_SIZE;

struct DmConfig {
    vmbus::Guid instance {};                   // Offer instance GUID (unique per VM device).
    Duration post_connect_delay {};            // Wait after capabilities before the first request.
    mem::PageCount max_balloon_pages_per_request { WINDOWS_MAX_BALLOON_PAGES_PER_REQUEST };
    mem::PageCount max_hot_add_pages_per_request { DEFAULT_MAX_HOT_ADD_PAGES_PER_REQUEST };
    // Balloon: no response message for this long (each message restarts the clock) -> timed out.
    Duration balloon_reply_timeout = std::chrono::seconds { 30 };
    Duration unballoon_reply_timeout = std::chrono::seconds { 10 };
    // Hot-add: base + per 128 MiB block; Linux waits up to 5 s per block for onlining
    // (hv_balloon.c:770 wait_for_completion_timeout(&ol_waitevent, 5 * HZ)).
    Duration hot_add_reply_timeout_base = std::chrono::seconds { 10 };
    Duration hot_add_reply_timeout_per_block = std::chrono::seconds { 6 };
    Duration ring_space_timeout = std::chrono::seconds { 10 }; // Host->guest ring stays full.
    // Minimum spacing of status_report events (the guest reports ~1/s; a hostile one may flood).
    Duration status_event_interval = std::chrono::seconds { 1 };
    bool send_info_message = true;    // DM_INFO_MESSAGE with the max page count (protocol >= 1.0).
    bool reapply_target_after_reset = true; // Keep driving the last target after a guest reboot.

    static DmConfig linux_profile() { return DmConfig {}; }
    static DmConfig windows_profile()
    {
        DmConfig config;
        config.post_connect_delay = WINDOWS_POST_CONNECT_DELAY;
        return config;
    }
};

} // namespace vmm::hv_balloon

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
// HV_BALLOON_HR_CHUNK_PAGES, hw/hyperv/hv-balloon.c). Linux honours any count.
inline constexpr std::uint64_t WINDOWS_MAX_BALLOON_PAGES_PER_REQUEST = 585728;
// Windows Server 2019 crashes on DM requests right after boot; Hyper-V 2016 and QEMU wait 50 s
// after the capabilities exchange (QEMU HV_BALLOON_POST_INIT_WAIT, hw/hyperv/hv-balloon.c).
inline constexpr std::chrono::seconds WINDOWS_POST_CONNECT_DELAY { 50 };
// Largest hot-add per message: 2 GiB (QEMU HV_BALLOON_HA_CHUNK_SIZE), keeping each guest
// operation short (Linux adds 128 MiB blocks one at a time, up to 5 s each).
inline constexpr std::uint64_t DEFAULT_MAX_HOT_ADD_PAGES_PER_REQUEST = (2ull << 30) / mem::PAGE_SIZE;
// Largest unballoon per request: 32 MiB. Linux frees an unballoon request's pages in its VMBus
// channel callback, a tasklet (softirq), without ever rescheduling (drivers/hv/hv_balloon.c:1551
// balloon_down from balloon_onchannelcallback; vmbus_drv.c:1276 tasklet_schedule), and one
// 4 KiB message can name 510 ranges of 2^24 pages each. 8192 pages keep each softirq at about a
// millisecond on hardware; where the guest kernel runs slowly (an emulated CPL0 frees ~2 pages
// per ms) a whole 256 MiB message held a CPU for > 21 s and tripped the RCU stall detector,
// whose NMI backtrace then brought down a 2-vCPU guest. Each round is one request/response, so
// 200 GiB costs 6400 round trips, well under a second of host time.
inline constexpr std::uint64_t DEFAULT_MAX_UNBALLOON_PAGES_PER_REQUEST = (32ull << 20) / mem::PAGE_SIZE;

struct DmConfig {
    vmbus::Guid instance {};                   // Offer instance GUID (unique per VM device).
    Duration post_connect_delay {};            // Wait after capabilities before the first request.
    mem::PageCount max_balloon_pages_per_request { WINDOWS_MAX_BALLOON_PAGES_PER_REQUEST };
    mem::PageCount max_hot_add_pages_per_request { DEFAULT_MAX_HOT_ADD_PAGES_PER_REQUEST };
    mem::PageCount max_unballoon_pages_per_request { DEFAULT_MAX_UNBALLOON_PAGES_PER_REQUEST };
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

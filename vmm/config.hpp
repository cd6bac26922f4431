// SPDX-License-Identifier: MIT
// The TOML configuration: parsed and validated before anything starts. Every failure is one
// Errc::Config error whose message names the key or file (configs/README.md has the schema).
#pragma once

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "base/types.hpp"
#include "vmm/hyperv/enlightenments.hpp"

namespace vmm {

enum class OnReboot : u8 { Reset, Exit };
enum class BootFirmware : u8 { Direct, Uefi };

struct MachineSection {
    u32 vcpus { 1 };
    u64 memory_mib { 256 };
    u64 max_memory_mib { 0 }; // 0 in the file means "same as memory_mib" (no hot-add window).
    OnReboot on_reboot { OnReboot::Reset };
};

struct CpuSection {
    std::vector<std::string> hide_features;
};

struct BootSection {
    BootFirmware firmware { BootFirmware::Direct };
    std::filesystem::path kernel;                // Absolute after loading.
    std::optional<std::filesystem::path> initrd; // Absolute after loading.
    std::string cmdline;
};

struct SerialSection {
    std::optional<std::filesystem::path> output_file; // nullopt = stdout.
};

struct ApiSection {
    std::optional<std::filesystem::path> socket;
};

// Keys of [dynamic_memory]. The DM device owns their meaning; add a key here and one line in
// config.cpp's DYNAMIC_MEMORY_KEYS table.
struct DynamicMemorySection {
    bool enabled { false };
    // Wait this long after the DM channel connects before the first request (QEMU hv-balloon
    // waits 50 s for Windows guests; QEMU hw/hyperv/hv-balloon.c HV_BALLOON_POST_INIT_WAIT).
    u64 post_connect_delay_ms { 0 };
    // Largest balloon request in pages (0 = no cap).
    u64 max_request_pages { 0 };
    // How long the engine waits for the guest's reply before it fails the operation as
    // timed_out. Defaults: devices/hv_balloon/dm_config.hpp (the engine's, sized for a guest
    // kernel on real hardware). A guest whose kernel runs slowly (emulated or heavily
    // overcommitted) needs more: a late reply only delays failure detection.
    u64 balloon_reply_timeout_ms { 30'000 };
    u64 unballoon_reply_timeout_ms { 10'000 };
    u64 hot_add_reply_timeout_ms { 10'000 };           // Per hot-add request, plus:
    u64 hot_add_reply_timeout_per_block_ms { 6'000 };  // per 128 MiB block it adds.
    // Automatic sizing (devices/hv_balloon/dm_policy.hpp, docs/auto-memory.md). min_mib <=
    // machine.memory_mib <= max_mib <= machine.max_memory_mib once parsed (defaults: max(128,
    // memory_mib / 4) capped at memory_mib, and max_memory_mib), whatever the mode, so switching
    // to auto at run time has limits too.
    bool auto_mode { false };              // mode = "auto".
    u64 min_mib { 0 };
    u64 max_mib { 0 };
    u64 buffer_percent { 20 };             // Hyper-V's default memory buffer.
    u64 weight { 50 };                     // 0-100.
    u64 min_step_mib { 16 };
    u64 min_interval_ms { 2'000 };
    u64 hysteresis_percent { 5 };
    u64 shrink_delay_ms { 10'000 };
    bool reboot_last_size { false };       // on_reboot_size = "last" (else "boot").
    // Offer free page reporting (HvExtCallMemoryHeatHint cold discard, needs
    // hyperv.extended_hypercalls): the guest's free 2 MiB blocks go back to the host.
    bool free_page_reporting { false };
};

struct HypervSection {
    bool enabled { false }; // Defaults to dynamic_memory.enabled (VMBus needs Hyper-V).
    hyperv::Enlightenments enlightenments {}; // One key each; defaults = the Windows set.
};

// Keys of [integration]: the Hyper-V integration services (devices/ic/) on VMBus.
struct IntegrationSection {
    bool enabled { false }; // Defaults to hyperv.enabled.
    // SIGTERM: how long the guest gets to power off after the shutdown request before the VMM
    // stops it (a second SIGTERM stops at once). 0 = stop at once, as without the service.
    u64 shutdown_timeout_ms { 30'000 };
    u64 heartbeat_interval_ms { 2'000 };
    u64 heartbeat_late_ms { 10'000 }; // Heartbeat age at which the guest counts as "late".
    // Time sync IC: the host's wall-clock time at connect (the guest sets its clock) and then
    // every period (samples). Needs hyperv.reference_time (the samples carry reference time).
    bool time_sync { true };
    u64 time_sync_period_ms { 5'000 };
    // KVP IC: guest info (host name, OS, addresses) read every kvp_refresh_ms; [guest_info]
    // pairs written into the guest.
    bool kvp { true };
    u64 kvp_refresh_ms { 60'000 };
};

// [guest_info]: key = "value" pairs the host writes into the guest's KVP External pool (Linux:
// /var/lib/hyperv/.kvp_pool_0), in key order.
struct GuestInfoSection {
    std::vector<std::pair<std::string, std::string>> pairs;
};

// Keys of [vsock]: hv_sock (devices/hvsock/, vmm/backends/hvsock_backend.*) over a Unix socket
// with Firecracker's hybrid-vsock convention (configs/README.md).
struct VsockSection {
    std::optional<std::filesystem::path> uds_path; // Unset: no hv_sock.
};
// sun_path holds 108 bytes with its NUL; guest connections to port P go to "<uds_path>_P", so
// the path leaves room for "_4294967295".
inline constexpr std::size_t MAX_VSOCK_UDS_PATH_BYTES = 108 - 1 - 11;

// One [[disk]]: a raw image file behind its own NVMe controller (one namespace each; why:
// configs/README.md "Disks"). The image must exist; it is opened and locked at start-up
// (vmm/backends/image_file_backend.*).
struct DiskSection {
    std::filesystem::path path;   // Absolute after loading.
    bool read_only { false };
    std::string serial;           // Identify Controller SN: 1..20 printable ASCII; default "MVMDISK<n>".
};
inline constexpr std::size_t MAX_DISKS = 8;
inline constexpr std::size_t MAX_DISK_SERIAL_BYTES = 20; // NVMe 1.4 Figure 247, SN.

struct Config {
    std::filesystem::path source; // The file it came from (empty for text).
    MachineSection machine;
    CpuSection cpu;
    BootSection boot;
    SerialSection serial;
    ApiSection api;
    DynamicMemorySection dynamic_memory;
    HypervSection hyperv;
    IntegrationSection integration;
    GuestInfoSection guest_info;
    VsockSection vsock;
    std::vector<DiskSection> disks;
};

struct ConfigLimits {
    u32 max_vcpus; // KVM_CAP_MAX_VCPUS of this host (passed in so tests need no KVM).
};

inline constexpr u64 MAX_MEMORY_MIB_LIMIT = 64 * 1024; // Above 64 GiB the guest's memory block size grows and 6.1 hot-add breaks (guest-interface §9.1).

// [dynamic_memory]'s automatic-sizing limits against the machine (min_mib <= memory_mib <=
// max_mib <= max_memory_mib; auto needs enabled), filling min_mib/max_mib left 0 with their
// defaults. parse_config() runs it; so does PUT /api/v1/memory/policy on its updated copy.
Result<void> check_dynamic_memory(DynamicMemorySection&, MachineSection const&);

// Parses TOML text; relative paths resolve against `base_dir`. Checks types, unknown keys and
// value ranges that need nothing from the host.
Result<Config> parse_config(std::string_view text, std::filesystem::path const& base_dir);
// Host-dependent checks: vCPU limit, the kernel/initrd files (existence, kernel format) and each
// disk image (exists, regular file or block device, readable, and writable unless read_only).
Result<void> validate_config(Config const&, ConfigLimits);
// Reads, parses and validates `path`.
Result<Config> load_config(std::filesystem::path const& path, ConfigLimits);

enum class KernelFormat : u8 { Elf, BzImage, Unknown };
// ELF magic or the Linux boot protocol "HdrS" signature (Documentation/x86/boot.rst).
KernelFormat detect_kernel_format(std::span<std::byte const> head);

} // namespace vmm

// SPDX-License-Identifier: MIT
// `microvmm jail` command line: parsed and validated before anything on the host changes. Every
// bad input is one Errc::Config error naming the option (exit 2).
//
//   microvmm jail --id ID --uid UID --gid GID --config FILE
//                 [--chroot-base-dir DIR] [--netns PATH | --new-netns]
//                 [--cgroup-root DIR] [--cgroup-version auto|1|2] [--no-cgroup]
//                 [--memory-overhead-mib N] [--cpus F] [--pids-max N]
//                 [--allow-root] [--log-level L]
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/types.hpp"

namespace vmm::jail {

// VMM memory beyond guest RAM that the cgroup limit allows: measured as the cgroup's peak
// memory use (memory.max_usage_in_bytes) minus the guest RAM the guest touched, with the Linux
// test guest, DM and a hot-add (docs/jailer.md "Memory limit"): anonymous memory, KVM's
// page tables and kernel objects, and the page cache of the kernel/initrd reads (reclaimable).
inline constexpr u64 DEFAULT_MEMORY_OVERHEAD_MIB = 64;
// Firecracker's jailer default base (<base>/<exec name>/<id>/root).
inline constexpr char const* DEFAULT_CHROOT_BASE = "/srv/jailer";
inline constexpr char const* DEFAULT_CGROUP_ROOT = "/sys/fs/cgroup";
// Threads: one per vCPU plus the event loop, API, timer and I/O threads; generous so a future
// worker pool fits, small enough that a fork bomb inside the VMM stops quickly.
inline constexpr u64 DEFAULT_PIDS_BEYOND_VCPUS = 64;
inline constexpr std::size_t MAX_ID_BYTES = 64; // Firecracker's jailer: alphanumeric and '-', 1-64.

struct JailOptions {
    std::string id;
    uid_t uid { 0 };
    gid_t gid { 0 };
    std::filesystem::path config;
    std::filesystem::path chroot_base { DEFAULT_CHROOT_BASE };
    std::optional<std::filesystem::path> netns; // Join this network namespace (ip netns: /var/run/netns/X).
    bool new_netns { false };
    std::filesystem::path cgroup_root { DEFAULT_CGROUP_ROOT };
    std::string cgroup_version { "auto" }; // auto, 1, 2
    bool no_cgroup { false };
    u64 memory_overhead_mib { DEFAULT_MEMORY_OVERHEAD_MIB };
    std::optional<double> cpus; // Default: vCPUs + 1.
    std::optional<u64> pids_max; // Default: vCPUs + DEFAULT_PIDS_BEYOND_VCPUS.
    bool allow_root { false };
    std::string log_level { "info" };
};

// `args` are the words after "jail". Checks what needs nothing from the host (syntax, ranges,
// the id's characters, uid/gid 0, exclusive options); check_host() does the rest.
Result<JailOptions> parse_jail_args(std::vector<std::string> const& args);
// Parses a uid or gid: decimal, 0 to 4294967294 ((uid_t)-1 means "unchanged" to setresuid).
Result<u32> parse_id_number(std::string const& text, char const* option);
Result<void> check_jail_id(std::string const& id);

// The jail's directories: <base>/microvmm/<id> and its root/.
std::filesystem::path jail_vm_dir(JailOptions const&);
std::filesystem::path jail_root(JailOptions const&);

} // namespace vmm::jail

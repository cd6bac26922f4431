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

// VMM memory beyond guest RAM that the cgroup memory limit allows (--memory-overhead-mib
// overrides it): a fixed part plus a part per GiB of guest RAM. Measured (docs/jailer.md
// "Memory limit"): the jailed VMM with the Linux test guest, 256 MiB booted + 256 MiB hot-added,
// peaked at 32.6 MiB of cgroup memory of which 25.7 MiB was guest RAM the guest touched: 6.9
// MiB of VMM (anonymous 1.3, binary 3.6, kernel objects 1.6 MiB). The fixed part leaves 4x
// that for API clients, hv_sock buffers and page cache of the kernel/initrd reads (reclaimable,
// but charged). The per-GiB part is KVM's per-4-KiB-page metadata charged to the VMM's cgroup
// (GFP_KERNEL_ACCOUNT): the memslot rmap and large-page info (arch/x86/kvm/x86.c
// kvm_alloc_memslot_metadata, 8 B per page) and the EPT/shadow page tables (8 B per page):
// 4 MiB per GiB.
inline constexpr u64 MEMORY_OVERHEAD_FIXED_MIB = 32;
inline constexpr u64 MEMORY_OVERHEAD_PER_GIB_MIB = 4;
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
    std::optional<u64> memory_overhead_mib; // Default: default_memory_overhead_mib().
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

// With hv_sock on (`vsock = true`), plus every connection's buffers at their limits
// (HvSockBackend::MAX_CONNECTIONS x 2 x DEFAULT_BUFFER_BYTES = 256 MiB, allocated when a
// connection opens): the guest decides how many connections it opens.
u64 default_memory_overhead_mib(u64 guest_max_mib, bool vsock);

struct CgroupLimits;
// The cgroup limits for a machine: memory = the guest's maximum RAM (max_memory_mib: boot RAM
// plus the hot-add window, so a DM hot-add never meets the limit) + the overhead; CPU quota =
// --cpus (default vCPUs + 1: the guest's CPUs plus one for device emulation); pids.
CgroupLimits jail_limits(u32 vcpus, u64 memory_mib, u64 max_memory_mib, bool vsock, JailOptions const&);

// The jail's directories: <base>/microvmm/<id> and its root/.
std::filesystem::path jail_vm_dir(JailOptions const&);
std::filesystem::path jail_root(JailOptions const&);

} // namespace vmm::jail

// SPDX-License-Identifier: MIT
// What the host can give its VMs, for `microvmm balance` (docs/auto-memory.md "Host-wide
// arbitration"). Parsing is pure (tests feed text); read_host_free() reads the files.
//
//   supply = free + sum(resident of every VM) - reserve
//
// where `free` is MemAvailable from /proc/meminfo (Documentation/filesystems/proc.rst: "an
// estimate of how much memory is available for starting new applications, without swapping"),
// or inside a cgroup its limit minus its usage (v2 memory.max - memory.current,
// Documentation/admin-guide/cgroup-v2.rst; v1 memory.limit_in_bytes - memory.usage_in_bytes,
// Documentation/admin-guide/cgroup-v1/memory.rst). The VMs' own resident memory is part of the
// host's use already, so it is added back: the supply is what the VMs may hold together.
// `--host-mib N` replaces free + resident by N (a simulated small host, for tests and for
// operators who want a fixed budget).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.hpp"

namespace vmm::balance {

// MemAvailable of /proc/meminfo text, in bytes (the file says kB = KiB).
Result<std::uint64_t> parse_meminfo_available(std::string_view meminfo);
// A cgroup memory figure: a decimal byte count, or "max" (v2 unlimited: nullopt). A v1 limit of
// PAGE_COUNTER_MAX pages (about 2^63 bytes, rounded to the page) also means unlimited.
Result<std::optional<std::uint64_t>> parse_cgroup_bytes(std::string_view text);

enum class SupplySource : std::uint8_t { MemInfo, Cgroup, Fixed };

struct HostFree {
    SupplySource source = SupplySource::MemInfo;
    std::uint64_t free_bytes = 0; // MemAvailable, or limit - usage; Fixed: the budget itself.
};

// Reads /proc/meminfo (`meminfo_path`), or the cgroup directory (v2 files first, then v1).
Result<HostFree> read_meminfo(std::string const& meminfo_path = "/proc/meminfo");
Result<HostFree> read_cgroup(std::string const& cgroup_dir);

// The supply in MiB (saturating at 0).
std::uint64_t supply_mib(HostFree const& free, std::uint64_t vms_resident_mib, std::uint64_t reserve_mib);

} // namespace vmm::balance

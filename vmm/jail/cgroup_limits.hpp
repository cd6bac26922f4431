// SPDX-License-Identifier: MIT
// The jail's cgroup: one directory per VM (<root>/microvmm/<id> under cgroup v2, the same under
// each v1 controller's hierarchy, as Firecracker's jailer lays it out), the limits written into
// it, the VMM's pid moved in, and the directories removed at the end. The cgroup root is a
// parameter so the unit tests run the same file writes against a fake tree in a temp dir.
//
//   v2 (Documentation/admin-guide/cgroup-v2.rst): memory.max, cpu.max "<quota> <period>",
//      pids.max; the controllers are enabled in the parent's cgroup.subtree_control first.
//   v1 (Documentation/admin-guide/cgroup-v1/memory.rst, scheduler/sched-bwc.rst,
//      cgroup-v1/pids.rst): memory/…/memory.limit_in_bytes, cpu/…/cpu.cfs_period_us and
//      cpu.cfs_quota_us, pids/…/pids.max.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/types.hpp"

namespace vmm::jail {

enum class CgroupVersion : u8 { V1, V2 };

struct CgroupLimits {
    u64 memory_bytes { 0 };
    u64 cpu_quota_us { 0 };   // Per period; 0 = no CPU limit ("max").
    u64 cpu_period_us { 100'000 }; // The kernel's default CFS period (sched-bwc.rst).
    u64 pids_max { 0 };
};

// Which version the host runs under `root`: v2 when root/cgroup.controllers lists memory, cpu
// and pids (a pure unified mount); else v1 when root/memory, root/cpu and root/pids are
// hierarchies; else an error naming what is missing (e.g. a hybrid host whose v2 mount has no
// controllers, and no v1 ones either).
Result<CgroupVersion> detect_cgroup_version(std::filesystem::path const& root);

// One VM's cgroup directories. Move-only; remove() (also run by the destructor) deletes them.
class JailCgroup {
public:
    // Creates the directories (failing if they exist: another VM with this id, or a leftover)
    // and writes the limits. On failure, what was created is removed again.
    static Result<JailCgroup> create(std::filesystem::path const& root, CgroupVersion, std::string const& id,
                                     CgroupLimits const&);
    JailCgroup(JailCgroup&&) noexcept;
    JailCgroup& operator=(JailCgroup&&) = delete;
    JailCgroup(JailCgroup const&) = delete;
    ~JailCgroup();

    // Writes `pid` into every directory's cgroup.procs.
    Result<void> add(pid_t pid) const;
    // rmdir of every directory (a cgroup directory can only be removed once empty, i.e. after
    // the VMM exited). Idempotent.
    Result<void> remove();
    std::vector<std::filesystem::path> const& directories() const { return m_dirs; }

private:
    JailCgroup() = default;
    std::vector<std::filesystem::path> m_dirs;
};

// The file writes of a version, as (path relative to the cgroup root, value) pairs in order:
// what create() writes, exposed for the docs and tests.
std::vector<std::pair<std::string, std::string>> cgroup_writes(CgroupVersion, std::string const& id,
                                                               CgroupLimits const&);

} // namespace vmm::jail

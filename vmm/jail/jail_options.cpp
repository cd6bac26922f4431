// SPDX-License-Identifier: MIT
#include "vmm/jail/jail_options.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include <CLI/CLI.hpp>

#include "devices/hvsock/hvsock_connection.hpp"
#include "vmm/backends/hvsock_backend.hpp"
#include "vmm/jail/cgroup_limits.hpp"

namespace vmm::jail {

namespace fs = std::filesystem;

namespace {

Result<void> usage(std::string text)
{
    return fail(Errc::Config, std::move(text));
}

} // namespace

Result<u32> parse_id_number(std::string const& text, char const* option)
{
    u64 value = 0;
    auto const* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc {} || ptr != end)
        return fail(Errc::Config, fmt::format("{} {}: expected a decimal number", option, text));
    // (uid_t)-1 tells setresuid "leave unchanged" (setresuid(2)), so it is no identity.
    if (value >= 0xffff'ffffu)
        return fail(Errc::Config, fmt::format("{} {}: out of range (0 to 4294967294)", option, text));
    return static_cast<u32>(value);
}

Result<void> check_jail_id(std::string const& id)
{
    if (id.empty() || id.size() > MAX_ID_BYTES)
        return usage(fmt::format("--id: {} bytes; expected 1 to {}", id.size(), MAX_ID_BYTES));
    // The id names directories and cgroups: no '/', '.', or anything a shell or path would read.
    bool const ok = std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    });
    if (!ok)
        return usage(fmt::format("--id {}: only letters, digits and '-' are allowed", id));
    return {};
}

Result<JailOptions> parse_jail_args(std::vector<std::string> const& args)
{
    JailOptions options;
    CLI::App app { "Run microvmm jailed: chroot, namespaces, an unprivileged uid/gid and cgroup limits",
                   "microvmm jail" };
    std::string uid, gid, config, base, netns, cgroup_root;
    std::optional<u64> overhead, pids;
    std::optional<double> cpus;
    app.add_option("--id", options.id, "VM id: letters, digits, '-' (names the jail directory and cgroup)")->required();
    app.add_option("--uid", uid, "uid the VMM runs as")->required();
    app.add_option("--gid", gid, "gid the VMM runs as")->required();
    app.add_option("--config", config, "TOML machine configuration")->required();
    app.add_option("--chroot-base-dir", base, "jail base: the VM's root is <base>/microvmm/<id>/root (default /srv/jailer)");
    auto* join = app.add_option("--netns", netns, "join this network namespace (e.g. /var/run/netns/X)");
    auto* fresh = app.add_flag("--new-netns", options.new_netns, "a new, empty network namespace");
    join->excludes(fresh);
    app.add_option("--cgroup-root", cgroup_root, "cgroup file system root (default /sys/fs/cgroup)");
    app.add_option("--cgroup-version", options.cgroup_version, "auto, 1 or 2")->check(CLI::IsMember({ "auto", "1", "2" }));
    app.add_flag("--no-cgroup", options.no_cgroup, "no cgroup limits (unsafe for untrusted guests)");
    app.add_option("--memory-overhead-mib", overhead, "VMM memory beyond the guest's maximum RAM in the memory limit");
    app.add_option("--cpus", cpus, "CPU time limit in CPUs (default: vCPUs + 1)");
    app.add_option("--pids-max", pids, "process/thread limit (default: vCPUs + 64)");
    app.add_flag("--allow-root", options.allow_root, "allow --uid 0 / --gid 0 (defeats the jail's purpose)");
    app.add_option("--log-level", options.log_level, "microvmm's log level")
        ->check(CLI::IsMember({ "debug", "info", "warn", "error" }));
    std::vector<std::string> reversed(args.rbegin(), args.rend()); // CLI11 parses a reversed vector.
    try {
        app.parse(reversed);
    } catch (CLI::CallForHelp const&) {
        return fail(Errc::InvalidArgument, app.help());
    } catch (CLI::ParseError const& e) {
        return fail(Errc::Config, e.what());
    }
    VMM_TRY(check_jail_id(options.id));
    options.uid = VMM_TRY(parse_id_number(uid, "--uid"));
    options.gid = VMM_TRY(parse_id_number(gid, "--gid"));
    if ((options.uid == 0 || options.gid == 0) && !options.allow_root)
        return fail(Errc::Config, fmt::format("--uid {} --gid {}: the jail drops root; running the VMM as uid or gid 0 "
                                              "needs --allow-root", options.uid, options.gid));
    options.config = config;
    if (!base.empty())
        options.chroot_base = base;
    if (!options.chroot_base.is_absolute())
        return fail(Errc::Config, fmt::format("--chroot-base-dir {}: must be an absolute path", options.chroot_base.string()));
    if (!netns.empty())
        options.netns = netns;
    if (!cgroup_root.empty())
        options.cgroup_root = cgroup_root;
    if (overhead) {
        if (*overhead > 64 * 1024)
            return fail(Errc::Config, fmt::format("--memory-overhead-mib {}: at most 65536", *overhead));
        options.memory_overhead_mib = *overhead;
    }
    if (cpus && !(std::isfinite(*cpus) && *cpus >= 0.01 && *cpus <= 4096))
        return fail(Errc::Config, fmt::format("--cpus {}: expected 0.01 to 4096", *cpus));
    options.cpus = cpus;
    if (pids && (*pids < 8 || *pids > 1'000'000))
        return fail(Errc::Config, fmt::format("--pids-max {}: expected 8 to 1000000 (the VMM needs a thread per vCPU "
                                              "and a few more)", *pids));
    options.pids_max = pids;
    return options;
}

u64 default_memory_overhead_mib(u64 guest_max_mib, bool vsock)
{
    u64 const vsock_mib = vsock ? (HvSockBackend::MAX_CONNECTIONS * 2 * hvsock::DEFAULT_BUFFER_BYTES) >> 20 : 0;
    return MEMORY_OVERHEAD_FIXED_MIB + MEMORY_OVERHEAD_PER_GIB_MIB * ((guest_max_mib + 1023) / 1024) + vsock_mib;
}

CgroupLimits jail_limits(u32 vcpus, u64 memory_mib, u64 max_memory_mib, bool vsock, JailOptions const& options)
{
    u64 const guest_mib = std::max(memory_mib, max_memory_mib); // max_memory_mib 0 = no hot-add.
    CgroupLimits limits;
    limits.memory_bytes = (guest_mib + options.memory_overhead_mib.value_or(default_memory_overhead_mib(guest_mib, vsock))) << 20;
    double const cpus = options.cpus.value_or(vcpus + 1.0);
    // The kernel's minimum quota is 1 ms (Documentation/scheduler/sched-bwc.rst).
    limits.cpu_quota_us = std::max<u64>(static_cast<u64>(std::llround(cpus * static_cast<double>(limits.cpu_period_us))), 1000);
    limits.pids_max = options.pids_max.value_or(vcpus + DEFAULT_PIDS_BEYOND_VCPUS);
    return limits;
}

fs::path jail_vm_dir(JailOptions const& options)
{
    return options.chroot_base / "microvmm" / options.id;
}

fs::path jail_root(JailOptions const& options)
{
    return jail_vm_dir(options) / "root";
}

} // namespace vmm::jail

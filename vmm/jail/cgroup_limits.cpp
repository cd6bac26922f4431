// SPDX-License-Identifier: MIT
#include "vmm/jail/cgroup_limits.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "base/fd.hpp"

namespace vmm::jail {

namespace fs = std::filesystem;

namespace {

// The directory under the cgroup root (or each v1 hierarchy) that holds one cgroup per VM
// (Firecracker: <cgroup root>/<exec file name>/<id>).
constexpr char const* PARENT = "microvmm";
constexpr char const* V1_CONTROLLERS[] = { "memory", "cpu", "pids" };

Result<void> write_file(fs::path const& path, std::string const& value)
{
    // No O_TRUNC: cgroup files take each write() as one command; O_CREAT only matters for the
    // unit tests' fake tree (on cgroupfs the files exist, and a missing one fails here).
    Fd fd { ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644) };
    if (!fd.is_open())
        return fail_errno(fmt::format("opening {}", path.string()));
    ssize_t const n = ::write(fd.get(), value.data(), value.size());
    if (n < 0)
        return fail_errno(fmt::format("writing \"{}\" to {}", value, path.string()));
    if (static_cast<std::size_t>(n) != value.size())
        return fail(Errc::Syscall, fmt::format("short write of \"{}\" to {}", value, path.string()));
    return {};
}

Result<void> make_dir(fs::path const& path, bool must_be_new)
{
    if (::mkdir(path.c_str(), 0755) == 0)
        return {};
    if (errno == EEXIST && !must_be_new)
        return {};
    if (errno == EEXIST)
        return fail(Errc::Config, fmt::format("cgroup {} already exists (a VM with this id is running, or a leftover: "
                                              "rmdir it)", path.string()));
    return fail_errno(fmt::format("creating cgroup {}", path.string()));
}

std::string words_of(fs::path const& file)
{
    std::ifstream in { file };
    std::string text { std::istreambuf_iterator<char> { in }, std::istreambuf_iterator<char> {} };
    return " " + text + " ";
}

bool lists(std::string const& words, char const* name)
{
    for (char const sep : { ' ', '\n' })
        if (words.find(fmt::format(" {}{}", name, sep)) != std::string::npos)
            return true;
    return false;
}

} // namespace

Result<CgroupVersion> detect_cgroup_version(fs::path const& root)
{
    std::error_code ec;
    if (fs::exists(root / "cgroup.controllers", ec)) {
        auto const words = words_of(root / "cgroup.controllers");
        if (lists(words, "memory") && lists(words, "cpu") && lists(words, "pids"))
            return CgroupVersion::V2;
    }
    bool v1 = true;
    for (auto const* controller : V1_CONTROLLERS)
        v1 = v1 && fs::is_directory(root / controller, ec);
    if (v1)
        return CgroupVersion::V1;
    return fail(Errc::Config, fmt::format("{}: neither cgroup v2 with the memory, cpu and pids controllers "
                                          "(cgroup.controllers) nor cgroup v1 hierarchies memory/, cpu/ and pids/ "
                                          "(use --cgroup-root or --no-cgroup)", root.string()));
}

std::vector<std::pair<std::string, std::string>> cgroup_writes(CgroupVersion version, std::string const& id,
                                                               CgroupLimits const& limits)
{
    std::string const cg = fmt::format("{}/{}", PARENT, id);
    if (version == CgroupVersion::V2) {
        std::string const cpu = limits.cpu_quota_us ? fmt::format("{} {}", limits.cpu_quota_us, limits.cpu_period_us)
                                                    : fmt::format("max {}", limits.cpu_period_us);
        return {
            // A controller's files appear in a child only once the parent enables it for its
            // children (cgroup-v2.rst "Enabling and Disabling"), at every level on the way.
            { "cgroup.subtree_control", "+memory +cpu +pids" },
            { fmt::format("{}/cgroup.subtree_control", PARENT), "+memory +cpu +pids" },
            { cg + "/memory.max", fmt::format("{}", limits.memory_bytes) },
            { cg + "/cpu.max", cpu },
            { cg + "/pids.max", limits.pids_max ? fmt::format("{}", limits.pids_max) : "max" },
        };
    }
    return {
        { "memory/" + cg + "/memory.limit_in_bytes", fmt::format("{}", limits.memory_bytes) },
        { "cpu/" + cg + "/cpu.cfs_period_us", fmt::format("{}", limits.cpu_period_us) },
        // -1: no quota (sched-bwc.rst).
        { "cpu/" + cg + "/cpu.cfs_quota_us", limits.cpu_quota_us ? fmt::format("{}", limits.cpu_quota_us) : "-1" },
        { "pids/" + cg + "/pids.max", limits.pids_max ? fmt::format("{}", limits.pids_max) : "max" },
    };
}

Result<JailCgroup> JailCgroup::create(fs::path const& root, CgroupVersion version, std::string const& id,
                                      CgroupLimits const& limits)
{
    JailCgroup cgroup;
    std::vector<fs::path> bases;
    if (version == CgroupVersion::V2)
        bases.push_back(root);
    else
        for (auto const* controller : V1_CONTROLLERS)
            bases.push_back(root / controller);
    for (auto const& base : bases) {
        if (auto made = make_dir(base / PARENT, false); !made)
            return std::unexpected(made.error());
        auto const dir = base / PARENT / id;
        if (auto made = make_dir(dir, true); !made)
            return std::unexpected(made.error()); // The destructor removes the ones made so far.
        cgroup.m_dirs.push_back(dir);
    }
    for (auto const& [file, value] : cgroup_writes(version, id, limits))
        if (auto written = write_file(root / file, value); !written)
            return std::unexpected(written.error());
    return cgroup;
}

JailCgroup::JailCgroup(JailCgroup&& other) noexcept
    : m_dirs(std::exchange(other.m_dirs, {}))
{
}

JailCgroup::~JailCgroup()
{
    if (auto removed = remove(); !removed)
        std::fprintf(stderr, "microvmm jail: %s\n", removed.error().message().c_str());
}

Result<void> JailCgroup::add(pid_t pid) const
{
    for (auto const& dir : m_dirs)
        VMM_TRY(write_file(dir / "cgroup.procs", fmt::format("{}", pid)));
    return {};
}

Result<void> JailCgroup::remove()
{
    Result<void> result;
    while (!m_dirs.empty()) {
        auto const dir = m_dirs.back();
        m_dirs.pop_back();
        // A real cgroup directory holds only kernel-made files and rmdir removes it whole; the
        // unit tests' fake tree has plain files, which go first.
        if (::rmdir(dir.c_str()) != 0 && errno == ENOTEMPTY) {
            std::error_code ec;
            for (auto const& entry : fs::directory_iterator(dir, ec))
                fs::remove(entry.path(), ec);
        }
        if (::rmdir(dir.c_str()) != 0 && errno != ENOENT && result)
            result = fail_errno(fmt::format("removing cgroup {}", dir.string()));
    }
    return result;
}

} // namespace vmm::jail

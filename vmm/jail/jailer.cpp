// SPDX-License-Identifier: MIT
// The jailer's two halves: the parent (root, host namespaces) validates, makes the jail
// directory and cgroup, forks the VMM into a new PID namespace and cleans up after it; the child
// (PID 1 of that namespace) builds its mount namespace, pivots into the jail, drops to the
// uid/gid and execs microvmm. Steps follow Firecracker's jailer (docs/jailer.md) except that
// every mount is made in the child's private mount namespace, so none is ever visible on the
// host and nothing is left mounted when the VM ends.
#include "vmm/jail/jailer.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/nsfs.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>

#include "base/fd.hpp"
#include "vmm/config.hpp"
#include "vmm/jail/cgroup_limits.hpp"
#include "vmm/jail/jail_options.hpp"
#include "vmm/jail/jail_plan.hpp"
#include "vmm/runner.hpp"

namespace vmm::jail {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t SUN_PATH_BYTES = 108; // struct sockaddr_un (unix(7)), with its NUL.

// The jail directory <base>/microvmm/<id>: made by the parent, removed whole at the end unless
// something is still mounted under it (never expected: every mount lives in the child's mount
// namespace, which dies with it).
class JailDir {
public:
    explicit JailDir(fs::path dir)
        : m_dir(std::move(dir))
    {
    }
    JailDir(JailDir const&) = delete;
    JailDir& operator=(JailDir const&) = delete;
    ~JailDir()
    {
        std::ifstream mounts { "/proc/self/mountinfo" };
        std::string line;
        auto const prefix = " " + m_dir.string() + "/";
        while (std::getline(mounts, line))
            if (line.find(prefix) != std::string::npos) {
                std::fprintf(stderr, "microvmm jail: %s still has mounts on the host; left in place\n", m_dir.c_str());
                return;
            }
        std::error_code ec;
        fs::remove_all(m_dir, ec);
        if (ec)
            std::fprintf(stderr, "microvmm jail: removing %s: %s\n", m_dir.c_str(), ec.message().c_str());
    }

private:
    fs::path m_dir;
};

struct ChildSetup {
    JailOptions const* options;
    JailPlan const* plan;
    fs::path root;
    fs::path exe;
    int netns_fd { -1 };
    int sync_fd { -1 };
};

// The child reports a failed step and exits: it is a fresh process between fork and exec.
[[noreturn]] void die(char const* step, fs::path const& path = {})
{
    int const err = errno;
    std::fprintf(stderr, "microvmm jail: %s %s: %s\n", step, path.c_str(), std::strerror(err));
    std::fflush(stderr);
    ::_exit(EXIT_FAILURE_HOST);
}

void bind(fs::path const& source, fs::path const& target, unsigned long flags)
{
    if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0)
        die("bind-mounting onto", target);
    // A bind mount takes its own flags only on a remount (mount(2) "Creating a bind mount").
    if (::mount(nullptr, target.c_str(), nullptr, MS_REMOUNT | MS_BIND | flags, nullptr) != 0)
        die("remounting", target);
}

[[noreturn]] void child_main(ChildSetup const& s)
{
    auto const& options = *s.options;
    char go = 0;
    if (::read(s.sync_fd, &go, 1) != 1) // The parent closes without writing when it gives up.
        ::_exit(EXIT_FAILURE_HOST);
    // Its own session: a terminal's Ctrl-C reaches only the jailer, which forwards it once.
    ::setsid();
    int flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
    if (options.new_netns)
        flags |= CLONE_NEWNET;
    if (::unshare(flags) != 0)
        die("unshare(mount, IPC, UTS namespaces)");
    if (s.netns_fd >= 0 && ::setns(s.netns_fd, CLONE_NEWNET) != 0)
        die("joining network namespace", *options.netns);
    // Nothing mounted from here on propagates back to the host (mount_namespaces(7)).
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        die("making / private");
    // pivot_root needs the new root to be a mount point.
    if (::mount(s.root.c_str(), s.root.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
        die("bind-mounting the jail root", s.root);
    unsigned long const data_flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    bind(s.root / "run", s.root / "run", data_flags);
    for (auto const& m : s.plan->mounts) {
        // A disk may be a block device: its bind must allow device access (nodev would refuse
        // the open); it is that one node, so nothing else is opened up.
        struct stat st {};
        bool const block = ::stat(m.source.c_str(), &st) == 0 && S_ISBLK(st.st_mode);
        unsigned long const flags = (block ? data_flags & ~MS_NODEV : data_flags) | (m.read_only ? MS_RDONLY : 0);
        bind(m.source, s.root / m.target.relative_path(), flags);
    }
    bind(s.exe, s.root / fs::path(JAIL_BINARY).relative_path(), MS_RDONLY | MS_NOSUID | MS_NODEV);
    // Device nodes on a small tmpfs of the child's own, so none is ever on the host's disk.
    auto const dev = s.root / "dev";
    if (::mount("tmpfs", dev.c_str(), "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=16,mode=0755") != 0)
        die("mounting tmpfs on", dev);
    for (auto const& node : s.plan->devices) {
        struct stat host {};
        if (::stat(node.c_str(), &host) != 0 || !S_ISCHR(host.st_mode))
            die("stat of character device", node);
        auto const target = s.root / node.relative_path();
        ::mkdir(target.parent_path().c_str(), 0755);
        if (::mknod(target.c_str(), S_IFCHR | 0600, host.st_rdev) != 0)
            die("mknod", target);
        if (::chown(target.c_str(), options.uid, options.gid) != 0 || ::chmod(target.c_str(), 0600) != 0)
            die("chown/chmod", target);
    }
    // /proc of the jail's own PID namespace (only its processes): the VMM reads /proc/self/smaps
    // for the hot-add window's resident size (vmm/host_memory_use.cpp).
    auto const proc = s.root / "proc";
    if (::mount("proc", proc.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
        die("mounting proc on", proc);
    if (::chdir(s.root.c_str()) != 0)
        die("chdir", s.root);
    // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only the jail
    // (pivot_root(2) NOTES).
    if (::syscall(SYS_pivot_root, ".", ".") != 0)
        die("pivot_root into", s.root);
    if (::umount2(".", MNT_DETACH) != 0)
        die("detaching the old root");
    if (::chdir("/") != 0)
        die("chdir /");
    if (::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | data_flags, nullptr) != 0)
        die("remounting the jail root read-only");
    if (::sethostname(options.id.data(), options.id.size()) != 0)
        die("sethostname");
    // Groups first: after setresuid the process may no longer change them (setgroups(2)).
    if (::setgroups(0, nullptr) != 0)
        die("setgroups");
    if (::setresgid(options.gid, options.gid, options.gid) != 0)
        die("setresgid");
    if (::setresuid(options.uid, options.uid, options.uid) != 0)
        die("setresuid");
    uid_t ruid, euid, suid;
    if (::getresuid(&ruid, &euid, &suid) != 0 || ruid != options.uid || euid != options.uid || suid != options.uid)
        die("verifying the uid");
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        die("PR_SET_NO_NEW_PRIVS");
    // If the jailer dies (SIGKILL), the VM dies with it rather than run on unsupervised; set
    // after the uid change, which clears it (prctl(2) PR_SET_PDEATHSIG). The parent holds the
    // sync pipe's write end until the VMM exits, so a hang-up here means it died before this.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        die("PR_SET_PDEATHSIG");
    pollfd parent_alive { s.sync_fd, POLLIN, 0 };
    if (::poll(&parent_alive, 1, 0) != 0)
        ::_exit(EXIT_FAILURE_HOST);
    ::syscall(SYS_close_range, 3u, ~0u, 0u); // Nothing of the jailer's leaks into the VMM.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    std::string const level = options.log_level;
    char const* argv[] = { "microvmm", "--config", JAIL_CONFIG, "--log-level", level.c_str(), nullptr };
    char const* envp[] = { nullptr };
    ::execve(JAIL_BINARY, const_cast<char* const*>(argv), const_cast<char* const*>(envp));
    die("exec", JAIL_BINARY);
}

int error(int status, Error const& e)
{
    std::fprintf(stderr, "microvmm jail: %s\n", e.message().c_str());
    return status;
}

int error(int status, std::string const& text)
{
    std::fprintf(stderr, "microvmm jail: %s\n", text.c_str());
    return status;
}

Result<void> write_file(fs::path const& path, std::string const& text, mode_t mode, uid_t uid, gid_t gid)
{
    Fd fd { ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode) };
    if (!fd.is_open())
        return fail_errno(fmt::format("creating {}", path.string()));
    if (!text.empty() && ::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
        return fail_errno(fmt::format("writing {}", path.string()));
    if (::fchown(fd.get(), uid, gid) != 0)
        return fail_errno(fmt::format("chown {}", path.string()));
    return {};
}

Result<void> make_dir(fs::path const& path, mode_t mode, uid_t uid = 0, gid_t gid = 0)
{
    if (::mkdir(path.c_str(), mode) != 0)
        return fail_errno(fmt::format("creating {}", path.string()));
    if (::chown(path.c_str(), uid, gid) != 0 || ::chmod(path.c_str(), mode) != 0)
        return fail_errno(fmt::format("chown/chmod {}", path.string()));
    return {};
}

// The directory tree and mount points, all owned by root except run/ (the VMM's sockets and
// serial output) and vm.toml (read by the VMM).
Result<void> build_tree(fs::path const& root, JailOptions const& options, JailPlan const& plan)
{
    VMM_TRY(make_dir(root, 0755));
    for (char const* dir : { "dev", "proc", "boot", "disk" })
        VMM_TRY(make_dir(root / dir, 0755));
    VMM_TRY(make_dir(root / "run", 0700, options.uid, options.gid));
    VMM_TRY(write_file(root / fs::path(JAIL_CONFIG).relative_path(), plan.config_text, 0400, options.uid, options.gid));
    VMM_TRY(write_file(root / fs::path(JAIL_BINARY).relative_path(), "", 0500, 0, 0));
    for (auto const& m : plan.mounts)
        VMM_TRY(write_file(root / m.target.relative_path(), "", 0400, 0, 0));
    return {};
}

// Every file the VM opens exists before anything is made, so a typo fails with exit 2.
Result<void> check_sources(JailPlan const& plan, JailOptions const& options)
{
    for (auto const& m : plan.mounts) {
        if (m.create && !fs::exists(m.source)) {
            // The serial output file: made by the jailer, owned by the VMM's uid.
            Fd fd { ::open(m.source.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) };
            if (!fd.is_open() || ::fchown(fd.get(), options.uid, options.gid) != 0)
                return fail(Errc::Config, fmt::format("{}: cannot create: {}", m.source.string(), std::strerror(errno)));
        }
        struct stat st {};
        if (::stat(m.source.c_str(), &st) != 0)
            return fail(Errc::Config, fmt::format("{}: {}", m.source.string(), std::strerror(errno)));
        if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
            return fail(Errc::Config, fmt::format("{}: not a regular file or block device", m.source.string()));
    }
    for (auto const& node : plan.devices) {
        struct stat st {};
        if (::stat(node.c_str(), &st) != 0 || !S_ISCHR(st.st_mode))
            return fail(Errc::Config, fmt::format("{}: the VM needs this device and the host has none", node.string()));
    }
    return {};
}

int wait_and_forward(pid_t child, sigset_t const& signals)
{
    for (;;) {
        siginfo_t info {};
        int const sig = ::sigwaitinfo(&signals, &info);
        if (sig < 0)
            continue; // EINTR
        if (sig != SIGCHLD) {
            // SIGHUP too asks for a clean stop; microvmm acts on SIGTERM/SIGINT (vmm/runner.hpp).
            ::kill(child, sig == SIGHUP ? SIGTERM : sig);
            continue;
        }
        int status = 0;
        pid_t const done = ::waitpid(child, &status, WNOHANG);
        if (done != child)
            continue;
        if (WIFEXITED(status))
            return WEXITSTATUS(status);
        return 128 + WTERMSIG(status);
    }
}

} // namespace

int jail_main(std::vector<std::string> const& args)
{
    auto parsed = parse_jail_args(args);
    if (!parsed) {
        if (parsed.error().code() == Errc::InvalidArgument) { // --help
            std::cout << parsed.error().what();
            return 0;
        }
        return error(EXIT_CONFIG, parsed.error());
    }
    JailOptions const& options = *parsed;
    auto config = load_config(options.config, ConfigLimits { 1024 }); // microvmm checks KVM's own limit.
    if (!config)
        return error(EXIT_CONFIG, fmt::format("config error: {}", config.error().message()));
    std::ifstream file { options.config, std::ios::binary };
    std::string const text { std::istreambuf_iterator<char> { file }, std::istreambuf_iterator<char> {} };
    auto plan = plan_jail(text, fs::absolute(options.config).parent_path());
    if (!plan)
        return error(EXIT_CONFIG, plan.error());
    if (::geteuid() != 0)
        return error(EXIT_CONFIG, "must run as root (namespaces, mounts, cgroups and the uid switch need it)");
    auto const vm_dir = jail_vm_dir(options);
    auto const root = jail_root(options);
    auto const api_host = root / plan->api_socket.relative_path();
    if (api_host.string().size() >= SUN_PATH_BYTES)
        return error(EXIT_CONFIG, fmt::format("--chroot-base-dir: the API socket's host path {} is {} bytes; a Unix "
                                              "socket path has at most {}", api_host.string(), api_host.string().size(),
                                              SUN_PATH_BYTES - 1));
    std::optional<Fd> netns;
    if (options.netns) {
        netns.emplace(::open(options.netns->c_str(), O_RDONLY | O_CLOEXEC));
        if (!netns->is_open())
            return error(EXIT_CONFIG, fmt::format("--netns {}: {}", options.netns->string(), std::strerror(errno)));
        // Only a network namespace file will do (ioctl_ns(2) NS_GET_NSTYPE).
        if (::ioctl(netns->get(), NS_GET_NSTYPE) != CLONE_NEWNET)
            return error(EXIT_CONFIG, fmt::format("--netns {}: not a network namespace (e.g. /var/run/netns/NAME "
                                                  "from `ip netns add NAME`)", options.netns->string()));
    }
    if (auto checked = check_sources(*plan, options); !checked)
        return error(EXIT_CONFIG, checked.error());
    char exe_buf[4096];
    ssize_t const exe_len = ::readlink("/proc/self/exe", exe_buf, sizeof exe_buf - 1);
    if (exe_len <= 0)
        return error(EXIT_FAILURE_HOST, "readlink /proc/self/exe: " + std::string(std::strerror(errno)));
    fs::path const exe { std::string(exe_buf, static_cast<std::size_t>(exe_len)) };

    CgroupVersion version = options.cgroup_version == "2" ? CgroupVersion::V2 : CgroupVersion::V1;
    if (!options.no_cgroup && options.cgroup_version == "auto") {
        auto detected = detect_cgroup_version(options.cgroup_root);
        if (!detected)
            return error(EXIT_CONFIG, detected.error());
        version = *detected;
    }
    std::error_code ec;
    if (fs::exists(vm_dir, ec))
        return error(EXIT_CONFIG, fmt::format("{} exists: a VM with id {} is running, or a leftover (remove it)",
                                              vm_dir.string(), options.id));
    fs::create_directories(vm_dir.parent_path(), ec);
    if (::mkdir(vm_dir.c_str(), 0755) != 0)
        return error(EXIT_FAILURE_HOST, fmt::format("creating {}: {}", vm_dir.string(), std::strerror(errno)));
    JailDir jail_dir { vm_dir };
    if (auto built = build_tree(root, options, *plan); !built)
        return error(EXIT_FAILURE_HOST, built.error());

    std::optional<JailCgroup> cgroup;
    if (!options.no_cgroup) {
        auto const limits = jail_limits(config->machine.vcpus, config->machine.memory_mib,
                                        config->machine.max_memory_mib, config->vsock.uds_path.has_value(), options);
        auto created = JailCgroup::create(options.cgroup_root, version, options.id, limits);
        if (!created)
            return error(created.error().code() == Errc::Config ? EXIT_CONFIG : EXIT_FAILURE_HOST, created.error());
        cgroup.emplace(std::move(*created));
        std::fprintf(stderr, "microvmm jail: cgroup v%d memory %llu MiB, cpu %llu/%llu us, pids %llu\n",
                     version == CgroupVersion::V1 ? 1 : 2, static_cast<unsigned long long>(limits.memory_bytes >> 20),
                     static_cast<unsigned long long>(limits.cpu_quota_us),
                     static_cast<unsigned long long>(limits.cpu_period_us),
                     static_cast<unsigned long long>(limits.pids_max));
    }

    sigset_t signals;
    sigemptyset(&signals);
    for (int sig : { SIGTERM, SIGINT, SIGHUP, SIGCHLD })
        sigaddset(&signals, sig);
    ::sigprocmask(SIG_BLOCK, &signals, nullptr);
    int sync[2];
    if (::pipe2(sync, O_CLOEXEC) != 0)
        return error(EXIT_FAILURE_HOST, "pipe: " + std::string(std::strerror(errno)));
    Fd sync_read { sync[0] }, sync_write { sync[1] };
    // The next child is PID 1 of a new PID namespace (pid_namespaces(7)).
    if (::unshare(CLONE_NEWPID) != 0)
        return error(EXIT_FAILURE_HOST, "unshare(PID namespace): " + std::string(std::strerror(errno)));
    ChildSetup setup { &options, &*plan, root, exe, netns ? netns->get() : -1, sync_read.get() };
    std::fflush(nullptr);
    pid_t const child = ::fork();
    if (child < 0)
        return error(EXIT_FAILURE_HOST, "fork: " + std::string(std::strerror(errno)));
    if (child == 0)
        child_main(setup);
    sync_read.reset();
    if (cgroup) {
        if (auto added = cgroup->add(child); !added) {
            sync_write.reset(); // The child exits without running anything.
            ::waitpid(child, nullptr, 0);
            return error(EXIT_FAILURE_HOST, added.error());
        }
    }
    std::fprintf(stderr, "microvmm jail: vm %s pid %d root %s\nmicrovmm jail: api socket %s\n", options.id.c_str(),
                 child, root.c_str(), api_host.c_str());
    if (plan->vsock_socket)
        std::fprintf(stderr, "microvmm jail: vsock socket %s\n", (root / plan->vsock_socket->relative_path()).c_str());
    std::fflush(stderr);
    char const go = 1;
    if (::write(sync_write.get(), &go, 1) != 1) {
        ::kill(child, SIGKILL);
        ::waitpid(child, nullptr, 0);
        return error(EXIT_FAILURE_HOST, "starting the jailed VMM: " + std::string(std::strerror(errno)));
    }
    // sync_write stays open until the VMM exits: the child's check that the jailer lives.
    int const status = wait_and_forward(child, signals);
    // The cgroup and jail directory go (their destructors, in this order: the cgroup first).
    cgroup.reset();
    return status;
}

CLI::App* add_jail_subcommand(CLI::App& app)
{
    auto* jail = app.add_subcommand("jail", "Run microvmm jailed (chroot, namespaces, uid/gid, cgroups; see `jail --help`)");
    jail->prefix_command();
    jail->set_help_flag();
    return jail;
}

} // namespace vmm::jail

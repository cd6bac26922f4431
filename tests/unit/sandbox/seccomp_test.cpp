// SPDX-License-Identifier: MIT
// The seccomp filters without KVM: each thread type's filter, loaded in a forked child, lets its
// calls through and kills the child with SIGSYS (after one log line naming the thread type and
// the call) for anything else, including the argument filters (ioctl numbers, PROT_EXEC, socket
// domains, write opens, the SIGSYS handler). The real threads' installation points are proven by
// tests/e2e/e2e_sandbox.py with the test-hook build.
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/kvm.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include <gtest/gtest.h>

#include "vmm/sandbox/least_privilege.hpp"
#include "vmm/sandbox/seccomp_filter.hpp"
#include "vmm/sandbox/seccomp_programs.hpp"
#include "vmm/sandbox/seccomp_rules.hpp"

namespace vmm::sandbox {
namespace {

struct ChildResult {
    int status = 0;
    std::string stderr_text;
};

// Forks; the child installs the SIGSYS reporter, runs `body` and exits 0. stderr is captured.
ChildResult run_child(std::function<void()> const& body)
{
    int pipe_fds[2];
    EXPECT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    pid_t const pid = ::fork();
    if (pid == 0) {
        ::dup2(pipe_fds[1], STDERR_FILENO);
        rlimit no_core {};
        ::setrlimit(RLIMIT_CORE, &no_core); // SIGSYS dumps core by default: not in tests.
        if (!prepare_seccomp())
            ::_exit(3);
        body();
        ::_exit(0);
    }
    ::close(pipe_fds[1]);
    ChildResult result;
    char buffer[512];
    for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;)
        result.stderr_text.append(buffer, static_cast<std::size_t>(n));
    ::close(pipe_fds[0]);
    EXPECT_EQ(::waitpid(pid, &result.status, 0), pid);
    return result;
}

// Forks; the child loads `kind`'s filter, runs `body` and exits 0.
ChildResult run_filtered(ThreadKind kind, std::function<void()> const& body)
{
    return run_child([&] {
        if (!load_filter(kind))
            ::_exit(3);
        body();
    });
}

bool killed_by_sigsys(ChildResult const& result)
{
    return WIFSIGNALED(result.status) && WTERMSIG(result.status) == SIGSYS;
}

bool exited_cleanly(ChildResult const& result) { return WIFEXITED(result.status) && WEXITSTATUS(result.status) == 0; }

TEST(Seccomp, EveryThreadTypeDiesOnACallOutsideItsListAndSaysWhich)
{
    for (ThreadKind kind : ALL_THREAD_KINDS) {
        auto const result = run_filtered(kind, [] { ::syscall(SYS_personality, 0xffffffffUL); });
        std::string const name { thread_kind_name(kind) };
        EXPECT_TRUE(killed_by_sigsys(result)) << name << ": status " << result.status;
        EXPECT_NE(result.stderr_text.find("microvmm: seccomp: " + name + " thread made a forbidden system call: personality (135"),
            std::string::npos)
            << result.stderr_text;
    }
}

// Two vCPUs running the same code trap at the same moment (the test hook in a 2-vCPU VM did,
// in CI): the process still dies of SIGSYS, and not before a line is written. With
// SA_RESETHAND the second trap found the default action and killed the process silently while
// the first handler was still formatting its line. Repeated, because it is a race.
TEST(Seccomp, ThreadsTrappingAtOnceEachGetTheirLineBeforeTheProcessDies)
{
    for (int round = 0; round < 40; ++round) {
        auto const result = run_child([] {
            std::atomic<int> ready { 0 };
            std::atomic<bool> go { false };
            auto trap = [&] {
                if (!load_filter(ThreadKind::Vcpu))
                    ::_exit(3);
                ready.fetch_add(1);
                while (!go.load())
                    ;
                ::syscall(SYS_personality, 0xffffffffUL);
            };
            std::thread first(trap), second(trap);
            while (ready.load() < 2)
                ;
            go.store(true);
            first.join(); // Never returns: the process dies first.
            second.join();
        });
        ASSERT_TRUE(killed_by_sigsys(result)) << "round " << round << ": status " << result.status;
        ASSERT_NE(result.stderr_text.find("microvmm: seccomp: vcpu thread made a forbidden system call: personality (135"),
            std::string::npos)
            << "round " << round << ": " << result.stderr_text;
    }
}

// SIGSYS sent with kill(2) is no filter's doing: the reporter says so, and the process still
// dies of it, as it would without a handler.
TEST(Seccomp, SigsysFromOutsideIsReportedAndStillKills)
{
    auto const result = run_filtered(ThreadKind::Vcpu, [] { ::syscall(SYS_tgkill, ::getpid(), ::syscall(SYS_gettid), SIGSYS); });
    EXPECT_TRUE(killed_by_sigsys(result)) << "status " << result.status;
    EXPECT_NE(result.stderr_text.find("microvmm: seccomp: vcpu thread received SIGSYS from pid"), std::string::npos)
        << result.stderr_text;
    auto const unfiltered = run_child([] { ::syscall(SYS_tgkill, ::getpid(), ::syscall(SYS_gettid), SIGSYS); });
    EXPECT_TRUE(killed_by_sigsys(unfiltered)) << "status " << unfiltered.status;
}

// Another ABI's call is no call of ours (the filters' bad-arch action): the process is killed
// outright, before the SIGSYS reporter could run. x32 numbers carry __X32_SYSCALL_BIT
// (arch/x86/include/uapi/asm/unistd.h); i386 enters through int 0x80 (AUDIT_ARCH_I386).
TEST(Seccomp, OtherAbisKillTheProcessWithoutTheReporter)
{
    for (ThreadKind kind : ALL_THREAD_KINDS) {
        auto const x32 = run_filtered(kind, [] { (void)::syscall(0x40000000L | SYS_getpid); });
        EXPECT_TRUE(killed_by_sigsys(x32)) << thread_kind_name(kind) << ": status " << x32.status;
        EXPECT_EQ(x32.stderr_text.find("microvmm: seccomp:"), std::string::npos) << x32.stderr_text;
    }
    auto const i386 = run_filtered(ThreadKind::Vcpu, [] {
        long result = 20; // __NR_getpid of i386 (arch/x86/entry/syscalls/syscall_32.tbl).
        asm volatile("int $0x80" : "+a"(result) : : "memory");
    });
    if (WIFSIGNALED(i386.status) && WTERMSIG(i386.status) == SIGSEGV)
        GTEST_SKIP() << "this kernel has no i386 emulation (int 0x80 faults before seccomp)";
    EXPECT_TRUE(killed_by_sigsys(i386)) << "status " << i386.status;
    EXPECT_EQ(i386.stderr_text.find("microvmm: seccomp:"), std::string::npos) << i386.stderr_text;
}

// The reporter's names come from the build-time table (seccomp_compiler.cpp), not libseccomp.
TEST(Seccomp, SystemCallNamesAreTheX86_64Table)
{
    EXPECT_STREQ(syscall_name(0), "read");
    EXPECT_STREQ(syscall_name(SYS_personality), "personality");
    EXPECT_STREQ(syscall_name(SYS_io_uring_enter), "io_uring_enter");
    EXPECT_EQ(syscall_name(-1), nullptr);
    EXPECT_EQ(syscall_name(SYSCALL_NAME_TABLE_SIZE), nullptr);
    EXPECT_EQ(syscall_name(400), nullptr); // A gap between 334 (rseq) and 424 (pidfd_send_signal).
}

// Every program is a classic-BPF filter the kernel accepts: at most BPF_MAXINSNS, first checking
// the architecture (seccomp_data.arch at offset 4).
TEST(Seccomp, ProgramsCheckTheArchitectureFirst)
{
    for (ThreadKind kind : ALL_THREAD_KINDS) {
        auto const program = filter_program(kind);
        ASSERT_GT(program.size(), 2u) << thread_kind_name(kind);
        EXPECT_LE(program.size(), std::size_t { BPF_MAXINSNS });
        EXPECT_EQ(program[0].code, BPF_LD | BPF_W | BPF_ABS);
        EXPECT_EQ(program[0].k, 4u);
        EXPECT_EQ(program[1].k, 0xc000003eu); // AUDIT_ARCH_X86_64 (include/uapi/linux/audit.h).
    }
}

TEST(Seccomp, AllowedCallsRunNormally)
{
    for (ThreadKind kind : ALL_THREAD_KINDS) {
        auto const result = run_filtered(kind, [] {
            // malloc, a lock, a log line, a thread-less futex wake, an anonymous RW mapping.
            std::string text(1 << 20, 'x');
            void* map = ::mmap(nullptr, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (map == MAP_FAILED || ::munmap(map, 1 << 16) != 0)
                ::_exit(4);
            if (::write(STDERR_FILENO, "ok\n", 3) != 3)
                ::_exit(5);
        });
        EXPECT_TRUE(exited_cleanly(result)) << thread_kind_name(kind) << ": " << result.stderr_text;
    }
}

TEST(Seccomp, VcpuIoctlsAreLimitedToTheRunningVcpusOwn)
{
    auto const allowed = run_filtered(ThreadKind::Vcpu, [] {
        if (::ioctl(-1, KVM_RUN, 0) != -1 || errno != EBADF)
            ::_exit(4);
    });
    EXPECT_TRUE(exited_cleanly(allowed)) << allowed.stderr_text;
    auto const refused = run_filtered(ThreadKind::Vcpu, [] { (void)::ioctl(-1, KVM_CREATE_VM, 0); });
    EXPECT_TRUE(killed_by_sigsys(refused));
    EXPECT_NE(refused.stderr_text.find("vcpu thread made a forbidden system call: ioctl"), std::string::npos)
        << refused.stderr_text;
    // The API thread issues no KVM ioctl at all.
    EXPECT_TRUE(killed_by_sigsys(run_filtered(ThreadKind::Api, [] { (void)::ioctl(-1, KVM_RUN, 0); })));
}

TEST(Seccomp, NoThreadMapsOrMakesExecutableMemory)
{
    for (ThreadKind kind : ALL_THREAD_KINDS) {
        EXPECT_TRUE(killed_by_sigsys(run_filtered(kind, [] {
            (void)::mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        }))) << thread_kind_name(kind);
        EXPECT_TRUE(killed_by_sigsys(run_filtered(kind, [] {
            void* map = ::mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            (void)::mprotect(map, 4096, PROT_READ | PROT_EXEC);
        }))) << thread_kind_name(kind);
    }
}

TEST(Seccomp, LoopOpensReadOnlyAndCreatesOnlyUnixSockets)
{
    auto const reads = run_filtered(ThreadKind::EventLoop, [] {
        int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            ::_exit(4);
        ::close(fd);
        fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            ::_exit(5);
        ::close(fd);
    });
    EXPECT_TRUE(exited_cleanly(reads)) << reads.stderr_text;
    EXPECT_TRUE(killed_by_sigsys(run_filtered(ThreadKind::EventLoop, [] {
        (void)::open("/tmp/microvmm-seccomp-test", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    })));
    EXPECT_TRUE(killed_by_sigsys(run_filtered(ThreadKind::EventLoop, [] { (void)::socket(AF_INET, SOCK_STREAM, 0); })));
    // Sockets are the loop's business only: the API thread accepts, it never creates one.
    EXPECT_TRUE(killed_by_sigsys(run_filtered(ThreadKind::Api, [] { (void)::socket(AF_UNIX, SOCK_STREAM, 0); })));
}

TEST(Seccomp, NobodyReplacesTheSigsysReporterOrExecs)
{
    for (ThreadKind kind : ALL_THREAD_KINDS) {
        // The raw call: ThreadSanitizer's sigaction() keeps handlers to itself without one.
        EXPECT_TRUE(killed_by_sigsys(run_filtered(kind, [] {
            unsigned long kernel_action[4] = { reinterpret_cast<unsigned long>(SIG_IGN), 0, 0, 0 };
            (void)::syscall(SYS_rt_sigaction, SIGSYS, kernel_action, nullptr, 8);
        }))) << thread_kind_name(kind);
        EXPECT_TRUE(killed_by_sigsys(run_filtered(kind, [] {
            char const* argv[] = { "/bin/true", nullptr };
            (void)::execve("/bin/true", const_cast<char* const*>(argv), nullptr);
        }))) << thread_kind_name(kind);
    }
}

// The real order: the loop's filter first, then a thread it starts stacks its own on top (the
// loop's list must let it load one) and is held to both.
TEST(Seccomp, ThreadsStartedByTheFilteredLoopStackTheirOwnFilter)
{
    auto const clean = run_filtered(ThreadKind::EventLoop, [] {
        std::thread vcpu([] {
            if (!load_filter(ThreadKind::Vcpu))
                ::_exit(4);
            if (::ioctl(-1, KVM_RUN, 0) != -1 || errno != EBADF)
                ::_exit(5);
        });
        vcpu.join();
    });
    EXPECT_TRUE(exited_cleanly(clean)) << clean.stderr_text;
    // memfd_create is the loop's, not the vCPU's: the stacked filter refuses it.
    auto const refused = run_filtered(ThreadKind::EventLoop, [] {
        std::thread vcpu([] {
            if (!load_filter(ThreadKind::Vcpu))
                ::_exit(4);
            (void)::syscall(SYS_memfd_create, "x", 0);
        });
        vcpu.join();
    });
    EXPECT_TRUE(killed_by_sigsys(refused)) << refused.status;
    EXPECT_NE(refused.stderr_text.find("vcpu thread made a forbidden system call: memfd_create"), std::string::npos)
        << refused.stderr_text;
}

// Filters stack and are inherited: the vCPU and timer threads are created by the filtered loop,
// so each of their rules must also be one of the loop's.
TEST(SeccompRules, TheLoopAllowsEverythingOfTheThreadsItStarts)
{
    auto const key = [](SyscallRule const& rule) {
        std::string text = std::to_string(rule.nr);
        for (auto const& check : rule.checks)
            text += "/" + std::to_string(check.index) + ":" + std::to_string(static_cast<int>(check.op)) + ":"
                + std::to_string(check.mask) + ":" + std::to_string(check.value);
        return text;
    };
    std::set<std::string> loop;
    for (auto const& rule : rules_for(ThreadKind::EventLoop))
        loop.insert(key(rule));
    for (ThreadKind child : { ThreadKind::Vcpu, ThreadKind::HvTimers })
        for (auto const& rule : rules_for(child))
            EXPECT_TRUE(loop.contains(key(rule))) << thread_kind_name(child) << " rule " << key(rule);
}

TEST(LeastPrivilege, DroppingCapabilitiesEmptiesEverySet)
{
    pid_t const pid = ::fork();
    if (pid == 0) {
        __user_cap_header_struct header { _LINUX_CAPABILITY_VERSION_3, 0 };
        __user_cap_data_struct before[2] {};
        bool const had_setpcap = ::syscall(SYS_capget, &header, before) == 0 && (before[0].effective & (1u << CAP_SETPCAP));
        if (!drop_capabilities() || !has_no_capabilities())
            ::_exit(4);
        // Root without capabilities cannot do what needs one, e.g. raise its nice priority.
        if (::getuid() == 0 && ::setpriority(PRIO_PROCESS, 0, -1) == 0)
            ::_exit(5);
        // The bounding set is empty too when we could drop it (CAP_SETPCAP).
        for (int cap = 0; had_setpcap && cap < 64; ++cap)
            if (::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1)
                ::_exit(6);
        ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

} // namespace
} // namespace vmm::sandbox

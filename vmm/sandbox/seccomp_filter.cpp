// SPDX-License-Identifier: MIT
#include "vmm/sandbox/seccomp_filter.hpp"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <initializer_list>
#include <cstdlib>
#include <cstring>
#include <string>

#include "base/log.hpp"
#include "vmm/sandbox/seccomp_programs.hpp"
#include "vmm/sandbox/seccomp_test_hook.hpp"

namespace vmm::sandbox {

namespace {

// What the SIGSYS line calls this thread: set by load_filter() before the filter goes on.
thread_local char const* t_kind_name = nullptr;

// Async-signal-safe formatting into a fixed buffer.
struct Line {
    char text[256];
    std::size_t size = 0;
    void add(char const* s)
    {
        while (*s && size < sizeof text - 1)
            text[size++] = *s++;
    }
    void add_hex(unsigned long value)
    {
        char digits[19];
        int n = 0;
        do {
            digits[n++] = "0123456789abcdef"[value & 0xf];
            value >>= 4;
        } while (value != 0);
        add("0x");
        while (n > 0 && size < sizeof text - 1)
            text[size++] = digits[--n];
    }
    void add_dec(unsigned long value)
    {
        char digits[20];
        int n = 0;
        do {
            digits[n++] = static_cast<char>('0' + value % 10);
            value /= 10;
        } while (value != 0);
        while (n > 0 && size < sizeof text - 1)
            text[size++] = digits[--n];
    }
};

// A system call number no x86-64 kernel has (the table ends below 512; arch/x86/entry/syscalls/
// syscall_64.tbl) and so no filter allows: the programs' default action, TRAP, applies to it.
constexpr long kNoSuchCall = 1023;

// si_code of a seccomp trap (SYS_SECCOMP, include/uapi/asm-generic/siginfo.h); glibc's
// <signal.h> spells it only under some feature macros.
constexpr int kSiCodeSeccomp = 1;

// SA_SIGINFO without SA_RESETHAND, on the thread whose call trapped; only write(), getpid,
// gettid, tgkill and rt_sigaction, async-signal-safe.
//
// Why not SA_RESETHAND: with several threads trapping at once (two vCPUs running the same
// code), the first delivery resets the action and the second thread's trap then kills the
// process by default before the first handler has written its line (CI saw exactly that: death
// by SIGSYS with no line). Here every trapping thread writes its own line, then dies the way
// the kernel offers: a second trap while SIGSYS is blocked in this handler makes the kernel
// reset the action to the default and deliver it (kernel/signal.c force_sig_info_to_task, via
// force_sig_seccomp), so the process dies of SIGSYS (core) whatever other threads are doing.
void on_sigsys(int, siginfo_t* info, void* context)
{
    auto const* uc = static_cast<ucontext_t const*>(context);
    Line line;
    line.add("microvmm: seccomp: ");
    line.add(t_kind_name ? t_kind_name : "unknown");
    if (info->si_code == kSiCodeSeccomp) {
        int const nr = info->si_syscall;
        line.add(" thread made a forbidden system call: ");
        char const* name = syscall_name(nr); // Constant data (seccomp_programs.hpp); "?" past the table.
        line.add(name ? name : "?");
        line.add(" (");
        line.add_dec(static_cast<unsigned long>(nr));
        line.add(", args ");
        line.add_hex(static_cast<unsigned long>(uc->uc_mcontext.gregs[REG_RDI]));
        line.add(" ");
        line.add_hex(static_cast<unsigned long>(uc->uc_mcontext.gregs[REG_RSI]));
        line.add(" ");
        line.add_hex(static_cast<unsigned long>(uc->uc_mcontext.gregs[REG_RDX]));
        line.add("); killing the process\n");
    } else {
        // kill(2) from outside, not a filter: still die of it, as without the reporter.
        line.add(" thread received SIGSYS from pid ");
        line.add_dec(static_cast<unsigned long>(info->si_pid));
        line.add("; killing the process\n");
    }
    // The raw call: a sanitizer build intercepts write() with code of its own.
    ::syscall(SYS_write, STDERR_FILENO, line.text, line.size);
    ::syscall(kNoSuchCall); // Traps under every filter: the process dies here (see above).
    // Reached only on a thread without a filter (start-up, before enter_thread()): there
    // rt_sigaction is allowed; SIGSYS stays blocked until this handler returns, then the
    // pending signal kills the process by default.
    struct sigaction fallback {};
    fallback.sa_handler = SIG_DFL;
    ::sigaction(SIGSYS, &fallback, nullptr);
    ::syscall(SYS_tgkill, ::getpid(), ::syscall(SYS_gettid), SIGSYS);
}

} // namespace

Result<void> prepare_seccomp()
{
    struct sigaction action {};
    action.sa_sigaction = on_sigsys;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_SIGINFO; // Not SA_RESETHAND: on_sigsys says why.
    if (::sigaction(SIGSYS, &action, nullptr) < 0)
        return fail_errno("sigaction SIGSYS (seccomp reporter)");
    // The programs return these two actions (and ALLOW): ask the kernel once, before any
    // filter (so no list has to allow the query), instead of failing on the first thread.
    // SECCOMP_GET_ACTION_AVAIL and SECCOMP_RET_KILL_PROCESS are Linux 4.14 (seccomp(2)).
    for (std::uint32_t wanted : { std::uint32_t { SECCOMP_RET_TRAP }, std::uint32_t { SECCOMP_RET_KILL_PROCESS } }) {
        if (::syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &wanted) < 0) {
            int const err = errno;
            return fail_errno(fmt::format("seccomp: the kernel lacks seccomp(2) action {:#x} (needs Linux >= 4.14)", wanted), err);
        }
    }
    arm_test_hook(); // Nothing outside build/microvmm-seccomp-hook (seccomp_test_hook.hpp).
    return {};
}

Result<void> load_filter(ThreadKind kind)
{
    auto const program = filter_program(kind);
    // The kernel copies the program (kernel/seccomp.c seccomp_prepare_filter) and never writes it.
    sock_fprog const fprog { static_cast<unsigned short>(program.size()), const_cast<sock_filter*>(program.data()) };
    t_kind_name = thread_kind_name(kind).data(); // A NUL-terminated literal.
    // What libseccomp's seccomp_load() did: no new privileges (a filter needs it without
    // CAP_SYS_ADMIN; already set process-wide by configure(), harmless again), then the filter
    // on this thread only (no SECCOMP_FILTER_FLAG_TSYNC: other threads keep theirs).
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        int const err = errno;
        return fail_errno(fmt::format("loading the {} thread's seccomp filter: prctl(PR_SET_NO_NEW_PRIVS)", thread_kind_name(kind)), err);
    }
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0) {
        int const err = errno;
        return fail_errno(fmt::format("loading the {} thread's seccomp filter ({} instructions)", thread_kind_name(kind),
            program.size()), err);
    }
    return {};
}

} // namespace vmm::sandbox

// SPDX-License-Identifier: MIT
#include "vmm/sandbox/seccomp_filter.hpp"

#include <seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "base/log.hpp"

namespace vmm::sandbox {

namespace {

// x86-64 system call numbers in use end below 512 (arch/x86/entry/syscalls/syscall_64.tbl);
// a larger number prints as "?" with its number.
constexpr int NAME_TABLE_SIZE = 512;
constexpr std::size_t NAME_BYTES = 24;
char g_names[NAME_TABLE_SIZE][NAME_BYTES];

// What the SIGSYS line calls this thread: set by load_filter() before the filter goes on.
thread_local char const* t_kind_name = nullptr;

#ifdef MICROVMM_SECCOMP_TEST_HOOK
// Test builds only (meson -Dseccomp_test_hook=true): MICROVMM_SECCOMP_TEST_VIOLATE=<thread
// type> makes that thread issue a call outside its filter right after loading it.
std::string g_violate;
#endif

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

// SA_SIGINFO | SA_RESETHAND: runs once, on the thread whose call trapped; only write(), getpid,
// gettid and tgkill, which every filter allows.
void on_sigsys(int, siginfo_t* info, void* context)
{
    int const nr = info->si_syscall;
    auto const* uc = static_cast<ucontext_t const*>(context);
    Line line;
    line.add("microvmm: seccomp: ");
    line.add(t_kind_name ? t_kind_name : "unknown");
    line.add(" thread made a forbidden system call: ");
    line.add(nr >= 0 && nr < NAME_TABLE_SIZE && g_names[nr][0] ? g_names[nr] : "?");
    line.add(" (");
    line.add_dec(static_cast<unsigned long>(nr));
    line.add(", args ");
    line.add_hex(static_cast<unsigned long>(uc->uc_mcontext.gregs[REG_RDI]));
    line.add(" ");
    line.add_hex(static_cast<unsigned long>(uc->uc_mcontext.gregs[REG_RSI]));
    line.add(" ");
    line.add_hex(static_cast<unsigned long>(uc->uc_mcontext.gregs[REG_RDX]));
    line.add("); killing the process\n");
    // The raw call: a sanitizer build intercepts write() with code of its own.
    ::syscall(SYS_write, STDERR_FILENO, line.text, line.size);
    // SIGSYS is blocked while this runs and its action is back to the default (core): it is
    // delivered, and kills the process, when the handler returns.
    ::syscall(SYS_tgkill, ::getpid(), ::syscall(SYS_gettid), SIGSYS);
}

int to_scmp(ArgCheck const& check, scmp_arg_cmp& out)
{
    switch (check.op) {
    case ArgCheck::Op::Eq: out = SCMP_CMP(check.index, SCMP_CMP_EQ, check.value); return 0;
    case ArgCheck::Op::Ne: out = SCMP_CMP(check.index, SCMP_CMP_NE, check.value); return 0;
    case ArgCheck::Op::MaskedEq: out = SCMP_CMP(check.index, SCMP_CMP_MASKED_EQ, check.mask, check.value); return 0;
    }
    return -1;
}

struct FilterContext {
    scmp_filter_ctx ctx;
    ~FilterContext() { seccomp_release(ctx); }
};

} // namespace

Result<void> prepare_seccomp()
{
    for (int nr = 0; nr < NAME_TABLE_SIZE; ++nr) {
        char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        if (name) {
            std::strncpy(g_names[nr], name, NAME_BYTES - 1);
            std::free(name);
        }
    }
    struct sigaction action {};
    action.sa_sigaction = on_sigsys;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_SIGINFO | SA_RESETHAND;
    if (::sigaction(SIGSYS, &action, nullptr) < 0)
        return fail_errno("sigaction SIGSYS (seccomp reporter)");
    // libseccomp probes the kernel's seccomp API once per process (cached): do it here, before
    // any filter, so no thread's filter has to allow the probes.
    if (seccomp_api_get() < 2)
        return fail(Errc::Unsupported, "seccomp: the kernel lacks the seccomp(2) system call (Linux >= 3.17)");
#ifdef MICROVMM_SECCOMP_TEST_HOOK
    if (char const* violate = std::getenv("MICROVMM_SECCOMP_TEST_VIOLATE"))
        g_violate = violate;
#endif
    return {};
}

Result<void> load_filter(ThreadKind kind, std::vector<SyscallRule> const& rules)
{
    FilterContext filter { seccomp_init(SCMP_ACT_TRAP) };
    if (!filter.ctx)
        return fail(Errc::Syscall, "seccomp_init failed");
    // A call through another ABI (i386 int 0x80, x32) is no call of ours: kill outright.
    if (int rc = seccomp_attr_set(filter.ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS); rc < 0)
        return fail(Errc::Syscall, fmt::format("seccomp bad-arch action: {}", std::strerror(-rc)));
    // A binary tree of the allowed numbers instead of a linear scan (libseccomp >= 2.5).
    (void)seccomp_attr_set(filter.ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    for (auto const& rule : rules) {
        scmp_arg_cmp cmps[6];
        unsigned count = 0;
        for (auto const& check : rule.checks) {
            VMM_ASSERT(count < 6 && check.index < 6);
            (void)to_scmp(check, cmps[count++]);
        }
        if (int rc = seccomp_rule_add_array(filter.ctx, SCMP_ACT_ALLOW, rule.nr, count, cmps); rc < 0)
            return fail(Errc::Syscall, fmt::format("seccomp rule for system call {}: {}", rule.nr, std::strerror(-rc)));
    }
    t_kind_name = thread_kind_name(kind).data(); // A NUL-terminated literal.
    // libseccomp sets PR_SET_NO_NEW_PRIVS first (SCMP_FLTATR_CTL_NNP defaults to on).
    if (int rc = seccomp_load(filter.ctx); rc < 0)
        return fail(Errc::Syscall, fmt::format("loading the {} thread's seccomp filter: {}", thread_kind_name(kind),
            std::strerror(-rc)));
    return {};
}

void run_test_hook([[maybe_unused]] ThreadKind kind)
{
#ifdef MICROVMM_SECCOMP_TEST_HOOK
    if (g_violate == thread_kind_name(kind))
        ::syscall(SYS_personality, 0xffffffffUL); // Outside every list: must die here with SIGSYS.
#endif
}

} // namespace vmm::sandbox

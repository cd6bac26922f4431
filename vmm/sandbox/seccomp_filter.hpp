// SPDX-License-Identifier: MIT
// Per-thread seccomp-bpf (SECURITY.md "Seccomp filters"); threads load theirs through
// sandbox::enter_thread() (thread_sandbox.hpp). The programs are compiled at build time
// (seccomp_compiler.cpp -> seccomp_programs.hpp). A call outside the list traps
// (SCMP_ACT_TRAP): the SIGSYS handler writes one line naming the thread type and the call, then
// kills the process with SIGSYS.
//
// Why TRAP and not SCMP_ACT_KILL_PROCESS: a killed process leaves its reason only in the audit
// log, which a VMM operator may not read; with TRAP the process still dies of SIGSYS (the
// handler traps again with SIGSYS blocked, which the kernel turns into the default action)
// after an async-signal-safe write() to stderr, on every thread that traps, however many at once. A
// compromised thread cannot catch the trap: rt_sigaction(SIGSYS) is outside every list, and
// the trapped call never runs either way.
#pragma once

#include "base/error.hpp"
#include "vmm/sandbox/thread_kind.hpp"

namespace vmm::sandbox {

// Main thread, once, before any other thread exists: installs the SIGSYS reporter and checks
// the kernel offers the programs' actions (TRAP, KILL_PROCESS).
Result<void> prepare_seccomp();

// Loads `kind`'s program, compiled at build time from rules_for(kind) (seccomp_programs.hpp),
// on the calling thread (no TSYNC: other threads keep theirs). `kind` is also what the SIGSYS
// line calls this thread. Also sets PR_SET_NO_NEW_PRIVS, which a filter needs without
// CAP_SYS_ADMIN. Two system calls, nothing allocated.
Result<void> load_filter(ThreadKind kind);


} // namespace vmm::sandbox

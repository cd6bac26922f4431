// SPDX-License-Identifier: MIT
// What every thread type does first on its own thread: enter_thread(kind) drops the thread's
// capabilities and loads its seccomp filter (SECURITY.md). The vCPU threads call it before
// their first KVM_RUN, the Hyper-V timer and API threads before their first event, the main
// thread once start-up is over (just before the first boot: vmm/main.cpp), so the event loop
// and every Machine it builds, reboots included, run filtered.
//
// Off until configure(): unit tests run VcpuThread, TimerThread and ApiServer in the test
// process unfiltered; microvmm configures it in main() (on unless --no-seccomp).
#pragma once

#include "base/error.hpp"
#include "vmm/sandbox/thread_kind.hpp"

namespace vmm::sandbox {

struct SandboxOptions {
    bool seccomp = true;           // --no-seccomp (unsafe, debugging only) clears it.
    bool drop_capabilities = true;
};

// Main thread, before any other thread exists: PR_SET_NO_NEW_PRIVS, the SIGSYS reporter.
Result<void> configure(SandboxOptions);

// On failure: logs and ends the process with status 1 (a thread that handles guest input must
// not run with privileges or unfiltered when the sandbox was asked for).
void enter_thread(ThreadKind kind);

} // namespace vmm::sandbox

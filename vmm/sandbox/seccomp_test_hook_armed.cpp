// SPDX-License-Identifier: MIT
// The armed test hook, linked only into build/microvmm-seccomp-hook (seccomp_test_hook.hpp).
#include "vmm/sandbox/seccomp_test_hook.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace vmm::sandbox {

namespace {

// Written by arm_test_hook() before any thread exists, read-only afterwards.
std::string g_violate;

} // namespace

void arm_test_hook()
{
    if (char const* violate = std::getenv("MICROVMM_SECCOMP_TEST_VIOLATE"))
        g_violate = violate;
}

void run_test_hook(ThreadKind kind)
{
    if (g_violate == thread_kind_name(kind))
        ::syscall(SYS_personality, 0xffffffffUL); // Outside every list: must die here with SIGSYS.
}

} // namespace vmm::sandbox

// SPDX-License-Identifier: MIT
// The seccomp test hook (SECURITY.md, tests/e2e/e2e_sandbox.py seccomp-hook-*): proof that each
// thread type's filter kills it. The product links seccomp_test_hook.cpp, where both functions do
// nothing; the test-only executable build/microvmm-seccomp-hook links
// seccomp_test_hook_armed.cpp instead (an object ahead of the sandbox archive, so the archive's
// empty member is never pulled in), where MICROVMM_SECCOMP_TEST_VIOLATE=<thread type> makes that
// thread issue a call outside its filter right after loading it. Never in the product's paths.
#pragma once

#include "vmm/sandbox/thread_kind.hpp"

namespace vmm::sandbox {

// Called once by prepare_seccomp(), before any thread exists: reads the environment (armed build).
void arm_test_hook();
// Called by every thread right after its filter is on.
void run_test_hook(ThreadKind kind);

} // namespace vmm::sandbox

// SPDX-License-Identifier: MIT
// The product's test hook: nothing (seccomp_test_hook.hpp). Keep this file free of anything else,
// so the armed build's own definitions replace it whole.
#include "vmm/sandbox/seccomp_test_hook.hpp"

namespace vmm::sandbox {

void arm_test_hook() { }

void run_test_hook(ThreadKind) { }

} // namespace vmm::sandbox

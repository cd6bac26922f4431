// SPDX-License-Identifier: MIT
// Least privilege without the jailer (SECURITY.md "Least privilege"): no new privileges through
// exec, and no capabilities once start-up has opened what needs them.
#pragma once

#include "base/error.hpp"

namespace vmm::sandbox {

// PR_SET_NO_NEW_PRIVS on the calling thread; threads created later inherit it. Main thread,
// before any other thread.
Result<void> set_no_new_privs();

// Capabilities are per thread (capabilities(7)): empties the calling thread's bounding set
// (when it holds CAP_SETPCAP), ambient set and effective, permitted and inheritable sets. A
// thread that already has none (every thread created after the main thread dropped its own)
// only reads them (capget).
Result<void> drop_capabilities();

// The calling thread's effective, permitted and inheritable sets are empty.
bool has_no_capabilities();

} // namespace vmm::sandbox

// SPDX-License-Identifier: MIT
#include "vmm/sandbox/thread_sandbox.hpp"

#include <cstdlib>

#include "base/log.hpp"
#include "vmm/sandbox/least_privilege.hpp"
#include "vmm/sandbox/seccomp_filter.hpp"
#include "vmm/sandbox/seccomp_test_hook.hpp"

namespace vmm::sandbox {

namespace {

// Written once by configure() before any thread exists, read-only afterwards.
bool g_configured = false;
SandboxOptions g_options {};

[[noreturn]] void die(std::string_view thread, Error const& error)
{
    log::error("sandbox", "{} thread: {}", thread, error);
    std::_Exit(1); // EXIT_FAILURE_HOST (vmm/runner.hpp); other threads' destructors must not run.
}

} // namespace

Result<void> configure(SandboxOptions options)
{
    VMM_TRY(set_no_new_privs());
    if (options.seccomp)
        VMM_TRY(prepare_seccomp());
    g_options = options;
    g_configured = true;
    return {};
}

void enter_thread(ThreadKind kind)
{
    if (!g_configured)
        return;
    if (g_options.drop_capabilities)
        if (auto dropped = drop_capabilities(); !dropped)
            die(thread_kind_name(kind), dropped.error());
    if (!g_options.seccomp)
        return;
    if (auto loaded = load_filter(kind); !loaded)
        die(thread_kind_name(kind), loaded.error());
    run_test_hook(kind);
}

} // namespace vmm::sandbox

// SPDX-License-Identifier: MIT
// `microvmm jail`: starts microvmm (this same, statically linked executable) as an unprivileged
// uid/gid in a chroot-like root (pivot_root), new mount, PID, IPC and UTS namespaces (network
// optional) and a cgroup sized from the configuration; waits for it, forwards SIGTERM/SIGINT/
// SIGHUP, and removes the jail directory and cgroup when it exits. docs/jailer.md has the layout,
// SECURITY.md "Jailer" what each step stops.
//
// Exit status: microvmm's own (vmm/runner.hpp), or 2 for a bad option/configuration, 1 when the
// host refuses a step (no root, cgroup write failed, mount failed).
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace vmm::jail {

// `args` are the words after "jail".
int jail_main(std::vector<std::string> const& args);

// Adds a "jail" subcommand that collects everything after it, for main.cpp (as `ctl` does).
CLI::App* add_jail_subcommand(CLI::App& app);

} // namespace vmm::jail

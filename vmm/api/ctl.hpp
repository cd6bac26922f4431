// SPDX-License-Identifier: MIT
// `microvmm ctl`: command-line client of the REST API.
//   microvmm ctl --socket S vm get
//   microvmm ctl --socket S memory get
//   microvmm ctl --socket S memory set N [--wait] [--timeout-ms T]
//   microvmm ctl --socket S events [--count N]
//   microvmm ctl --socket S metrics
// Exit codes: 0 ok, 1 server error or unreachable (fault_message on stderr), 2 usage error.
//
// Hooking into main.cpp (CLI11 subcommand dispatch): register the subcommand with
// add_ctl_subcommand(app) and, after app.parse(), if it was chosen, return
// ctl_main(sub->remaining()). Or, before CLI11 runs at all: if argv[1] == "ctl", return
// ctl_main({argv + 2, argv + argc}).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace vmm::api {

inline constexpr int CTL_OK = 0;
inline constexpr int CTL_SERVER_ERROR = 1;
inline constexpr int CTL_USAGE_ERROR = 2;

// `args` are the words after "ctl". Never throws.
int ctl_main(std::vector<std::string> const& args, std::ostream& out, std::ostream& err);
int ctl_main(std::vector<std::string> const& args); // std::cout, std::cerr

// Adds a "ctl" subcommand that collects everything after it (prefix_command), for main.cpp.
CLI::App* add_ctl_subcommand(CLI::App& app);

} // namespace vmm::api

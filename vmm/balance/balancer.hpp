// SPDX-License-Identifier: MIT
// `microvmm balance`: the host-wide memory arbiter (issue 15 item 2; docs/auto-memory.md
// "Host-wide arbitration"). One round: read every VM's GET /api/v1/memory, measure the host
// (host_supply.hpp), split with hv_balloon::arbitrate() and PUT each auto-mode VM its ceiling as
// a lease. The transport is a seam (the real one is api::http_call over the VM's Unix socket),
// so rounds are tested without sockets or a clock.
//
// Failure rules: a VM whose socket fails is skipped this round; if it was sent a ceiling whose
// lease is still running, that ceiling is counted as its use (it may grow to it), else nothing
// (it is gone, or never was ours). A manual-mode VM is not arbitrated: it holds current_mib,
// which comes off the supply. The arbiter dying needs no rule here: every VM drops the ceiling
// when its lease lapses.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "devices/hv_balloon/dm_arbiter.hpp"
#include "vmm/api/ctl_http.hpp"
#include "vmm/balance/host_supply.hpp"

namespace vmm::balance {

// One VM as GET /api/v1/memory describes it.
struct VmReading {
    bool auto_mode = false;
    std::uint64_t current_mib = 0;
    std::uint64_t resident_mib = 0; // Host memory it holds (host.*_resident_mib), else current_mib.
    hv_balloon::ArbiterVm arbiter;  // want = last_decision.wanted_mib, else current_mib.
};
// The error names the field that is missing or mistyped.
Result<VmReading> parse_vm_reading(std::string_view body);

struct BalanceOptions {
    std::vector<std::string> sockets;   // --socket, repeatable.
    std::optional<std::string> dir;     // --dir: every Unix socket in it, re-listed each round.
    std::uint64_t reserve_mib = 512;    // --reserve-mib: left to the host.
    std::optional<std::uint64_t> host_mib; // --host-mib: a fixed budget instead of measuring.
    std::optional<std::string> cgroup;  // --cgroup: limit - usage of this cgroup directory.
    std::string meminfo = "/proc/meminfo";
    std::uint64_t period_ms = 1000;     // --period-ms.
    std::uint64_t lease_ms = 0;         // --lease-ms (0: 3 periods).
    std::uint64_t granule_mib = hv_balloon::DEFAULT_GRANULE_MIB;
    bool once = false;                  // --once: one round, print it, exit (the ceilings stay leased).
    bool dry_run = false;               // --dry-run: compute and print, PUT nothing.

    std::uint64_t lease() const { return lease_ms ? lease_ms : 3 * period_ms; }
};

using Transport = std::function<Result<api::CtlResponse>(std::string const& socket, std::string_view method,
    std::string_view target, std::string body)>;
using Clock = std::chrono::steady_clock;

class Balancer {
public:
    Balancer(BalanceOptions options, Transport transport);

    // One round over `sockets` with the host's free memory as read now. Returns the round's
    // record (printed as one JSON line by the CLI): supply, every VM's inputs and ceiling, the
    // skipped sockets and why.
    nlohmann::json round(std::vector<std::string> const& sockets, HostFree const& free, Clock::time_point now);
    // DELETE the ceiling of every VM this arbiter leased one to (a clean stop).
    void release();

private:
    struct Sent {
        std::uint64_t ceiling_mib = 0;
        Clock::time_point expires;
    };
    BalanceOptions m_options;
    Transport m_transport;
    std::map<std::string, Sent> m_sent; // By socket.
};

// The sockets of one round: --socket ones, then the Unix sockets in --dir (sorted).
std::vector<std::string> list_sockets(BalanceOptions const& options);

inline constexpr int BALANCE_OK = 0;
inline constexpr int BALANCE_ERROR = 1;
inline constexpr int BALANCE_USAGE_ERROR = 2;

// `args` are the words after "balance". Runs until SIGINT/SIGTERM (or one round with --once).
int balance_main(std::vector<std::string> const& args, std::ostream& out, std::ostream& err);
int balance_main(std::vector<std::string> const& args);

} // namespace vmm::balance

namespace CLI {
class App;
}
namespace vmm::balance {
// Adds a "balance" subcommand that collects everything after it, for main.cpp (as `ctl`).
CLI::App* add_balance_subcommand(CLI::App& app);
} // namespace vmm::balance

// SPDX-License-Identifier: MIT
// `microvmm balance` command line and loop (balancer.hpp has the rules).
#include <csignal>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>

#include "vmm/api/api_json.hpp"
#include "vmm/balance/balancer.hpp"

namespace vmm::balance {

namespace {

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_stop_signal(int) { g_stop = 1; }

// Shorter than a period: a VM that hangs must not stall the round for the others for long.
std::chrono::milliseconds call_timeout(BalanceOptions const& options)
{
    return std::chrono::milliseconds { std::clamp<std::uint64_t>(options.period_ms / 2, 100, 5000) };
}

Result<HostFree> read_free(BalanceOptions const& options)
{
    if (options.host_mib)
        return HostFree { SupplySource::Fixed, *options.host_mib << 20 };
    if (options.cgroup)
        return read_cgroup(*options.cgroup);
    return read_meminfo(options.meminfo);
}

} // namespace

int balance_main(std::vector<std::string> const& args, std::ostream& out, std::ostream& err)
{
    BalanceOptions options;
    try {
        CLI::App app { "Share the host's memory among auto-mode microvmm VMs by weight (docs/auto-memory.md)",
            "microvmm balance" };
        app.add_option("--socket", options.sockets, "A VM's API socket (repeatable)");
        app.add_option("--dir", options.dir, "Arbitrate every Unix socket in this directory (re-listed each round)");
        app.add_option("--reserve-mib", options.reserve_mib, "Memory left to the host")->capture_default_str();
        auto* host = app.add_option("--host-mib", options.host_mib,
            "Fixed budget for all VMs instead of measuring the host (a simulated small host)");
        app.add_option("--cgroup", options.cgroup, "Measure this cgroup's memory limit minus usage (v2 or v1)")
            ->excludes(host);
        app.add_option("--meminfo", options.meminfo, "meminfo file to read")->capture_default_str();
        app.add_option("--period-ms", options.period_ms, "Time between rounds")
            ->check(CLI::Range(std::uint64_t { 100 }, std::uint64_t { 60'000 }))
            ->capture_default_str();
        app.add_option("--lease-ms", options.lease_ms, "Ceiling lease (0: three periods)")
            ->check(CLI::Range(std::uint64_t { 0 }, api::MAX_CEILING_LEASE_MS));
        app.add_option("--granule-mib", options.granule_mib, "Ceilings are multiples of this")
            ->check(CLI::Range(std::uint64_t { 1 }, std::uint64_t { 1024 }))
            ->capture_default_str();
        app.add_flag("--once", options.once, "One round, print it as JSON, exit (the ceilings stay leased)");
        app.add_flag("--dry-run", options.dry_run, "Compute and print the rounds, send nothing");
        std::vector<std::string> reversed(args.rbegin(), args.rend()); // CLI11 parses a reversed vector.
        try {
            app.parse(reversed);
        } catch (CLI::ParseError const& e) {
            int const code = app.exit(e, out, err);
            return code == 0 ? BALANCE_OK : BALANCE_USAGE_ERROR;
        }
    } catch (std::exception const& e) {
        err << "error: " << e.what() << "\n";
        return BALANCE_USAGE_ERROR;
    }
    if (options.sockets.empty() && !options.dir) {
        err << "error: name the VMs: --socket PATH (repeatable) or --dir DIR\n";
        return BALANCE_USAGE_ERROR;
    }
    if (options.lease_ms != 0 && options.lease_ms <= options.period_ms) {
        err << "error: --lease-ms " << options.lease_ms << " must be longer than --period-ms " << options.period_ms
            << " (a lease must outlive the round that renews it)\n";
        return BALANCE_USAGE_ERROR;
    }
    if (options.lease() < api::MIN_CEILING_LEASE_MS || options.lease() > api::MAX_CEILING_LEASE_MS) {
        err << "error: the lease of " << options.lease() << " ms is outside " << api::MIN_CEILING_LEASE_MS << ".."
            << api::MAX_CEILING_LEASE_MS << " ms\n";
        return BALANCE_USAGE_ERROR;
    }
    // The host figure must be readable at start: one clear error instead of a silent loop.
    if (auto free = read_free(options); !free) {
        err << "error: " << free.error().message() << "\n";
        return BALANCE_ERROR;
    }

    auto const timeout = call_timeout(options);
    Balancer balancer { options, [timeout](std::string const& socket, std::string_view method, std::string_view target,
                                     std::string body) { return api::http_call(socket, method, target, std::move(body), timeout); } };
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
    std::string last_plan;
    while (!g_stop) {
        auto const started = Clock::now();
        auto free = read_free(options);
        if (!free) {
            // Keep the leases running out rather than guessing: every VM falls back on its own.
            err << "error: " << free.error().message() << "; skipping this round\n";
        } else {
            auto record = balancer.round(list_sockets(options), *free, started);
            // One line per change of plan (the supply moves every round; the ceilings rarely).
            std::string plan = api::dump_json(record["vms"]) + api::dump_json(record["skipped"]);
            if (options.once || plan != last_plan) {
                out << api::dump_json(record) << "\n" << std::flush;
                last_plan = std::move(plan);
            }
        }
        if (options.once)
            return free ? BALANCE_OK : BALANCE_ERROR;
        auto const next = started + std::chrono::milliseconds { options.period_ms };
        while (!g_stop && Clock::now() < next)
            std::this_thread::sleep_for(std::min<Clock::duration>(next - Clock::now(), std::chrono::milliseconds { 50 }));
    }
    balancer.release();
    err << "balance: stopped; ceilings released\n";
    return BALANCE_OK;
}

int balance_main(std::vector<std::string> const& args) { return balance_main(args, std::cout, std::cerr); }

CLI::App* add_balance_subcommand(CLI::App& app)
{
    auto* balance = app.add_subcommand("balance",
        "Share the host's memory among auto-mode VMs by weight (see `balance --help`)");
    balance->prefix_command();
    balance->set_help_flag();
    return balance;
}

} // namespace vmm::balance

// SPDX-License-Identifier: MIT
// microvmm entry point: `microvmm --config FILE` boots a guest; subcommands (e.g. `ctl`) are
// dispatched by CLI11. Exit statuses: see vmm/runner.hpp (0 guest done, 1 host failure,
// 2 configuration/usage, 128+N signal N).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "base/log.hpp"
#include "base/startup_trace.hpp"
#include "vmm/config.hpp"
#include "vmm/disk_metrics.hpp"
#include "vmm/event_loop.hpp"
#include "vmm/kvm/kvm_system.hpp"
#include "vmm/runner.hpp"
#include "vmm/vcpu_thread.hpp"
#include "vmm/api/api_server.hpp"
#include "vmm/api/ctl.hpp"
#include "vmm/balance/balancer.hpp"
#include "vmm/api/event_hub.hpp"
#include "vmm/dm_api_backend.hpp"
#include <nlohmann/json.hpp>
#include "vmm/backends/hvsock_backend.hpp"
#include "vmm/backends/net_backend.hpp"
#include "vmm/ic_integration.hpp"
#include "vmm/sandbox/thread_sandbox.hpp"
#include "vmm/jail/jailer.hpp"

namespace {

using namespace vmm;

Result<log::Level> parse_level(std::string const& name)
{
    if (name == "debug")
        return log::Level::Debug;
    if (name == "info")
        return log::Level::Info;
    if (name == "warn")
        return log::Level::Warn;
    if (name == "error")
        return log::Level::Error;
    return fail(Errc::Config, "--log-level: expected debug, info, warn or error");
}

int run_vm(std::string const& config_path, std::chrono::steady_clock::time_point start, bool seccomp)
{
    // Before any thread exists (SECURITY.md): no new privileges, the SIGSYS reporter.
    if (auto sandboxed = sandbox::configure(sandbox::SandboxOptions { .seccomp = seccomp }); !sandboxed) {
        log::error("sandbox", "{}", sandboxed.error());
        return EXIT_FAILURE_HOST;
    }
    if (!seccomp)
        log::warn("sandbox", "--no-seccomp: the threads run without seccomp filters (unsafe: for debugging only)");
    // Before any thread exists, so every thread inherits the mask and only the event loop's
    // signalfd sees SIGTERM/SIGINT.
    if (auto blocked = block_termination_signals(); !blocked) {
        log::error("vmm", "blocking SIGTERM/SIGINT before any thread starts: {}", blocked.error());
        return EXIT_FAILURE_HOST;
    }
    auto kvm = kvm::KvmSystem::open();
    startup::mark(startup::Phase::KvmOpened);
    // Configuration problems are reported first even without KVM, so a typo is never hidden
    // behind "no /dev/kvm"; the vCPU limit then falls back to the larger of the two checks.
    u32 const max_vcpus = kvm ? kvm->max_vcpus() : 1024;
    auto config = load_config(config_path, ConfigLimits { max_vcpus });
    if (!config) {
        std::fprintf(stderr, "microvmm: config error: %s\n", config.error().message().c_str());
        return EXIT_CONFIG;
    }
    startup::mark(startup::Phase::ConfigLoaded);
    if (config->boot.firmware == BootFirmware::Uefi) {
        std::fprintf(stderr, "microvmm: UEFI boot is not implemented; Windows guests need it\n");
        return EXIT_FAILURE_HOST;
    }
    if (!kvm) {
        std::fprintf(stderr, "microvmm: KVM unavailable: %s\n", kvm.error().message().c_str());
        return EXIT_FAILURE_HOST;
    }
    if (auto installed = VcpuThread::install_kick_handler(); !installed) {
        log::error("vmm", "installing the vCPU kick signal handler: {}", installed.error());
        return EXIT_FAILURE_HOST;
    }
    // Disk images are opened and locked once, before any filter (the loop's allows no writable
    // open) and before the first boot; every boot's NVMe controllers share them.
    auto disks = open_disk_images(config->disks);
    if (!disks) {
        std::fprintf(stderr, "microvmm: config error: %s\n", disks.error().message().c_str());
        return EXIT_CONFIG;
    }
    auto loop = EventLoop::create();
    if (!loop) {
        log::error("vmm", "creating the event loop: {}", loop.error());
        return EXIT_FAILURE_HOST;
    }
    Config const dm_config = *config;
    Runner runner { std::move(*config), machine_factory(*kvm, *disks), **loop, start };
    // The DM device (rebuilt per boot, vmm/dm_device.*) and the REST API over it.
    api::EventHub hub;
    DmApiBackend backend { dm_config, **loop, hub, start };
    runner.on_machine_created([&](Machine& machine) { backend.attach(machine, runner.boot_count()); });
    runner.on_guest_reset([&](Machine& machine) { backend.detach(machine, true); });
    runner.on_machine_exit([&](Machine& machine) { backend.detach(machine, false); });
    runner.on_guest_crash([&](hyperv::CrashReport const& report) {
        nlohmann::json fields = nlohmann::json::object();
        for (std::size_t i = 0; i < std::size(report.params); ++i)
            fields[fmt::format("p{}", i)] = report.params[i];
        fields["message"] = report.message;
        hub.publish("guest_crashed", fields);
    });
    // The integration services (vmm/ic_integration.*): shutdown and heartbeat ICs per boot; the
    // REST backend is the DM one decorated with the guest's health and shutdown.
    IcIntegration services { dm_config, **loop, hub, backend };
    runner.on_machine_created([&](Machine& machine) { services.attach(machine); });
    runner.on_guest_reset([&](Machine& machine) { services.detach(machine); });
    runner.on_machine_exit([&](Machine& machine) { services.detach(machine); });
    runner.on_terminate_request([&] { return services.request_shutdown_for_signal([&] { runner.stop_for_signal(); }); });
    // hv_sock on a Unix socket (vmm/backends/hvsock_backend.*): its connections live per boot.
    HvSockBackend vsock { dm_config.vsock, **loop };
    if (auto started = vsock.start(); !started) {
        log::error("vsock", "{}", started.error());
        return EXIT_FAILURE_HOST;
    }
    runner.on_machine_created([&](Machine& machine) { vsock.attach(machine); });
    runner.on_guest_reset([&](Machine& machine) { vsock.detach(machine); });
    runner.on_machine_exit([&](Machine& machine) { vsock.detach(machine); });
    // [[net]] NICs (vmm/backends/net_backend.*): TAPs opened once, netvsc devices per boot; the
    // REST backend gains the NICs.
    NetBackend net { dm_config.net, services };
    if (auto started = net.start(); !started) {
        log::error("net", "{}", started.error());
        return EXIT_FAILURE_HOST;
    }
    runner.on_machine_created([&](Machine& machine) { net.attach(machine); });
    runner.on_guest_reset([&](Machine& machine) { net.detach(machine); });
    runner.on_machine_exit([&](Machine& machine) { net.detach(machine); });
    // Per-disk NVMe counters in /metrics (vmm/disk_metrics.*), summed over boots.
    DiskMetrics disk_metrics { dm_config.disks, net };
    runner.on_machine_created([&](Machine& machine) { disk_metrics.attach(machine); });
    runner.on_guest_reset([&](Machine& machine) { disk_metrics.detach(machine); });
    runner.on_machine_exit([&](Machine& machine) { disk_metrics.detach(machine); });
    std::unique_ptr<api::ApiServer> server;
    if (dm_config.api.socket) {
        auto started = api::ApiServer::start(disk_metrics, hub, api::ApiServerConfig { dm_config.api.socket->string() });
        if (!started) {
            log::error("api", "starting the REST API on {}: {}", dm_config.api.socket->string(), started.error());
            return EXIT_FAILURE_HOST;
        }
        server = std::move(*started);
        log::info("api", "REST API on {}", dm_config.api.socket->string());
    }
    // /dev/kvm, the API and vsock sockets, the serial output are open: the loop thread drops its
    // capabilities and loads its filter before the first boot (vmm/sandbox/thread_sandbox.hpp).
    runner.on_started([] { sandbox::enter_thread(sandbox::ThreadKind::EventLoop); });
    startup::mark(startup::Phase::LoopReady);
    int const status = runner.run();
    if (server)
        server->stop(); // Before the Runner (and its last Machine) goes away.
    return status;
}

} // namespace

int main(int argc, char** argv)
{
    auto const start = std::chrono::steady_clock::now();
    startup::set_origin(start);
    CLI::App app { "microvmm: a minimal KVM VMM with Hyper-V Dynamic Memory", "microvmm" };
    std::string config_path;
    std::string level_name = "info";
    app.add_option("-c,--config", config_path, "TOML machine configuration (see configs/README.md)");
    app.add_option("--log-level", level_name, "debug, info, warn or error")->capture_default_str();
    bool no_seccomp = false;
    app.add_flag("--no-seccomp", no_seccomp, "UNSAFE, debugging only: run without the per-thread seccomp filters (SECURITY.md)");
    app.set_version_flag("--version", std::string("microvmm ") + MICROVMM_VERSION);
    // Subcommands hook in here; without one, --config is required.
    CLI::App* ctl = api::add_ctl_subcommand(app);
    CLI::App* balance = balance::add_balance_subcommand(app);
    CLI::App* jail = jail::add_jail_subcommand(app);
    app.require_subcommand(0, 1);
    try {
        app.parse(argc, argv);
    } catch (CLI::CallForHelp const& e) { // CLI11 reports help/version/usage by throwing.
        return app.exit(e);
    } catch (CLI::CallForAllHelp const& e) {
        return app.exit(e);
    } catch (CLI::CallForVersion const& e) {
        return app.exit(e);
    } catch (CLI::ParseError const& e) {
        app.exit(e); // Prints the message.
        return EXIT_CONFIG;
    }
    if (ctl->parsed())
        return api::ctl_main(ctl->remaining());
    if (balance->parsed())
        return balance::balance_main(balance->remaining());
    if (jail->parsed())
        return jail::jail_main(jail->remaining());
    auto level = parse_level(level_name);
    if (!level) {
        std::fprintf(stderr, "microvmm: %s\n", std::string(level.error().what()).c_str());
        return EXIT_CONFIG;
    }
    log::set_level(*level);
    if (config_path.empty()) {
        std::fprintf(stderr, "microvmm: --config FILE is required (see --help)\n");
        return EXIT_CONFIG;
    }
    return run_vm(config_path, start, !no_seccomp);
}

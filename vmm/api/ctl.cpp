// SPDX-License-Identifier: MIT
// `microvmm ctl` subcommands on top of ctl_http (see ctl.hpp for the command line).
#include "vmm/api/ctl.hpp"

#include <algorithm>
#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "vmm/api/api_json.hpp"
#include "vmm/api/ctl_http.hpp"

namespace vmm::api {

namespace {

using nlohmann::json;

struct Options {
    std::string socket;
    std::uint64_t target_mib = 0;
    bool wait = false;
    std::optional<std::uint64_t> timeout_ms;
    std::uint64_t count = 0;
    bool reboot = false;
};

// The server's fault_message, or the raw body if it is not our error shape.
std::string fault_text(CtlResponse const& response)
{
    auto body = json::parse(response.body, nullptr, false);
    if (body.is_object() && body.contains("fault_message") && body["fault_message"].is_string())
        return body["fault_message"].get<std::string>();
    return response.body;
}

int print_get(Options const& options, char const* target, bool pretty, std::ostream& out, std::ostream& err)
{
    auto response = http_call(options.socket, "GET", target);
    if (!response) {
        err << "error: " << response.error().message() << "\n";
        return CTL_SERVER_ERROR;
    }
    if (response->status != 200) {
        err << "error: " << response->status << " " << fault_text(*response) << "\n";
        return CTL_SERVER_ERROR;
    }
    auto body = json::parse(response->body, nullptr, false);
    if (pretty && !body.is_discarded())
        out << dump_json(body, 2) << "\n";
    else
        out << response->body;
    return CTL_OK;
}

int exit_for(json const& operation, std::ostream& err)
{
    auto state = operation.value("state", std::string("unknown"));
    if (state == "done")
        return CTL_OK;
    err << "error: operation " << operation.value("id", std::uint64_t { 0 }) << " ended " << state;
    if (operation.contains("reason") && operation["reason"].is_string())
        err << ": " << operation["reason"].get<std::string>();
    err << "\n";
    return CTL_SERVER_ERROR;
}

// PUT /api/v1/vm/shutdown: prints the server's answer (method "guest" or "forced").
int vm_shutdown(Options const& options, std::ostream& out, std::ostream& err)
{
    json request { { "reboot", options.reboot } };
    if (options.timeout_ms)
        request["timeout_ms"] = *options.timeout_ms;
    auto response = http_call(options.socket, "PUT", "/api/v1/vm/shutdown", dump_json(request));
    if (!response) {
        err << "error: " << response.error().message() << "\n";
        return CTL_SERVER_ERROR;
    }
    if (response->status != 202) {
        err << "error: " << response->status << " " << fault_text(*response) << "\n";
        return CTL_SERVER_ERROR;
    }
    auto body = json::parse(response->body, nullptr, false);
    out << (body.is_discarded() ? response->body : dump_json(body, 2)) << "\n";
    return CTL_OK;
}

int memory_set(Options const& options, std::ostream& out, std::ostream& err)
{
    // Subscribe before the PUT so no progress event of the new operation can be missed.
    std::optional<LineStream> events;
    if (options.wait) {
        auto stream = LineStream::open(options.socket, "/api/v1/events");
        if (!stream) {
            err << "error: " << stream.error().message() << "\n";
            return CTL_SERVER_ERROR;
        }
        events.emplace(std::move(*stream));
    }
    json request { { "target_mib", options.target_mib } };
    auto timeout = std::chrono::seconds(30);
    if (options.timeout_ms) {
        request["timeout_ms"] = *options.timeout_ms;
        timeout += std::chrono::duration_cast<std::chrono::seconds>(std::chrono::milliseconds(*options.timeout_ms));
    }
    auto response = http_call(options.socket, "PUT", "/api/v1/memory/target", dump_json(request),
        std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
    if (!response) {
        err << "error: " << response.error().message() << "\n";
        return CTL_SERVER_ERROR;
    }
    if (response->status != 200 && response->status != 202) {
        err << "error: " << response->status << " " << fault_text(*response) << "\n";
        return CTL_SERVER_ERROR;
    }
    auto operation = json::parse(response->body, nullptr, false);
    if (!operation.is_object()) {
        err << "error: the server sent an invalid operation: " << response->body << "\n";
        return CTL_SERVER_ERROR;
    }
    out << dump_json(operation, 2) << "\n" << std::flush;
    if (!options.wait)
        return CTL_OK;
    if (operation.value("state", std::string()) != "running")
        return exit_for(operation, err);

    auto const id = operation.value("id", std::uint64_t { 0 });
    for (;;) {
        auto line = events->next_line();
        if (!line) {
            err << "error: " << line.error().message() << "\n";
            return CTL_SERVER_ERROR;
        }
        if (!*line) {
            err << "error: the event stream ended before operation " << id << " finished\n";
            return CTL_SERVER_ERROR;
        }
        auto event = json::parse(**line, nullptr, false);
        if (!event.is_object())
            continue;
        auto const type = event.value("event", std::string());
        if (type == "events_dropped") {
            // We lost events: ask for the operation's state instead of trusting the stream.
            auto current = http_call(options.socket, "GET", fmt::format("/api/v1/memory/operations/{}", id));
            if (current && current->status == 200) {
                auto op = json::parse(current->body, nullptr, false);
                if (op.is_object() && op.value("state", std::string("running")) != "running") {
                    out << current->body << "\n";
                    return exit_for(op, err);
                }
            }
            continue;
        }
        if ((type != "operation_progress" && type != "operation_done") || event.value("id", std::uint64_t { 0 }) != id)
            continue;
        out << **line << "\n" << std::flush;
        if (type == "operation_done")
            return exit_for(event, err);
    }
}

int stream_events(Options const& options, std::ostream& out, std::ostream& err)
{
    auto events = LineStream::open(options.socket, "/api/v1/events");
    if (!events) {
        err << "error: " << events.error().message() << "\n";
        return CTL_SERVER_ERROR;
    }
    for (std::uint64_t seen = 0; options.count == 0 || seen < options.count; ++seen) {
        auto line = events->next_line();
        if (!line) {
            err << "error: " << line.error().message() << "\n";
            return CTL_SERVER_ERROR;
        }
        if (!*line)
            return CTL_OK; // The server closed the stream (VMM exiting).
        out << **line << "\n" << std::flush;
    }
    return CTL_OK;
}

} // namespace

int ctl_main(std::vector<std::string> const& args, std::ostream& out, std::ostream& err)
{
    Options options;
    enum class Command { None, VmGet, VmShutdown, MemoryGet, MemorySet, Events, Metrics } command = Command::None;
    try {
        CLI::App app { "Control a running microvmm through its API socket", "microvmm ctl" };
        app.require_subcommand(1);
        app.add_option("--socket", options.socket, "API socket path ([api] socket in vm.toml)")
            ->envname("MICROVMM_API_SOCKET")
            ->required();
        auto* vm = app.add_subcommand("vm", "VM state")->require_subcommand(1);
        vm->add_subcommand("get", "Print GET /api/v1/vm")->callback([&] { command = Command::VmGet; });
        auto* shutdown = vm->add_subcommand("shutdown", "Ask the guest to shut down; forced after the timeout");
        shutdown->add_option("--timeout-ms", options.timeout_ms, "Force the stop after T ms (default: [integration] shutdown_timeout_ms)");
        shutdown->add_flag("--reboot", options.reboot, "Restart instead of powering off");
        shutdown->callback([&] { command = Command::VmShutdown; });
        auto* memory = app.add_subcommand("memory", "Guest memory")->require_subcommand(1);
        memory->add_subcommand("get", "Print GET /api/v1/memory")->callback([&] { command = Command::MemoryGet; });
        auto* set = memory->add_subcommand("set", "Set the memory target (MiB)");
        set->add_option("target_mib", options.target_mib, "New guest memory size in MiB")->required();
        set->add_flag("--wait", options.wait, "Print progress events until the operation finishes");
        set->add_option("--timeout-ms", options.timeout_ms, "Let the server wait up to T ms before answering");
        set->callback([&] { command = Command::MemorySet; });
        auto* events = app.add_subcommand("events", "Stream events as JSON lines");
        events->add_option("--count", options.count, "Exit after N events (0: never)");
        events->callback([&] { command = Command::Events; });
        app.add_subcommand("metrics", "Print GET /metrics")->callback([&] { command = Command::Metrics; });

        std::vector<std::string> reversed(args.rbegin(), args.rend()); // CLI11 parses a reversed vector.
        try {
            app.parse(reversed);
        } catch (CLI::ParseError const& e) {
            int const code = app.exit(e, out, err);
            return code == 0 ? CTL_OK : CTL_USAGE_ERROR;
        }
    } catch (std::exception const& e) {
        err << "error: " << e.what() << "\n";
        return CTL_USAGE_ERROR;
    }

    try {
        switch (command) {
        case Command::VmGet:
            return print_get(options, "/api/v1/vm", true, out, err);
        case Command::VmShutdown:
            return vm_shutdown(options, out, err);
        case Command::MemoryGet:
            return print_get(options, "/api/v1/memory", true, out, err);
        case Command::MemorySet:
            return memory_set(options, out, err);
        case Command::Events:
            return stream_events(options, out, err);
        case Command::Metrics:
            return print_get(options, "/metrics", false, out, err);
        case Command::None:
            break;
        }
    } catch (std::exception const& e) {
        err << "error: " << e.what() << "\n"; // bad_alloc, or a JSON accessor surprise.
        return CTL_SERVER_ERROR;
    }
    err << "error: no command\n";
    return CTL_USAGE_ERROR;
}

int ctl_main(std::vector<std::string> const& args)
{
    return ctl_main(args, std::cout, std::cerr);
}

CLI::App* add_ctl_subcommand(CLI::App& app)
{
    auto* ctl = app.add_subcommand("ctl", "Control a running microvmm through its API socket (see `ctl --help`)");
    ctl->prefix_command(); // Everything after "ctl" is left in ctl->remaining() for ctl_main().
    ctl->set_help_flag();  // `ctl --help` goes to ctl_main's own parser.
    return ctl;
}

} // namespace vmm::api

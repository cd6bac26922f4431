// SPDX-License-Identifier: MIT
// fuzz_config: the TOML configuration loader (vmm/config.hpp parse_config) on arbitrary text. The
// file is user input: whatever it holds, the loader returns a Config or one error.
//
// Invariants after every input:
//  - a refusal is one Errc::Config error on one line that says where: a TOML syntax position,
//    the unknown table or key, or the "table.key" (or table) whose value is wrong;
//  - an accepted Config obeys the documented rules (configs/README.md): 1..1024 vCPUs,
//    0 < memory_mib <= max_memory_mib <= MAX_MEMORY_MIB_LIMIT, a kernel for direct boot, absolute
//    paths, Dynamic Memory only with Hyper-V;
//  - an accepted Config re-validates: written back as TOML (toml++'s serializer) and parsed
//    again it yields the same Config.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

#include <toml++/toml.h>

#include "base/log.hpp"
#include "vmm/config.hpp"

namespace {

using namespace vmm;

[[noreturn]] void broken(char const* what)
{
    std::fprintf(stderr, "fuzz_config invariant broken: %s\n", what);
    __builtin_trap();
}

bool is_name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }

// "name" or "name.name" followed by ": " at the start of `text`.
bool starts_with_key(std::string_view text)
{
    std::size_t i = 0;
    for (int part = 0; part < 2; ++part) {
        std::size_t start = i;
        while (i < text.size() && is_name_char(text[i]))
            ++i;
        if (i == start)
            return false;
        if (part == 0 && i < text.size() && text[i] == '.')
            ++i;
        else
            break;
    }
    return text.substr(i).starts_with(": ") || text.substr(i).starts_with(" (");
}

bool error_names_its_place(std::string_view message)
{
    return message.starts_with("TOML syntax error at line ") || message.starts_with("unknown table [")
        || message.starts_with("unknown key ") || starts_with_key(message)
        // [guest_info] keys are the user's own strings (any characters): named as guest_info.<key>.
        || message.starts_with("guest_info.") || message.starts_with("guest_info: ");
}

void check_rules(Config const& config)
{
    auto const& machine = config.machine;
    if (machine.vcpus < 1 || machine.vcpus > 1024)
        broken("vcpus out of 1..1024");
    if (machine.memory_mib == 0 || machine.memory_mib > machine.max_memory_mib || machine.max_memory_mib > MAX_MEMORY_MIB_LIMIT)
        broken("memory sizes out of order");
    if (config.boot.firmware == BootFirmware::Direct && config.boot.kernel.empty())
        broken("direct boot without a kernel");
    if (!config.boot.kernel.empty() && !config.boot.kernel.is_absolute())
        broken("relative kernel path");
    if ((config.boot.initrd && !config.boot.initrd->is_absolute()) || (config.serial.output_file && !config.serial.output_file->is_absolute())
        || (config.api.socket && !config.api.socket->is_absolute()) || (config.vsock.uds_path && !config.vsock.uds_path->is_absolute()))
        broken("relative path");
    if (config.vsock.uds_path && (!config.hyperv.enabled || config.vsock.uds_path->string().size() > MAX_VSOCK_UDS_PATH_BYTES))
        broken("vsock without Hyper-V or with an over-long path");
    if (config.dynamic_memory.enabled && !config.hyperv.enabled)
        broken("Dynamic Memory without Hyper-V");
    auto const& dm = config.dynamic_memory;
    if (dm.min_mib > machine.memory_mib || dm.max_mib < machine.memory_mib || dm.max_mib > machine.max_memory_mib
        || dm.buffer_percent > 2000 || dm.weight > 100 || dm.hysteresis_percent > 50 || dm.min_step_mib == 0)
        broken("dynamic memory policy out of bounds");
    if (dm.auto_mode && !dm.enabled)
        broken("auto mode without Dynamic Memory");
    if (dm.free_page_reporting && (!dm.enabled || !config.hyperv.enlightenments.extended_hypercalls))
        broken("free page reporting without Dynamic Memory or extended hypercalls");
}

// The Config as a TOML document (every key explicit, so no default is involved). A key added to
// config.hpp belongs here and in same() too.
std::string to_toml(Config const& config)
{
    auto i64_of = [](std::uint64_t value) { return static_cast<std::int64_t>(value); };
    toml::table machine { { "vcpus", std::int64_t { config.machine.vcpus } }, { "memory_mib", i64_of(config.machine.memory_mib) },
        { "max_memory_mib", i64_of(config.machine.max_memory_mib) },
        { "on_reboot", config.machine.on_reboot == OnReboot::Exit ? "exit" : "reset" } };
    toml::array features;
    for (auto const& feature : config.cpu.hide_features)
        features.push_back(feature);
    toml::table boot { { "firmware", config.boot.firmware == BootFirmware::Uefi ? "uefi" : "direct" },
        { "cmdline", config.boot.cmdline } };
    if (!config.boot.kernel.empty())
        boot.insert("kernel", config.boot.kernel.string());
    if (config.boot.initrd)
        boot.insert("initrd", config.boot.initrd->string());
    toml::table root { { "machine", machine }, { "cpu", toml::table { { "hide_features", features } } }, { "boot", boot },
        { "serial", toml::table { { "output", config.serial.output_file ? config.serial.output_file->string() : "stdout" } } },
        { "dynamic_memory",
            toml::table { { "enabled", config.dynamic_memory.enabled },
                { "post_connect_delay_ms", i64_of(config.dynamic_memory.post_connect_delay_ms) },
                { "max_request_pages", i64_of(config.dynamic_memory.max_request_pages) },
                { "balloon_reply_timeout_ms", i64_of(config.dynamic_memory.balloon_reply_timeout_ms) },
                { "unballoon_reply_timeout_ms", i64_of(config.dynamic_memory.unballoon_reply_timeout_ms) },
                { "hot_add_reply_timeout_ms", i64_of(config.dynamic_memory.hot_add_reply_timeout_ms) },
                { "hot_add_reply_timeout_per_block_ms", i64_of(config.dynamic_memory.hot_add_reply_timeout_per_block_ms) },
                { "mode", config.dynamic_memory.auto_mode ? "auto" : "manual" },
                { "on_reboot_size", config.dynamic_memory.reboot_last_size ? "last" : "boot" },
                { "min_mib", i64_of(config.dynamic_memory.min_mib) }, { "max_mib", i64_of(config.dynamic_memory.max_mib) },
                { "buffer_percent", i64_of(config.dynamic_memory.buffer_percent) },
                { "weight", i64_of(config.dynamic_memory.weight) },
                { "min_step_mib", i64_of(config.dynamic_memory.min_step_mib) },
                { "min_interval_ms", i64_of(config.dynamic_memory.min_interval_ms) },
                { "hysteresis_percent", i64_of(config.dynamic_memory.hysteresis_percent) },
                { "shrink_delay_ms", i64_of(config.dynamic_memory.shrink_delay_ms) },
                { "free_page_reporting", config.dynamic_memory.free_page_reporting } } },
        { "hyperv", toml::table { { "enabled", config.hyperv.enabled } } } };
    if (config.api.socket)
        root.insert("api", toml::table { { "socket", config.api.socket->string() } });
    auto const& ic = config.integration;
    root.insert("integration",
        toml::table { { "enabled", ic.enabled }, { "shutdown_timeout_ms", i64_of(ic.shutdown_timeout_ms) },
            { "heartbeat_interval_ms", i64_of(ic.heartbeat_interval_ms) }, { "heartbeat_late_ms", i64_of(ic.heartbeat_late_ms) },
            { "time_sync", ic.time_sync }, { "time_sync_period_ms", i64_of(ic.time_sync_period_ms) }, { "kvp", ic.kvp },
            { "kvp_refresh_ms", i64_of(ic.kvp_refresh_ms) } });
    if (!config.guest_info.pairs.empty()) {
        toml::table guest_info;
        for (auto const& [key, value] : config.guest_info.pairs)
            guest_info.insert(key, value);
        root.insert("guest_info", std::move(guest_info));
    }
    if (config.vsock.uds_path)
        root.insert("vsock", toml::table { { "uds_path", config.vsock.uds_path->string() } });
    std::ostringstream out;
    // Basic strings with escapes only: toml++ 3.3's writer puts a string holding a newline and
    // ''' into a multi-line literal string, which that ''' ends early (invalid TOML it then
    // refuses itself). microvmm never writes TOML; this only keeps the round trip honest.
    out << toml::toml_formatter { root, toml::format_flags::indentation };
    return out.str();
}

bool same(Config const& a, Config const& b)
{
    return a.machine.vcpus == b.machine.vcpus && a.machine.memory_mib == b.machine.memory_mib
        && a.machine.max_memory_mib == b.machine.max_memory_mib && a.machine.on_reboot == b.machine.on_reboot
        && a.cpu.hide_features == b.cpu.hide_features && a.boot.firmware == b.boot.firmware && a.boot.kernel == b.boot.kernel
        && a.boot.initrd == b.boot.initrd && a.boot.cmdline == b.boot.cmdline && a.serial.output_file == b.serial.output_file
        && a.api.socket == b.api.socket && a.dynamic_memory.enabled == b.dynamic_memory.enabled
        && a.dynamic_memory.post_connect_delay_ms == b.dynamic_memory.post_connect_delay_ms
        && a.dynamic_memory.max_request_pages == b.dynamic_memory.max_request_pages
        && a.dynamic_memory.balloon_reply_timeout_ms == b.dynamic_memory.balloon_reply_timeout_ms
        && a.dynamic_memory.unballoon_reply_timeout_ms == b.dynamic_memory.unballoon_reply_timeout_ms
        && a.dynamic_memory.hot_add_reply_timeout_ms == b.dynamic_memory.hot_add_reply_timeout_ms
        && a.dynamic_memory.hot_add_reply_timeout_per_block_ms == b.dynamic_memory.hot_add_reply_timeout_per_block_ms
        && a.dynamic_memory.auto_mode == b.dynamic_memory.auto_mode
        && a.dynamic_memory.reboot_last_size == b.dynamic_memory.reboot_last_size
        && a.dynamic_memory.min_mib == b.dynamic_memory.min_mib && a.dynamic_memory.max_mib == b.dynamic_memory.max_mib
        && a.dynamic_memory.buffer_percent == b.dynamic_memory.buffer_percent
        && a.dynamic_memory.weight == b.dynamic_memory.weight
        && a.dynamic_memory.min_step_mib == b.dynamic_memory.min_step_mib
        && a.dynamic_memory.min_interval_ms == b.dynamic_memory.min_interval_ms
        && a.dynamic_memory.hysteresis_percent == b.dynamic_memory.hysteresis_percent
        && a.dynamic_memory.shrink_delay_ms == b.dynamic_memory.shrink_delay_ms
        && a.dynamic_memory.free_page_reporting == b.dynamic_memory.free_page_reporting
        && a.hyperv.enabled == b.hyperv.enabled && a.vsock.uds_path == b.vsock.uds_path
        && a.integration.enabled == b.integration.enabled
        && a.integration.shutdown_timeout_ms == b.integration.shutdown_timeout_ms
        && a.integration.heartbeat_interval_ms == b.integration.heartbeat_interval_ms
        && a.integration.heartbeat_late_ms == b.integration.heartbeat_late_ms && a.integration.time_sync == b.integration.time_sync
        && a.integration.time_sync_period_ms == b.integration.time_sync_period_ms && a.integration.kvp == b.integration.kvp
        && a.integration.kvp_refresh_ms == b.integration.kvp_refresh_ms && a.guest_info.pairs == b.guest_info.pairs;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    static bool const quiet = (log::set_level(log::Level::Off), true);
    (void)quiet;
    std::string_view text { reinterpret_cast<char const*>(data), size };
    std::filesystem::path const base_dir { "/fuzz/configs" };
    auto config = parse_config(text, base_dir);
    if (!config) {
        auto const& error = config.error();
        std::string_view message = error.what();
        if (error.code() != Errc::Config)
            broken("refusal is not an Errc::Config error");
        if (message.empty() || message.find_first_of("\r\n") != std::string_view::npos)
            broken("error message is empty or not one line");
        if (!error_names_its_place(message)) {
            std::fprintf(stderr, "message: %.*s\n", static_cast<int>(message.size()), message.data());
            broken("error message names no key, table or position");
        }
        return 0;
    }
    check_rules(*config);
    auto const written = to_toml(*config);
    auto again = parse_config(written, base_dir);
    if (!again) {
        std::fprintf(stderr, "re-parse: %.*s\nof:\n%s\n", static_cast<int>(again.error().what().size()),
            again.error().what().data(), written.c_str());
        broken("an accepted config written back as TOML is refused");
    }
    if (!same(*config, *again))
        broken("an accepted config written back as TOML parses differently");
    return 0;
}

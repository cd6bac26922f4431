// SPDX-License-Identifier: MIT
// TOML -> Config. The schema is a table of tables of keys, each key a small parser, so a new
// key is one line and an unknown key or table is always an error (typos must not pass).
#include "vmm/config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>

#include <toml++/toml.h>

#include "base/fd.hpp"
#include "base/read_text_file.hpp"
#include "devices/ic/kvp_ic.hpp"
#include "vmm/cpuid.hpp"
#include "vmm/toml_text_guard.hpp"

namespace vmm {

namespace {

namespace fs = std::filesystem;

// Parse state: the Config plus whatever needs a default from another key.
struct Draft {
    Config config;
    fs::path base_dir;
    std::optional<bool> hyperv_enabled;
    std::optional<bool> integration_enabled;
    std::optional<bool> pci_enabled;
};

using KeyParser = std::function<Result<void>(toml::node const&, std::string const& key, Draft&)>;
struct KeySpec {
    std::string_view name;
    KeyParser parse;
};
struct TableSpec {
    std::string_view name;
    std::vector<KeySpec> keys;
};

// A config error is one line whatever the file held: control characters that reach a message
// (a newline inside a quoted key or value, or the character toml++ quotes where it stopped) are
// shown escaped.
std::string one_line(std::string_view text)
{
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        auto const byte = static_cast<unsigned char>(c);
        if (c == '\n')
            out += "\\n";
        else if (c == '\r')
            out += "\\r";
        else if (c == '\t')
            out += "\\t";
        else if (byte < 0x20 || byte == 0x7F)
            out += fmt::format("\\x{:02x}", byte);
        else
            out += c;
    }
    return out;
}

std::unexpected<Error> config_error(std::string message) { return fail(Errc::Config, one_line(message)); }

Result<i64> as_integer(toml::node const& node, std::string const& key)
{
    if (auto value = node.value_exact<i64>())
        return *value;
    return config_error(fmt::format("{}: expected an integer", key));
}

Result<u64> as_positive(toml::node const& node, std::string const& key)
{
    i64 value = VMM_TRY(as_integer(node, key));
    if (value <= 0)
        return config_error(fmt::format("{}: must be positive (got {})", key, value));
    return static_cast<u64>(value);
}

Result<u64> as_non_negative(toml::node const& node, std::string const& key)
{
    i64 value = VMM_TRY(as_integer(node, key));
    if (value < 0)
        return config_error(fmt::format("{}: must not be negative (got {})", key, value));
    return static_cast<u64>(value);
}

// A DM reply timeout: positive (or, with `allow_zero`, zero) and at most a day, so the engine's
// nanosecond clock arithmetic cannot overflow and a typo in the unit is caught.
Result<u64> as_timeout_ms(toml::node const& node, std::string const& key, bool allow_zero = false)
{
    constexpr u64 MAX_TIMEOUT_MS = 24ull * 3600 * 1000;
    u64 value = VMM_TRY(allow_zero ? as_non_negative(node, key) : as_positive(node, key));
    if (value > MAX_TIMEOUT_MS)
        return config_error(fmt::format("{}: at most {} ms (one day; got {})", key, MAX_TIMEOUT_MS, value));
    return value;
}

Result<u64> as_at_most(toml::node const& node, std::string const& key, u64 limit)
{
    u64 value = VMM_TRY(as_non_negative(node, key));
    if (value > limit)
        return config_error(fmt::format("{}: at most {} (got {})", key, limit, value));
    return value;
}

Result<bool> as_bool(toml::node const& node, std::string const& key)
{
    if (auto value = node.value_exact<bool>())
        return *value;
    return config_error(fmt::format("{}: expected true or false", key));
}

Result<std::string> as_string(toml::node const& node, std::string const& key)
{
    if (auto value = node.value_exact<std::string>())
        return *value;
    return config_error(fmt::format("{}: expected a string", key));
}

Result<fs::path> as_path(toml::node const& node, std::string const& key, Draft const& draft)
{
    std::string text = VMM_TRY(as_string(node, key));
    if (text.empty())
        return config_error(fmt::format("{}: empty path", key));
    fs::path path { text };
    return path.is_absolute() ? path : (draft.base_dir / path).lexically_normal();
}

Result<std::vector<std::string>> as_string_array(toml::node const& node, std::string const& key)
{
    auto const* array = node.as_array();
    if (!array)
        return config_error(fmt::format("{}: expected an array of strings", key));
    std::vector<std::string> out;
    for (auto const& element : *array) {
        auto value = element.value_exact<std::string>();
        if (!value)
            return config_error(fmt::format("{}: expected an array of strings", key));
        out.push_back(*value);
    }
    return out;
}

// Ten minutes: a bound so a typo cannot make SIGTERM wait for hours.
constexpr u64 MAX_SHUTDOWN_TIMEOUT_MS = 600'000;
// Time sync: Hyper-V samples every 5 s; below 1 s is needless guest work, beyond 10 minutes the
// guest's PTP clock calls the last sample stale (hv_util.c HOST_TIMESYNC_DELAY_THRESH, 600 s).
constexpr u64 MIN_TIME_SYNC_PERIOD_MS = 1'000;
constexpr u64 MAX_TIME_SYNC_PERIOD_MS = 600'000;
// KVP walks: each pair is one guest daemon round trip; once a second is plenty.
constexpr u64 MIN_KVP_REFRESH_MS = 1'000;
constexpr u64 MAX_KVP_REFRESH_MS = 86'400'000;
constexpr std::size_t MAX_GUEST_INFO_PAIRS = 64;

std::vector<TableSpec> const& schema()
{
    static std::vector<TableSpec> const tables {
        { "machine",
            {
                { "vcpus", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     u64 value = VMM_TRY(as_positive(n, k));
                     if (value > 1024)
                         return config_error(fmt::format("{}: {} is more than any host supports", k, value));
                     d.config.machine.vcpus = static_cast<u32>(value);
                     return {};
                 } },
                { "memory_mib", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.machine.memory_mib = VMM_TRY(as_positive(n, k));
                     return {};
                 } },
                { "max_memory_mib", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.machine.max_memory_mib = VMM_TRY(as_positive(n, k));
                     return {};
                 } },
                { "on_reboot", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     std::string value = VMM_TRY(as_string(n, k));
                     if (value == "reset")
                         d.config.machine.on_reboot = OnReboot::Reset;
                     else if (value == "exit")
                         d.config.machine.on_reboot = OnReboot::Exit;
                     else
                         return config_error(fmt::format("{}: expected \"reset\" or \"exit\" (got \"{}\")", k, value));
                     return {};
                 } },
            } },
        { "cpu",
            {
                { "hide_features", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.cpu.hide_features = VMM_TRY(as_string_array(n, k));
                     if (auto unknown = first_unknown_feature(d.config.cpu.hide_features))
                         return config_error(fmt::format("{}: unknown feature \"{}\"", k, *unknown));
                     return {};
                 } },
            } },
        { "boot",
            {
                { "firmware", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     std::string value = VMM_TRY(as_string(n, k));
                     if (value == "direct")
                         d.config.boot.firmware = BootFirmware::Direct;
                     else if (value == "uefi")
                         d.config.boot.firmware = BootFirmware::Uefi;
                     else
                         return config_error(fmt::format("{}: expected \"direct\" or \"uefi\" (got \"{}\")", k, value));
                     return {};
                 } },
                { "kernel", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.boot.kernel = VMM_TRY(as_path(n, k, d));
                     return {};
                 } },
                { "initrd", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.boot.initrd = VMM_TRY(as_path(n, k, d));
                     return {};
                 } },
                { "cmdline", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.boot.cmdline = VMM_TRY(as_string(n, k));
                     return {};
                 } },
            } },
        { "serial",
            {
                { "output", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     std::string value = VMM_TRY(as_string(n, k));
                     if (value == "stdout")
                         d.config.serial.output_file.reset();
                     else
                         d.config.serial.output_file = VMM_TRY(as_path(n, k, d));
                     return {};
                 } },
            } },
        { "api",
            {
                { "socket", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.api.socket = VMM_TRY(as_path(n, k, d));
                     return {};
                 } },
            } },
        { "dynamic_memory",
            {
                { "enabled", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.dynamic_memory.enabled = VMM_TRY(as_bool(n, k));
                     return {};
                 } },
                { "post_connect_delay_ms", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.dynamic_memory.post_connect_delay_ms = VMM_TRY(as_non_negative(n, k));
                     return {};
                 } },
                { "max_request_pages", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.dynamic_memory.max_request_pages = VMM_TRY(as_non_negative(n, k));
                     return {};
                 } },
                { "balloon_reply_timeout_ms", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.dynamic_memory.balloon_reply_timeout_ms = VMM_TRY(as_timeout_ms(n, k));
                     return {};
                 } },
                { "unballoon_reply_timeout_ms", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.dynamic_memory.unballoon_reply_timeout_ms = VMM_TRY(as_timeout_ms(n, k));
                     return {};
                 } },
                { "hot_add_reply_timeout_ms", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.dynamic_memory.hot_add_reply_timeout_ms = VMM_TRY(as_timeout_ms(n, k));
                     return {};
                 } },
                { "hot_add_reply_timeout_per_block_ms", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.dynamic_memory.hot_add_reply_timeout_per_block_ms = VMM_TRY(as_timeout_ms(n, k, true));
                     return {};
                 } },
                { "mode", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     std::string value = VMM_TRY(as_string(n, k));
                     if (value != "manual" && value != "auto")
                         return config_error(fmt::format("{}: expected \"manual\" or \"auto\" (got \"{}\")", k, value));
                     d.config.dynamic_memory.auto_mode = value == "auto";
                     return {};
                 } },
                { "on_reboot_size", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     std::string value = VMM_TRY(as_string(n, k));
                     if (value != "boot" && value != "last")
                         return config_error(fmt::format("{}: expected \"boot\" or \"last\" (got \"{}\")", k, value));
                     d.config.dynamic_memory.reboot_last_size = value == "last";
                     return {};
                 } },
                { "free_page_reporting", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.dynamic_memory.free_page_reporting = VMM_TRY(as_bool(n, k));
                     return {};
                 } },
                { "min_mib", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.dynamic_memory.min_mib = VMM_TRY(as_positive(n, k));
                     return {};
                 } },
                { "max_mib", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.dynamic_memory.max_mib = VMM_TRY(as_positive(n, k));
                     return {};
                 } },
                { "buffer_percent", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.dynamic_memory.buffer_percent = VMM_TRY(as_at_most(n, k, 2000)); // Hyper-V's cap.
                     return {};
                 } },
                { "weight", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.dynamic_memory.weight = VMM_TRY(as_at_most(n, k, 100));
                     return {};
                 } },
                { "min_step_mib", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.dynamic_memory.min_step_mib = VMM_TRY(as_positive(n, k));
                     if (d.config.dynamic_memory.min_step_mib > MAX_MEMORY_MIB_LIMIT)
                         return config_error(fmt::format("{}: at most {} MiB", k, MAX_MEMORY_MIB_LIMIT));
                     return {};
                 } },
                { "min_interval_ms", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.dynamic_memory.min_interval_ms = VMM_TRY(as_timeout_ms(n, k, true));
                     return {};
                 } },
                { "hysteresis_percent", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.dynamic_memory.hysteresis_percent = VMM_TRY(as_at_most(n, k, 50));
                     return {};
                 } },
                { "shrink_delay_ms", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.dynamic_memory.shrink_delay_ms = VMM_TRY(as_timeout_ms(n, k, true));
                     return {};
                 } },
            } },
        { "hyperv",
            {
                { "enabled", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.hyperv_enabled = VMM_TRY(as_bool(n, k));
                     return {};
                 } },
                { "reference_time", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.hyperv.enlightenments.reference_time = VMM_TRY(as_bool(n, k));
                     return {};
                 } },
                { "synthetic_timers", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.hyperv.enlightenments.synthetic_timers = VMM_TRY(as_bool(n, k));
                     return {};
                 } },
                { "stimer_direct_mode", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.hyperv.enlightenments.stimer_direct_mode = VMM_TRY(as_bool(n, k));
                     return {};
                 } },
                { "vp_runtime", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.hyperv.enlightenments.vp_runtime = VMM_TRY(as_bool(n, k));
                     return {};
                 } },
                { "reset", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.hyperv.enlightenments.reset = VMM_TRY(as_bool(n, k));
                     return {};
                 } },
                { "crash", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.hyperv.enlightenments.crash = VMM_TRY(as_bool(n, k));
                     return {};
                 } },
                { "frequencies", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.hyperv.enlightenments.frequencies = VMM_TRY(as_bool(n, k));
                     return {};
                 } },
                { "tsc_invariant", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.hyperv.enlightenments.tsc_invariant = VMM_TRY(as_bool(n, k));
                     return {};
                 } },
                { "extended_hypercalls", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.hyperv.enlightenments.extended_hypercalls = VMM_TRY(as_bool(n, k));
                     return {};
                 } },
            } },
        { "integration",
            {
                { "enabled", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.integration_enabled = VMM_TRY(as_bool(n, k));
                     return {};
                 } },
                { "shutdown_timeout_ms", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.integration.shutdown_timeout_ms = VMM_TRY(as_non_negative(n, k));
                     if (d.config.integration.shutdown_timeout_ms > MAX_SHUTDOWN_TIMEOUT_MS)
                         return config_error(fmt::format("{}: at most {} ms", k, MAX_SHUTDOWN_TIMEOUT_MS));
                     return {};
                 } },
                { "heartbeat_interval_ms", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.integration.heartbeat_interval_ms = VMM_TRY(as_positive(n, k));
                     if (d.config.integration.heartbeat_interval_ms < 100)
                         return config_error(fmt::format("{}: at least 100 ms", k));
                     return {};
                 } },
                { "heartbeat_late_ms", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.integration.heartbeat_late_ms = VMM_TRY(as_positive(n, k));
                     return {};
                 } },
                { "time_sync", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.integration.time_sync = VMM_TRY(as_bool(n, k));
                     return {};
                 } },
                { "time_sync_period_ms", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.integration.time_sync_period_ms = VMM_TRY(as_positive(n, k));
                     if (d.config.integration.time_sync_period_ms < MIN_TIME_SYNC_PERIOD_MS
                         || d.config.integration.time_sync_period_ms > MAX_TIME_SYNC_PERIOD_MS)
                         return config_error(fmt::format("{}: {} ms is outside {}..{} ms", k,
                             d.config.integration.time_sync_period_ms, MIN_TIME_SYNC_PERIOD_MS, MAX_TIME_SYNC_PERIOD_MS));
                     return {};
                 } },
                { "kvp", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.integration.kvp = VMM_TRY(as_bool(n, k));
                     return {};
                 } },
                { "kvp_refresh_ms", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.config.integration.kvp_refresh_ms = VMM_TRY(as_positive(n, k));
                     if (d.config.integration.kvp_refresh_ms < MIN_KVP_REFRESH_MS
                         || d.config.integration.kvp_refresh_ms > MAX_KVP_REFRESH_MS)
                         return config_error(fmt::format("{}: {} ms is outside {}..{} ms", k,
                             d.config.integration.kvp_refresh_ms, MIN_KVP_REFRESH_MS, MAX_KVP_REFRESH_MS));
                     return {};
                 } },
            } },
        { "pci",
            {
                { "enabled", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     d.pci_enabled = VMM_TRY(as_bool(n, k));
                     return {};
                 } },
            } },
        { "vsock",
            {
                { "uds_path", [](auto const& n, auto const& k, Draft& d) -> Result<void> {
                     auto path = VMM_TRY(as_path(n, k, d));
                     if (path.string().size() > MAX_VSOCK_UDS_PATH_BYTES)
                         return config_error(fmt::format("{}: {} is {} bytes; at most {} (a Unix socket path, plus \"_<port>\" "
                                                         "for guest-initiated connections)",
                             k, path.string(), path.string().size(), MAX_VSOCK_UDS_PATH_BYTES));
                     if (path.filename().empty())
                         return config_error(fmt::format("{}: {} names a directory, not a socket", k, path.string()));
                     d.config.vsock.uds_path = std::move(path);
                     return {};
                 } },
            } },
    };
    return tables;
}

// [guest_info]: any key, string values only, each checked against what the guest's KVP
// buffers hold (ic::KvpIc::check_pair), at most MAX_GUEST_INFO_PAIRS.
Result<void> parse_guest_info(toml::node const& node, Draft& draft)
{
    auto const* table = node.as_table();
    if (!table)
        return config_error("guest_info: expected a table of key = \"value\" pairs");
    for (auto const& [key, value] : *table) {
        std::string const name { key.str() };
        std::string const full = fmt::format("guest_info.{}", name);
        auto const* text = value.as_string();
        if (!text)
            return config_error(fmt::format("{}: expected a string (line {})", full, key.source().begin.line));
        ic::KvpPair pair { name, text->get() };
        if (auto wrong = ic::KvpIc::check_pair(pair))
            return config_error(fmt::format("{}: cannot be given to the guest: {}", full, *wrong));
        draft.config.guest_info.pairs.emplace_back(std::move(pair.key), std::move(pair.value));
    }
    if (draft.config.guest_info.pairs.size() > MAX_GUEST_INFO_PAIRS)
        return config_error(fmt::format("guest_info: {} pairs, at most {}", draft.config.guest_info.pairs.size(), MAX_GUEST_INFO_PAIRS));
    return {};
}

// [[disk]]: an array of tables with path (required), read_only and serial.
Result<void> parse_disks(toml::node const& node, Draft& draft)
{
    auto const* array = node.as_array();
    if (!array || !array->is_array_of_tables())
        return config_error("disk: expected [[disk]] tables (an array of tables)");
    if (array->size() > MAX_DISKS)
        return config_error(fmt::format("disk: {} disks, at most {}", array->size(), MAX_DISKS));
    for (std::size_t i = 0; i < array->size(); ++i) {
        auto const& table = *array->get(i)->as_table();
        DiskSection disk;
        bool have_path = false;
        for (auto const& [key, value] : table) {
            std::string const full = fmt::format("disk[{}].{}", i, key.str());
            if (key.str() == "path") {
                disk.path = VMM_TRY(as_path(value, full, draft));
                have_path = true;
            } else if (key.str() == "read_only") {
                disk.read_only = VMM_TRY(as_bool(value, full));
            } else if (key.str() == "serial") {
                disk.serial = VMM_TRY(as_string(value, full));
                if (disk.serial.empty() || disk.serial.size() > MAX_DISK_SERIAL_BYTES)
                    return config_error(fmt::format("{}: must be 1..{} characters", full, MAX_DISK_SERIAL_BYTES));
                // Identify's SN is printable ASCII (NVMe 1.4 §1.5 "ASCII string": 20h-7Eh).
                if (std::ranges::any_of(disk.serial, [](char c) { return c < 0x20 || c > 0x7E; }))
                    return config_error(fmt::format("{}: only printable ASCII characters", full));
            } else {
                return config_error(fmt::format("unknown key {} (line {})", full, key.source().begin.line));
            }
        }
        if (!have_path)
            return config_error(fmt::format("disk[{}].path: missing", i));
        if (disk.serial.empty())
            disk.serial = fmt::format("MVMDISK{}", i);
        for (std::size_t j = 0; j < draft.config.disks.size(); ++j) {
            if (draft.config.disks[j].path == disk.path)
                return config_error(fmt::format("disk[{}].path: {} is also disk[{}]", i, disk.path.string(), j));
            if (draft.config.disks[j].serial == disk.serial)
                return config_error(fmt::format("disk[{}].serial: \"{}\" is also disk[{}]'s (each disk is its own "
                                                "NVMe subsystem, named by its serial)", i, disk.serial, j));
        }
        draft.config.disks.push_back(std::move(disk));
    }
    return {};
}

// "02:15:5d:00:00:01" -> bytes; a unicast, non-zero address.
std::optional<std::array<u8, 6>> parse_mac(std::string const& text)
{
    std::array<u8, 6> mac {};
    if (text.size() != 17)
        return std::nullopt;
    for (std::size_t i = 0; i < 6; ++i) {
        if (i > 0 && text[i * 3 - 1] != ':')
            return std::nullopt;
        unsigned value = 0;
        for (std::size_t j = 0; j < 2; ++j) {
            char c = text[i * 3 + j];
            unsigned digit = c >= '0' && c <= '9' ? unsigned(c - '0')
                : c >= 'a' && c <= 'f'             ? unsigned(c - 'a' + 10)
                : c >= 'A' && c <= 'F'             ? unsigned(c - 'A' + 10)
                                                   : 16u;
            if (digit == 16)
                return std::nullopt;
            value = value * 16 + digit;
        }
        mac[i] = static_cast<u8>(value);
    }
    return mac;
}

// A default MAC that stays the same for the same TAP name (so a guest keeps its DHCP lease and
// udev name across restarts, and `microvmm jail`'s rewritten config gives the same one): FNV-1a
// 64 of the name, locally administered (bit 1) and unicast (bit 0 clear) in the first octet
// (IEEE 802 bit order). TAP names are unique on a host, so are the MACs of its guests (up to a
// 2^-46 collision); guests of several hosts sharing one L2 segment should set `mac`.
std::array<u8, 6> derived_mac(std::string const& tap)
{
    u64 hash = 0xcbf29ce484222325ull;
    for (unsigned char c : tap) {
        hash ^= c;
        hash *= 0x100000001b3ull;
    }
    std::array<u8, 6> mac {};
    for (std::size_t i = 0; i < 6; ++i)
        mac[i] = static_cast<u8>(hash >> (8 * i));
    mac[0] = static_cast<u8>((mac[0] & 0xfc) | 0x02);
    return mac;
}

// [[net]]: an array of tables, one NIC each (keys tap, mac, mtu).
Result<void> parse_net(toml::node const& node, Draft& draft)
{
    auto const* array = node.as_array();
    if (!array || !array->is_array_of_tables())
        return config_error("net: expected [[net]] tables (one per NIC)");
    for (std::size_t index = 0; index < array->size(); ++index) {
        auto const& table = *array->get(index)->as_table();
        NetSection nic;
        bool have_mac = false;
        for (auto const& [key, value] : table) {
            std::string const full = fmt::format("net[{}].{}", index, key.str());
            if (key.str() == "tap") {
                nic.tap = VMM_TRY(as_string(value, full));
                bool valid = !nic.tap.empty() && nic.tap.size() <= MAX_TAP_NAME_BYTES && nic.tap != "." && nic.tap != ".."
                    && std::ranges::all_of(nic.tap, [](char c) {
                           return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
                       });
                if (!valid)
                    return config_error(fmt::format("{}: \"{}\" is not an interface name (1-{} of A-Z a-z 0-9 - _ .)",
                        full, nic.tap, MAX_TAP_NAME_BYTES));
            } else if (key.str() == "mac") {
                auto text = VMM_TRY(as_string(value, full));
                auto mac = parse_mac(text);
                if (!mac)
                    return config_error(fmt::format("{}: \"{}\" is not a MAC address like \"02:15:5d:00:00:01\"", full, text));
                if ((*mac)[0] & 1)
                    return config_error(fmt::format("{}: {} is a multicast address; a NIC needs a unicast one", full, text));
                if (std::ranges::all_of(*mac, [](u8 b) { return b == 0; }))
                    return config_error(fmt::format("{}: the all-zero address is not a NIC address", full));
                nic.mac = *mac;
                have_mac = true;
            } else if (key.str() == "mtu") {
                u64 mtu = VMM_TRY(as_positive(value, full));
                if (mtu < MIN_NET_MTU || mtu > MAX_NET_MTU)
                    return config_error(fmt::format("{}: {} is outside {}..{}", full, mtu, MIN_NET_MTU, MAX_NET_MTU));
                nic.mtu = static_cast<u32>(mtu);
            } else {
                return config_error(fmt::format("unknown key {} (line {})", full, key.source().begin.line));
            }
        }
        if (nic.tap.empty())
            return config_error(fmt::format("net[{}].tap: missing (the host TAP device's name)", index));
        for (auto const& other : draft.config.net) {
            if (other.tap == nic.tap)
                return config_error(fmt::format("net[{}].tap: \"{}\" is used by another NIC", index, nic.tap));
        }
        if (!have_mac) {
            nic.mac = derived_mac(nic.tap);
            nic.mac_derived = true;
        }
        for (auto const& other : draft.config.net) {
            if (other.mac == nic.mac)
                return config_error(fmt::format("net[{}].mac: the same address as another NIC", index));
        }
        draft.config.net.push_back(std::move(nic));
    }
    if (draft.config.net.size() > MAX_NICS)
        return config_error(fmt::format("net: {} NICs, at most {}", draft.config.net.size(), MAX_NICS));
    return {};
}

Result<void> parse_tables(toml::table const& root, Draft& draft)
{
    for (auto const& [table_key, table_node] : root) {
        std::string const table_name { table_key.str() };
        if (table_name == "guest_info") {
            VMM_TRY(parse_guest_info(table_node, draft));
            continue;
        }
        if (table_name == "disk") {
            VMM_TRY(parse_disks(table_node, draft));
            continue;
        }
        if (table_name == "net") {
            VMM_TRY(parse_net(table_node, draft));
            continue;
        }
        auto const& tables = schema();
        auto spec = std::ranges::find(tables, std::string_view { table_name }, &TableSpec::name);
        if (spec == tables.end())
            return config_error(fmt::format("unknown table [{}] (line {})", table_name, table_key.source().begin.line));
        auto const* table = table_node.as_table();
        if (!table)
            return config_error(fmt::format("{}: expected a table", table_name));
        for (auto const& [key, node] : *table) {
            std::string const full = fmt::format("{}.{}", table_name, key.str());
            auto key_spec = std::ranges::find(spec->keys, key.str(), &KeySpec::name);
            if (key_spec == spec->keys.end())
                return config_error(fmt::format("unknown key {} (line {})", full, key.source().begin.line));
            VMM_TRY(key_spec->parse(node, full, draft));
        }
    }
    return {};
}

// Automatic sizing limits: min_mib <= memory_mib <= max_mib <= max_memory_mib (Hyper-V's
// minimum <= startup <= maximum), defaults filled in.
Result<void> check_dynamic_memory_limits(DynamicMemorySection& dm, MachineSection const& machine)
{
    constexpr u64 DEFAULT_MIN_FLOOR_MIB = 128; // The API's recommended safe floor (vmm/api/api_backend.hpp).
    if (dm.auto_mode && !dm.enabled)
        return config_error("dynamic_memory.mode: \"auto\" needs dynamic_memory.enabled = true");
    if (dm.min_mib == 0)
        dm.min_mib = std::min(machine.memory_mib, std::max(DEFAULT_MIN_FLOOR_MIB, machine.memory_mib / 4));
    if (dm.max_mib == 0)
        dm.max_mib = machine.max_memory_mib;
    if (dm.min_mib > machine.memory_mib)
        return config_error(fmt::format("dynamic_memory.min_mib ({}) exceeds machine.memory_mib ({})", dm.min_mib,
            machine.memory_mib));
    if (dm.max_mib < machine.memory_mib)
        return config_error(fmt::format("dynamic_memory.max_mib ({}) is below machine.memory_mib ({})", dm.max_mib,
            machine.memory_mib));
    if (dm.max_mib > machine.max_memory_mib)
        return config_error(fmt::format("dynamic_memory.max_mib ({}) exceeds machine.max_memory_mib ({})", dm.max_mib,
            machine.max_memory_mib));
    return {};
}

// Cross-field rules that need nothing from the host.
Result<void> check_fields(Config& config, bool have_max_memory)
{
    auto& machine = config.machine;
    if (!have_max_memory)
        machine.max_memory_mib = machine.memory_mib;
    if (machine.memory_mib > machine.max_memory_mib)
        return config_error(fmt::format("machine.memory_mib ({}) exceeds machine.max_memory_mib ({})",
            machine.memory_mib, machine.max_memory_mib));
    if (machine.max_memory_mib > MAX_MEMORY_MIB_LIMIT)
        return config_error(fmt::format("machine.max_memory_mib ({}) is above the supported {} MiB",
            machine.max_memory_mib, MAX_MEMORY_MIB_LIMIT));
    if (config.boot.firmware == BootFirmware::Direct && config.boot.kernel.empty())
        return config_error("boot.kernel: missing (required for direct kernel boot)");
    if (config.dynamic_memory.enabled && !config.hyperv.enabled)
        return config_error("hyperv.enabled: dynamic_memory.enabled needs Hyper-V (VMBus)");
    VMM_TRY(check_dynamic_memory_limits(config.dynamic_memory, machine));
    if (config.dynamic_memory.free_page_reporting
        && (!config.dynamic_memory.enabled || !config.hyperv.enlightenments.extended_hypercalls))
        return config_error("dynamic_memory.free_page_reporting: needs dynamic_memory.enabled and "
                            "hyperv.extended_hypercalls (the guest finds the hint through HvExtCallQueryCapabilities)");
    auto const& hv = config.hyperv.enlightenments;
    if (hv.synthetic_timers && !hv.reference_time)
        return config_error("hyperv.synthetic_timers: synthetic timers count in reference time; needs hyperv.reference_time");
    if (hv.stimer_direct_mode && !hv.synthetic_timers)
        return config_error("hyperv.stimer_direct_mode: needs hyperv.synthetic_timers");
    if (config.hyperv.enabled && !hv.reference_time && !hv.tsc_invariant)
        return config_error("hyperv.reference_time: with it and hyperv.tsc_invariant both off a Linux guest marks its "
                            "TSC unstable and has no good clocksource; turn one on");
    if (config.integration.enabled && !config.hyperv.enabled)
        return config_error("hyperv.enabled: integration.enabled needs Hyper-V (VMBus)");
    if (!config.guest_info.pairs.empty() && !(config.integration.enabled && config.integration.kvp))
        return config_error("guest_info: needs the KVP integration service (integration.enabled and integration.kvp)");
    if (config.vsock.uds_path && !config.hyperv.enabled)
        return config_error("hyperv.enabled: vsock.uds_path needs Hyper-V (hv_sock runs on VMBus)");
    if (!config.net.empty() && !config.hyperv.enabled)
        return config_error("hyperv.enabled: [[net]] needs Hyper-V (netvsc runs on VMBus)");
    if (config.integration.heartbeat_late_ms <= config.integration.heartbeat_interval_ms)
        return config_error(fmt::format("integration.heartbeat_late_ms ({}) must exceed integration.heartbeat_interval_ms ({})",
            config.integration.heartbeat_late_ms, config.integration.heartbeat_interval_ms));
    return {};
}

Result<std::vector<std::byte>> read_head(fs::path const& path, std::string_view key, std::size_t bytes)
{
    int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (raw < 0)
        return config_error(fmt::format("{}: cannot open {}: {}", key, path.string(), std::strerror(errno)));
    Fd fd { raw };
    std::vector<std::byte> head(bytes);
    ssize_t got = ::read(fd.get(), head.data(), head.size());
    if (got < 0)
        return config_error(fmt::format("{}: cannot read {}: {}", key, path.string(), std::strerror(errno)));
    head.resize(static_cast<std::size_t>(got));
    return head;
}

// The image exists, is a regular file or block device of at least one block, and opens the way
// the disk needs it. The lock is taken later, when the back-end opens it for the VM.
Result<void> check_disk_image(DiskSection const& disk, std::size_t index)
{
    std::string const key = fmt::format("disk[{}].path", index);
    int raw = ::open(disk.path.c_str(), (disk.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (raw < 0)
        return config_error(fmt::format("{}: cannot open {}{}: {}", key, disk.path.string(),
            disk.read_only ? "" : " for reading and writing", std::strerror(errno)));
    Fd fd { raw };
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        return config_error(fmt::format("{}: cannot stat {}: {}", key, disk.path.string(), std::strerror(errno)));
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return config_error(fmt::format("{}: {} is not a regular file or block device", key, disk.path.string()));
    if (S_ISREG(st.st_mode) && st.st_size < 512)
        return config_error(fmt::format("{}: {} is {} bytes, smaller than one 512-byte block", key, disk.path.string(),
            st.st_size));
    return {};
}

} // namespace

Result<void> check_dynamic_memory(DynamicMemorySection& dm, MachineSection const& machine)
{
    return check_dynamic_memory_limits(dm, machine);
}

KernelFormat detect_kernel_format(std::span<std::byte const> head)
{
    constexpr std::array<unsigned char, 4> ELF_MAGIC { 0x7F, 'E', 'L', 'F' };
    // Linux boot protocol: "HdrS" at 0x202 (Documentation/x86/boot.rst, "header").
    constexpr std::size_t HDRS_OFFSET = 0x202;
    constexpr std::array<unsigned char, 4> HDRS { 'H', 'd', 'r', 'S' };
    if (head.size() >= ELF_MAGIC.size() && std::memcmp(head.data(), ELF_MAGIC.data(), ELF_MAGIC.size()) == 0)
        return KernelFormat::Elf;
    if (head.size() >= HDRS_OFFSET + HDRS.size()
        && std::memcmp(head.data() + HDRS_OFFSET, HDRS.data(), HDRS.size()) == 0)
        return KernelFormat::BzImage;
    return KernelFormat::Unknown;
}

Result<Config> parse_config(std::string_view text, fs::path const& base_dir)
{
    Draft draft;
    draft.base_dir = base_dir;
    toml::table root;
    // The same document in ASCII: toml++ 3.3 must never see a non-ASCII character (vmm/toml_text_guard.hpp).
    auto const ascii = VMM_TRY(ascii_toml_text(text));
    try {
        root = toml::parse(ascii);
    } catch (toml::parse_error const& error) { // toml++ is built with exceptions: caught right here.
        return config_error(fmt::format("TOML syntax error at line {}, column {}: {}", error.source().begin.line,
            error.source().begin.column, error.description()));
    }
    VMM_TRY(parse_tables(root, draft));
    draft.config.hyperv.enabled = draft.hyperv_enabled.value_or(draft.config.dynamic_memory.enabled);
    draft.config.integration.enabled = draft.integration_enabled.value_or(draft.config.hyperv.enabled);
    // A disk is an NVMe controller on PCI: [[disk]] turns the PCI root on unless the file
    // turned it off, which is a contradiction worth one clear error.
    if (!draft.config.disks.empty() && draft.pci_enabled == false)
        return config_error("pci.enabled: false, but [[disk]] needs PCI (each disk is an NVMe controller on the PCI "
                            "root): remove pci.enabled = false or the [[disk]] entries");
    draft.config.pci.enabled = draft.pci_enabled.value_or(!draft.config.disks.empty());
    bool const have_max_memory = root["machine"]["max_memory_mib"].is_value();
    VMM_TRY(check_fields(draft.config, have_max_memory));
    return draft.config;
}

Result<void> validate_config(Config const& config, ConfigLimits limits)
{
    if (config.machine.vcpus > limits.max_vcpus)
        return config_error(fmt::format("machine.vcpus: {} is above this host's limit of {}", config.machine.vcpus,
            limits.max_vcpus));
    if (config.boot.firmware == BootFirmware::Direct) {
        constexpr std::size_t HEAD_BYTES = 0x206; // Covers the ELF magic and "HdrS" at 0x202.
        auto head = VMM_TRY(read_head(config.boot.kernel, "boot.kernel", HEAD_BYTES));
        if (detect_kernel_format(head) == KernelFormat::Unknown)
            return config_error(fmt::format("boot.kernel: {} is neither an ELF vmlinux nor a bzImage",
                config.boot.kernel.string()));
        if (config.boot.initrd)
            VMM_TRY(read_head(*config.boot.initrd, "boot.initrd", 1));
    }
    for (std::size_t i = 0; i < config.disks.size(); ++i)
        VMM_TRY(check_disk_image(config.disks[i], i));
    return {};
}

Result<Config> load_config(fs::path const& path, ConfigLimits limits)
{
    auto text = read_text_file(path);
    if (!text)
        return config_error(fmt::format("config file {}", text.error().message()));
    fs::path const absolute = fs::absolute(path);
    auto config = parse_config(*text, absolute.parent_path());
    if (!config)
        return config_error(fmt::format("{}: {}", path.string(), config.error().what()));
    config->source = absolute;
    VMM_TRY(validate_config(*config, limits));
    return config;
}

} // namespace vmm

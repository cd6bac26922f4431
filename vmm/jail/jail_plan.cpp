// SPDX-License-Identifier: MIT
#include "vmm/jail/jail_plan.hpp"

#include <sstream>

#include <toml++/toml.h>

namespace vmm::jail {

namespace fs = std::filesystem;

namespace {

// Arrays of tables whose entries name a host file the VM opens ([[disk]] path = "...",
// read_only = true|false). One line per device kind that has guest files.
struct FileArray {
    char const* array;
    char const* path_key;
    char const* read_only_key;
    char const* jail_dir;
};
constexpr FileArray FILE_ARRAYS[] = { { "disk", "path", "read_only", "/disk" } };
// Tables (or arrays of tables) whose presence means the VM opens TAP devices.
constexpr char const* TUN_TABLES[] = { "net" };

Result<fs::path> host_path(toml::node const* node, std::string const& key, fs::path const& base_dir)
{
    auto const* text = node ? node->as_string() : nullptr;
    if (!text || text->get().empty())
        return fail(Errc::Config, fmt::format("{}: expected a non-empty path string", key));
    fs::path path { text->get() };
    return path.is_absolute() ? path.lexically_normal() : (base_dir / path).lexically_normal();
}

toml::table* table_at(toml::table& root, char const* name)
{
    auto* node = root.get(name);
    return node ? node->as_table() : nullptr;
}

} // namespace

Result<JailPlan> plan_jail(std::string_view text, fs::path const& base_dir)
{
    toml::table root;
    try {
        root = toml::parse(text);
    } catch (toml::parse_error const& e) {
        return fail(Errc::Config, fmt::format("configuration: {}", e.description()));
    }
    JailPlan plan;
    plan.devices.push_back("/dev/kvm");

    auto* boot = table_at(root, "boot");
    if (!boot)
        return fail(Errc::Config, "boot: missing");
    // firmware = "uefi" boots no kernel file (and microvmm refuses it until UEFI exists).
    bool const uefi = boot->get("firmware") && boot->get("firmware")->value_or(std::string {}) == "uefi";
    if (boot->contains("kernel") || !uefi) {
        if (!boot->contains("kernel"))
            return fail(Errc::Config, "boot.kernel: missing");
        plan.mounts.push_back({ VMM_TRY(host_path(boot->get("kernel"), "boot.kernel", base_dir)), "/boot/kernel" });
        boot->insert_or_assign("kernel", "/boot/kernel");
    }
    if (boot->contains("initrd")) {
        plan.mounts.push_back({ VMM_TRY(host_path(boot->get("initrd"), "boot.initrd", base_dir)), "/boot/initrd" });
        boot->insert_or_assign("initrd", "/boot/initrd");
    }

    for (auto const& kind : FILE_ARRAYS) {
        auto* node = root.get(kind.array);
        if (!node)
            continue;
        auto* array = node->as_array();
        if (!array)
            return fail(Errc::Config, fmt::format("{}: expected an array of tables ([[{}]])", kind.array, kind.array));
        for (std::size_t i = 0; i < array->size(); ++i) {
            auto* entry = array->get(i)->as_table();
            auto const key = fmt::format("{}[{}].{}", kind.array, i, kind.path_key);
            if (!entry)
                return fail(Errc::Config, fmt::format("{}[{}]: expected a table", kind.array, i));
            auto source = VMM_TRY(host_path(entry->get(kind.path_key), key, base_dir));
            bool const read_only = entry->get(kind.read_only_key) && entry->get(kind.read_only_key)->value_or(false);
            auto const target = fmt::format("{}/{}", kind.jail_dir, i);
            plan.mounts.push_back({ std::move(source), target, read_only });
            entry->insert_or_assign(kind.path_key, target);
        }
    }
    for (auto const* name : TUN_TABLES)
        if (root.contains(name)) {
            plan.devices.push_back("/dev/net/tun");
            break;
        }

    // Serial output: the host file is bind-mounted read-write (created if missing), so the log
    // outlives the jail.
    if (auto* serial = table_at(root, "serial"); serial && serial->contains("output")) {
        auto const* value = serial->get("output")->as_string();
        if (value && value->get() != "stdout") { // config.cpp: "stdout" means the console.
            plan.mounts.push_back({ VMM_TRY(host_path(value, "serial.output", base_dir)), "/run/serial.out",
                                    false, true });
            serial->insert_or_assign("output", "/run/serial.out");
        }
    }

    // Sockets the VMM creates live in /run (owned by the jail's uid); the API is always on, so
    // the jail can be managed (microvmm ctl --socket <jail>/run/api.sock).
    plan.api_socket = "/run/api.sock";
    if (!root.contains("api"))
        root.insert("api", toml::table {});
    auto* api = table_at(root, "api");
    if (!api)
        return fail(Errc::Config, "api: expected a table");
    api->insert_or_assign("socket", plan.api_socket.string());
    if (auto* vsock = table_at(root, "vsock"); vsock && vsock->contains("uds_path")) {
        plan.vsock_socket = "/run/vsock.sock";
        vsock->insert_or_assign("uds_path", plan.vsock_socket->string());
    }

    std::ostringstream out;
    out << toml::toml_formatter { root };
    plan.config_text = out.str() + "\n";
    return plan;
}

} // namespace vmm::jail

// SPDX-License-Identifier: MIT
// What one jailed VM needs from the host, read from its configuration: the files to bind-mount
// (kernel, initrd, disk images; read-only unless the VM writes them), the device nodes to make
// (/dev/kvm; /dev/net/tun when the VM has TAP networking), and the same configuration with every
// host path rewritten to its place inside the jail. Pure: no file system access, so the unit
// tests cover it whole (tests/unit/jail/jail_plan_test.cpp).
//
// The jail's layout (paths inside it; docs/jailer.md):
//   /microvmm            the VMM binary (read-only bind of the jailer's own executable)
//   /vm.toml             the rewritten configuration
//   /boot/kernel, /boot/initrd, /disk/<n>   read-only binds (a disk without read_only is rw)
//   /dev/kvm, /dev/net/tun                  device nodes owned by the jail's uid/gid
//   /run/                owned by the uid: api.sock, vsock.sock(_<port>), serial output
//   /proc                a fresh proc of the jail's own PID namespace (smaps for hot-add RSS)
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"

namespace vmm::jail {

struct JailMount {
    std::filesystem::path source; // Absolute host path.
    std::filesystem::path target; // Absolute path inside the jail.
    bool read_only { true };
    // Made before the VMM starts (e.g. the serial output file) rather than required to exist.
    bool create { false };
};

struct JailPlan {
    std::vector<JailMount> mounts;
    std::vector<std::filesystem::path> devices; // Host device nodes recreated at the same path.
    std::filesystem::path api_socket;           // Inside the jail; always set (added if absent).
    std::optional<std::filesystem::path> vsock_socket;
    std::string config_text; // The rewritten TOML.
};

inline constexpr char const* JAIL_RUN_DIR = "/run";
inline constexpr char const* JAIL_BINARY = "/microvmm";
inline constexpr char const* JAIL_CONFIG = "/vm.toml";

// `text` is a configuration that load_config() already accepted; relative paths resolve
// against `base_dir` as config.cpp does. Errors name the key (Errc::Config).
Result<JailPlan> plan_jail(std::string_view text, std::filesystem::path const& base_dir);

} // namespace vmm::jail

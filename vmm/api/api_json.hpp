// SPDX-License-Identifier: MIT
// JSON shapes of the REST API (see API.md) and validation of request bodies. No HTTP here.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "vmm/api/api_backend.hpp"

namespace vmm::api {

// Upper bound for PUT /api/v1/memory/target "timeout_ms": ten minutes. A hot-add of many GiB or
// a balloon of a busy guest can take minutes (the guest allocates and reports ballooned pages in 2 MiB blocks, then page by page: docs/guest-interface.md §8.5), longer is a client bug.
inline constexpr std::uint64_t MAX_TIMEOUT_MS = 600'000;

nlohmann::json to_json(VmInfo const&);
nlohmann::json to_json(GuestStatus const&);
nlohmann::json to_json(Operation const&);
nlohmann::json to_json(MemoryInfo const&);
nlohmann::json to_json(MemoryPolicy const&);
nlohmann::json to_json(PolicyDecision const&);
nlohmann::json to_json(MemoryCeiling const&);
// The body of PUT /api/v1/memory/ceiling: exactly {"mib": u64 >= 1, "lease_ms": u64 in
// [MIN_CEILING_LEASE_MS, MAX_CEILING_LEASE_MS]}.
std::expected<CeilingRequest, std::string> parse_ceiling_request(std::string_view body);
// The body of PUT /api/v1/memory/policy: an object of MemoryPolicy fields, at least one, each
// typed (strings for mode/on_reboot_size with their values checked, unsigned integers else).
std::expected<PolicyUpdate, std::string> parse_policy_update(std::string_view body);

nlohmann::json to_json(GuestHealth const&);
nlohmann::json to_json(NicInfo const&);
// The body of PUT /api/v1/net/{nic}/link: exactly {"up": bool}.
std::expected<bool, std::string> parse_link_request(std::string_view body);
nlohmann::json to_json(ShutdownStarted const&);
// The body of PUT /api/v1/vm/shutdown: {"timeout_ms"?: u64 <= MAX_TIMEOUT_MS, "reboot"?: bool};
// an empty body means all defaults.
std::expected<ShutdownRequest, std::string> parse_shutdown_request(std::string_view body);

// Never throws: invalid UTF-8 is replaced.
std::string dump_json(nlohmann::json const&, int indent = -1);
// {"fault_message": "..."}
std::string fault_body(std::string_view message);

struct TargetRequest {
    std::uint64_t target_mib = 0;
    std::optional<std::chrono::milliseconds> timeout; // Present when the client asked to wait.
};
// The body of PUT /api/v1/memory/target: exactly {"target_mib": u64, "timeout_ms"?: u64 <= cap}.
// The error is the fault_message for a 400.
std::expected<TargetRequest, std::string> parse_target_request(std::string_view body);

} // namespace vmm::api

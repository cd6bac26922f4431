// SPDX-License-Identifier: MIT
// JSON rendering of the API types and strict validation of the target request body.
#include "vmm/api/api_json.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>

#include "base/types.hpp"

namespace vmm::api {

using nlohmann::json;

json to_json(VmInfo const& info)
{
    json out {
        { "state", info.state },
        { "vcpus", info.vcpus },
        { "uptime_ms", info.uptime_ms },
        { "boot_count", info.boot_count },
        { "version", info.version },
    };
    if (info.guest)
        out["guest"] = to_json(*info.guest);
    if (!info.nics.empty()) {
        json nics = json::array();
        for (auto const& nic : info.nics)
            nics.push_back(to_json(nic));
        out["nics"] = std::move(nics);
    }
    return out;
}

json to_json(NicInfo const& nic)
{
    auto reasons = [](std::vector<std::pair<std::string, std::uint64_t>> const& by) {
        json out = json::object();
        for (auto const& [reason, count] : by)
            out[reason] = count;
        return out;
    };
    return json {
        { "index", nic.index },
        { "tap", nic.tap },
        { "tap_created", nic.tap_created },
        { "mac", nic.mac },
        { "mtu", nic.mtu },
        { "link", nic.link },
        { "guest", nic.guest },
        { "rx", json { { "packets", nic.rx_packets }, { "bytes", nic.rx_bytes }, { "dropped", nic.rx_dropped },
                    { "dropped_by", reasons(nic.rx_dropped_by) } } },
        { "tx", json { { "packets", nic.tx_packets }, { "bytes", nic.tx_bytes }, { "dropped", nic.tx_dropped },
                    { "dropped_by", reasons(nic.tx_dropped_by) } } },
        { "guest_errors", nic.guest_errors },
    };
}


namespace {

json pair_or_null(std::map<std::string, std::string> const& pairs, std::string const& key)
{
    auto found = pairs.find(key);
    return found == pairs.end() ? json(nullptr) : json(found->second);
}

// hv_kvp_daemon joins a family's addresses with ';' (tools/hv/hv_kvp_daemon.c kvp_process_ip_address).
void add_addresses(json& out, std::map<std::string, std::string> const& pairs, std::string const& key)
{
    auto found = pairs.find(key);
    if (found == pairs.end())
        return;
    std::string_view rest = found->second;
    while (!rest.empty()) {
        auto end = rest.find(';');
        auto address = rest.substr(0, end);
        auto first = address.find_first_not_of(" \t\n");
        if (first != std::string_view::npos)
            out.push_back(std::string(address.substr(first, address.find_last_not_of(" \t\n") - first + 1)));
        rest = end == std::string_view::npos ? std::string_view {} : rest.substr(end + 1);
    }
}

json to_json(GuestInfo const& info)
{
    // The daemon's intrinsic keys (hv_kvp_daemon.c main, KVP_POOL_AUTO) under plain names.
    json addresses = json::array();
    add_addresses(addresses, info.intrinsic, "NetworkAddressIPv4");
    add_addresses(addresses, info.intrinsic, "NetworkAddressIPv6");
    return json {
        { "service", info.service },
        { "age_ms", info.age_ms ? json(*info.age_ms) : json(nullptr) },
        { "host_name", pair_or_null(info.intrinsic, "FullyQualifiedDomainName") },
        { "os_name", pair_or_null(info.intrinsic, "OSName") },
        { "os_version", pair_or_null(info.intrinsic, "OSVersion") },
        { "addresses", std::move(addresses) },
        { "intrinsic", info.intrinsic },
        { "guest", info.guest },
    };
}

} // namespace

json to_json(GuestHealth const& guest)
{
    json out {
        { "heartbeat", guest.heartbeat },
        { "age_ms", guest.heartbeat_age_ms ? json(*guest.heartbeat_age_ms) : json(nullptr) },
        { "shutdown_service", guest.shutdown_service },
        { "shutdown", guest.shutdown ? json(*guest.shutdown) : json(nullptr) },
        { "time_sync", nullptr },
        { "info", nullptr },
    };
    if (guest.time_sync)
        out["time_sync"] = json { { "service", guest.time_sync->service }, { "synced", guest.time_sync->synced },
            { "samples", guest.time_sync->samples } };
    if (guest.info)
        out["info"] = to_json(*guest.info);
    return out;
}

json to_json(ShutdownStarted const& started)
{
    json out {
        { "method", started.method },
        { "timeout_ms", started.timeout_ms },
        { "reboot", started.reboot },
    };
    if (started.reason)
        out["reason"] = *started.reason;
    return out;
}

json to_json(GuestStatus const& status)
{
    return json {
        { "available_mib", status.available_mib },
        { "committed_mib", status.committed_mib },
        { "age_ms", status.age_ms },
    };
}

json to_json(Operation const& op)
{
    json out {
        { "id", op.id },
        { "kind", op.kind },
        { "from_mib", op.from_mib },
        { "target_mib", op.target_mib },
        { "state", op.state },
        { "done_mib", op.done_mib },
        { "remaining_mib", op.remaining_mib },
        { "started_ms", op.started_ms },
    };
    out["finished_ms"] = op.finished_ms ? json(*op.finished_ms) : json(nullptr);
    out["reason"] = op.reason ? json(*op.reason) : json(nullptr);
    return out;
}

json to_json(MemoryInfo const& info)
{
    json dm { { "connected", info.dm_connected } };
    dm["protocol_version"] = info.dm_protocol_version ? json(*info.dm_protocol_version) : json(nullptr);
    json out {
        { "boot_mib", info.boot_mib },
        { "max_mib", info.max_mib },
        { "floor_mib", info.floor_mib },
        { "target_mib", info.target_mib },
        { "current_mib", info.current_mib },
        { "ballooned_mib", info.ballooned_mib },
        { "hot_added_mib", info.hot_added_mib },
        { "dm", dm },
    };
    out["guest_status"] = info.guest_status ? to_json(*info.guest_status) : json(nullptr);
    out["operation"] = info.operation ? to_json(*info.operation) : json(nullptr);
    out["policy"] = to_json(info.policy);
    out["last_decision"] = info.last_decision ? to_json(*info.last_decision) : json(nullptr);
    out["ceiling"] = info.ceiling ? to_json(*info.ceiling) : json(nullptr);
    if (info.host) {
        // MiB rounded down, like every size in the JSON API; /metrics has the exact bytes.
        out["host"] = json { { "boot_ram_resident_mib", info.host->boot_ram_resident_bytes / MIB },
            { "hot_add_resident_mib", info.host->hot_add_resident_bytes / MIB } };
    } else {
        out["host"] = nullptr;
    }
    return out;
}

json to_json(MemoryPolicy const& p)
{
    return json {
        { "mode", p.mode },
        { "min_mib", p.min_mib },
        { "max_mib", p.max_mib },
        { "buffer_percent", p.buffer_percent },
        { "weight", p.weight },
        { "min_step_mib", p.min_step_mib },
        { "min_interval_ms", p.min_interval_ms },
        { "hysteresis_percent", p.hysteresis_percent },
        { "shrink_delay_ms", p.shrink_delay_ms },
        { "on_reboot_size", p.on_reboot_size },
    };
}

json to_json(PolicyDecision const& d)
{
    auto opt = [](std::optional<std::uint64_t> v) { return v ? json(*v) : json(nullptr); };
    return json {
        { "reason", d.reason },
        { "at_ms", d.at_ms },
        { "demand_mib", opt(d.demand_mib) },
        { "desired_mib", opt(d.desired_mib) },
        { "wanted_mib", opt(d.wanted_mib) },
        { "target_mib", opt(d.target_mib) },
    };
}

json to_json(MemoryCeiling const& c)
{
    return json {
        { "mib", c.mib },
        { "lease_ms", c.lease_ms },
        { "expires_in_ms", c.expires_in_ms },
        { "applied", c.applied },
    };
}

std::string dump_json(json const& value, int indent)
{
    try {
        return value.dump(indent, ' ', false, json::error_handler_t::replace);
    } catch (std::exception const&) {
        return "{}"; // Unreachable with error_handler_t::replace short of bad_alloc.
    }
}

std::string fault_body(std::string_view message)
{
    json body = json::object();
    body["fault_message"] = std::string(message);
    return dump_json(body);
}

namespace {

// Client text echoed in an error is cut short: an error message is not a mirror.
std::string quote_key(std::string_view key)
{
    constexpr std::size_t MAX = 64;
    if (key.size() > MAX)
        return fmt::format("'{}...'", key.substr(0, MAX));
    return fmt::format("'{}'", key);
}

std::expected<std::uint64_t, std::string> unsigned_field(json const& body, char const* name)
{
    auto const& value = body.at(name);
    // nlohmann stores non-negative integers as number_unsigned; -1, 1.5, 1e3 and integers past
    // 2^64 (parsed as double) are not.
    if (!value.is_number_unsigned())
        return std::unexpected(fmt::format("field '{}' must be an unsigned integer", name));
    return value.get<std::uint64_t>();
}

// A request body: valid JSON, an object, and only the named fields.
std::expected<json, std::string> parse_object(std::string_view body, std::initializer_list<std::string_view> fields)
{
    json parsed = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded())
        return std::unexpected(std::string("request body is not valid JSON"));
    if (!parsed.is_object())
        return std::unexpected(std::string("request body must be a JSON object"));
    for (auto const& [key, value] : parsed.items()) {
        if (std::find(fields.begin(), fields.end(), key) == fields.end())
            return std::unexpected(fmt::format("unknown field {}", quote_key(key)));
    }
    return parsed;
}

} // namespace

std::expected<TargetRequest, std::string> parse_target_request(std::string_view body)
{
    auto object = parse_object(body, { "target_mib", "timeout_ms" });
    if (!object)
        return std::unexpected(object.error());
    json const& parsed = *object;
    if (!parsed.contains("target_mib"))
        return std::unexpected(std::string("missing field 'target_mib'"));
    TargetRequest request;
    auto target = unsigned_field(parsed, "target_mib");
    if (!target)
        return std::unexpected(target.error());
    request.target_mib = *target;
    if (parsed.contains("timeout_ms")) {
        auto timeout = unsigned_field(parsed, "timeout_ms");
        if (!timeout)
            return std::unexpected(timeout.error());
        if (*timeout > MAX_TIMEOUT_MS)
            return std::unexpected(fmt::format("field 'timeout_ms' must be at most {}", MAX_TIMEOUT_MS));
        request.timeout = std::chrono::milliseconds(*timeout);
    }
    return request;
}

std::expected<PolicyUpdate, std::string> parse_policy_update(std::string_view body)
{
    auto object = parse_object(body, { "mode", "min_mib", "max_mib", "buffer_percent", "weight", "min_step_mib",
                                          "min_interval_ms", "hysteresis_percent", "shrink_delay_ms", "on_reboot_size" });
    if (!object)
        return std::unexpected(object.error());
    json const& parsed = *object;
    if (parsed.empty())
        return std::unexpected(std::string("request body names no policy field"));
    PolicyUpdate update;
    auto text = [&](char const* name, std::initializer_list<std::string_view> allowed,
                    std::optional<std::string>& out) -> std::optional<std::string> {
        if (!parsed.contains(name))
            return std::nullopt;
        auto const& value = parsed.at(name);
        std::string const got = value.is_string() ? value.get<std::string>() : std::string {};
        if (!value.is_string() || std::find(allowed.begin(), allowed.end(), got) == allowed.end())
            return fmt::format("field '{}' must be \"{}\" or \"{}\"", name, *allowed.begin(), *(allowed.begin() + 1));
        out = got;
        return std::nullopt;
    };
    if (auto error = text("mode", { "manual", "auto" }, update.mode))
        return std::unexpected(*error);
    if (auto error = text("on_reboot_size", { "boot", "last" }, update.on_reboot_size))
        return std::unexpected(*error);
    std::pair<char const*, std::optional<std::uint64_t>*> const numbers[] = {
        { "min_mib", &update.min_mib },
        { "max_mib", &update.max_mib },
        { "buffer_percent", &update.buffer_percent },
        { "weight", &update.weight },
        { "min_step_mib", &update.min_step_mib },
        { "min_interval_ms", &update.min_interval_ms },
        { "hysteresis_percent", &update.hysteresis_percent },
        { "shrink_delay_ms", &update.shrink_delay_ms },
    };
    for (auto const& [name, out] : numbers) {
        if (!parsed.contains(name))
            continue;
        auto value = unsigned_field(parsed, name);
        if (!value)
            return std::unexpected(value.error());
        *out = *value;
    }
    return update;
}

std::expected<CeilingRequest, std::string> parse_ceiling_request(std::string_view body)
{
    auto object = parse_object(body, { "mib", "lease_ms" });
    if (!object)
        return std::unexpected(object.error());
    json const& parsed = *object;
    CeilingRequest request;
    for (auto [name, out] : { std::pair { "mib", &request.mib }, std::pair { "lease_ms", &request.lease_ms } }) {
        if (!parsed.contains(name))
            return std::unexpected(fmt::format("missing field '{}'", name));
        auto value = unsigned_field(parsed, name);
        if (!value)
            return std::unexpected(value.error());
        *out = *value;
    }
    if (request.mib == 0)
        return std::unexpected(std::string("field 'mib' must be at least 1"));
    if (request.lease_ms < MIN_CEILING_LEASE_MS || request.lease_ms > MAX_CEILING_LEASE_MS)
        return std::unexpected(fmt::format("field 'lease_ms' must be {}..{} (got {})", MIN_CEILING_LEASE_MS,
            MAX_CEILING_LEASE_MS, request.lease_ms));
    return request;
}

std::expected<ShutdownRequest, std::string> parse_shutdown_request(std::string_view body)
{
    ShutdownRequest request;
    if (body.find_first_not_of(" \t\r\n") == std::string_view::npos)
        return request;
    auto object = parse_object(body, { "timeout_ms", "reboot" });
    if (!object)
        return std::unexpected(object.error());
    json const& parsed = *object;
    if (parsed.contains("timeout_ms")) {
        auto timeout = unsigned_field(parsed, "timeout_ms");
        if (!timeout)
            return std::unexpected(timeout.error());
        if (*timeout > MAX_TIMEOUT_MS)
            return std::unexpected(fmt::format("field 'timeout_ms' must be at most {}", MAX_TIMEOUT_MS));
        request.timeout_ms = *timeout;
    }
    if (parsed.contains("reboot")) {
        if (!parsed["reboot"].is_boolean())
            return std::unexpected(std::string("field 'reboot' must be true or false"));
        request.reboot = parsed["reboot"].get<bool>();
    }
    return request;
}

std::expected<bool, std::string> parse_link_request(std::string_view body)
{
    auto object = parse_object(body, { "up" });
    if (!object)
        return std::unexpected(object.error());
    if (!object->contains("up"))
        return std::unexpected(std::string("missing field 'up'"));
    if (!(*object)["up"].is_boolean())
        return std::unexpected(std::string("field 'up' must be true or false"));
    return (*object)["up"].get<bool>();
}

} // namespace vmm::api

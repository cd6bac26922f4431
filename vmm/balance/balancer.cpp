// SPDX-License-Identifier: MIT
// Balancer: one arbitration round over the VMs' API sockets (balancer.hpp).
#include "vmm/balance/balancer.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "vmm/api/api_json.hpp"

namespace vmm::balance {

namespace {

using nlohmann::json;

std::optional<std::uint64_t> unsigned_at(json const& object, char const* key)
{
    if (!object.is_object() || !object.contains(key) || !object[key].is_number_unsigned())
        return std::nullopt;
    return object[key].get<std::uint64_t>();
}

std::string source_name(SupplySource source)
{
    switch (source) {
    case SupplySource::MemInfo:
        return "meminfo";
    case SupplySource::Cgroup:
        return "cgroup";
    case SupplySource::Fixed:
        return "host_mib";
    }
    return "?";
}

} // namespace

Result<VmReading> parse_vm_reading(std::string_view body)
{
    auto info = json::parse(body.begin(), body.end(), nullptr, false);
    if (!info.is_object())
        return fail(Errc::InvalidArgument, "GET /api/v1/memory did not answer a JSON object");
    auto const& policy = info.contains("policy") ? info["policy"] : json {};
    auto current = unsigned_at(info, "current_mib");
    auto max = unsigned_at(info, "max_mib");
    auto min = unsigned_at(policy, "min_mib");
    auto policy_max = unsigned_at(policy, "max_mib");
    auto weight = unsigned_at(policy, "weight");
    if (!current || !max || !min || !policy_max || !weight || !policy.contains("mode") || !policy["mode"].is_string())
        return fail(Errc::InvalidArgument,
            "GET /api/v1/memory lacks current_mib, max_mib or policy.{mode,min_mib,max_mib,weight}");
    VmReading vm;
    vm.auto_mode = policy["mode"] == "auto";
    vm.current_mib = *current;
    vm.resident_mib = *current;
    if (info.contains("host") && info["host"].is_object()) {
        auto boot = unsigned_at(info["host"], "boot_ram_resident_mib");
        auto hot = unsigned_at(info["host"], "hot_add_resident_mib");
        if (boot && hot)
            vm.resident_mib = *boot + std::min(*hot, UINT64_MAX - *boot);
    }
    vm.arbiter.min_mib = *min;
    vm.arbiter.max_mib = *policy_max ? std::min(*policy_max, *max) : *max;
    vm.arbiter.weight = static_cast<std::uint32_t>(std::min<std::uint64_t>(*weight, hv_balloon::ARBITER_MAX_WEIGHT));
    // No wish known yet (no report since the policy changed): what it has or is heading to.
    vm.arbiter.want_mib = std::max(*current, unsigned_at(info, "target_mib").value_or(0));
    if (info.contains("last_decision") && info["last_decision"].is_object())
        if (auto wanted = unsigned_at(info["last_decision"], "wanted_mib"))
            vm.arbiter.want_mib = *wanted;
    return vm;
}

Balancer::Balancer(BalanceOptions options, Transport transport)
    : m_options(std::move(options))
    , m_transport(std::move(transport))
{
}

json Balancer::round(std::vector<std::string> const& sockets, HostFree const& free, Clock::time_point now)
{
    struct Member { std::string socket; VmReading reading; };
    std::vector<Member> members;       // Auto-mode VMs: arbitrated.
    std::uint64_t resident = 0;        // Every answering VM's host memory.
    std::uint64_t fixed = 0;           // Held outside the split: manual VMs, silent leased VMs.
    json skipped = json::array();
    json manual = json::array();
    for (auto const& socket : sockets) {
        auto response = m_transport(socket, "GET", "/api/v1/memory", {});
        std::optional<std::string> error;
        if (!response)
            error = std::string { response.error().message() };
        else if (response->status != 200)
            error = fmt::format("GET /api/v1/memory answered {}", response->status);
        Result<VmReading> reading = error ? fail(Errc::Busy, *error) : parse_vm_reading(response->body);
        if (!reading) {
            json entry { { "socket", socket }, { "error", std::string { reading.error().what() } } };
            // A VM we leased a ceiling to may still grow to it until the lease lapses.
            if (auto sent = m_sent.find(socket); sent != m_sent.end() && sent->second.expires > now) {
                fixed += sent->second.ceiling_mib;
                entry["counted_mib"] = sent->second.ceiling_mib;
            } else if (sent != m_sent.end()) {
                m_sent.erase(sent);
            }
            skipped.push_back(entry);
            continue;
        }
        resident += std::min(reading->resident_mib, UINT64_MAX / 4);
        if (!reading->auto_mode) {
            fixed += std::min(reading->current_mib, UINT64_MAX / 4);
            manual.push_back(json { { "socket", socket }, { "current_mib", reading->current_mib } });
            m_sent.erase(socket);
            continue;
        }
        members.push_back({ socket, *reading });
    }

    std::uint64_t const host_supply = supply_mib(free, resident, m_options.reserve_mib);
    std::uint64_t const supply = host_supply > fixed ? host_supply - fixed : 0;
    std::vector<hv_balloon::ArbiterVm> inputs;
    for (auto const& member : members)
        inputs.push_back(member.reading.arbiter);
    auto const split = hv_balloon::arbitrate(inputs, supply, m_options.granule_mib);

    json vms = json::array();
    std::uint64_t const lease = m_options.lease();
    for (std::size_t i = 0; i < members.size(); ++i) {
        auto const& member = members[i];
        auto const& share = split.vms[i];
        json entry { { "socket", member.socket }, { "want_mib", member.reading.arbiter.want_mib },
            { "min_mib", member.reading.arbiter.min_mib }, { "max_mib", member.reading.arbiter.max_mib },
            { "weight", member.reading.arbiter.weight }, { "current_mib", member.reading.current_mib },
            { "share_mib", share.share_mib }, { "ceiling_mib", share.ceiling_mib } };
        if (!m_options.dry_run) {
            auto body = api::dump_json(json { { "mib", std::max<std::uint64_t>(share.ceiling_mib, 1) }, { "lease_ms", lease } });
            auto put = m_transport(member.socket, "PUT", "/api/v1/memory/ceiling", body);
            if (!put || put->status != 200) {
                entry["error"] = put ? fmt::format("PUT /api/v1/memory/ceiling answered {}: {}", put->status, put->body)
                                     : std::string { put.error().message() };
            } else {
                m_sent[member.socket] = Sent { share.ceiling_mib, now + std::chrono::milliseconds { lease } };
            }
        }
        vms.push_back(entry);
    }
    return json {
        { "source", source_name(free.source) },
        { "supply_mib", supply },
        { "host_supply_mib", host_supply },
        { "fixed_mib", fixed },
        { "wanted_mib", split.wanted_mib },
        { "granted_mib", split.granted_mib },
        { "contended", split.contended },
        { "overcommitted", split.overcommitted },
        { "vms", vms },
        { "manual", manual },
        { "skipped", skipped },
    };
}

void Balancer::release()
{
    if (m_options.dry_run)
        return;
    for (auto const& [socket, sent] : m_sent)
        (void)m_transport(socket, "DELETE", "/api/v1/memory/ceiling", {}); // Best effort: leases lapse anyway.
    m_sent.clear();
}

std::vector<std::string> list_sockets(BalanceOptions const& options)
{
    std::vector<std::string> out = options.sockets;
    if (options.dir) {
        std::vector<std::string> found;
        std::error_code ec;
        for (auto const& entry : std::filesystem::directory_iterator(*options.dir, ec)) {
            std::error_code type_ec;
            if (entry.is_socket(type_ec))
                found.push_back(entry.path().string());
        }
        std::sort(found.begin(), found.end());
        for (auto& path : found)
            if (std::find(out.begin(), out.end(), path) == out.end())
                out.push_back(std::move(path));
    }
    return out;
}

} // namespace vmm::balance

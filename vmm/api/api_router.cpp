// SPDX-License-Identifier: MIT
// Routing and status codes of the REST API (API.md is the user-facing description).
#include "vmm/api/api_router.hpp"

#include <charconv>

#include <fmt/format.h>

#include "vmm/api/api_json.hpp"
#include "vmm/api/event_hub.hpp"
#include "vmm/api/metrics.hpp"

namespace vmm::api {

namespace {

constexpr std::string_view OPERATIONS_PREFIX = "/api/v1/memory/operations/";
constexpr std::string_view NET_PREFIX = "/api/v1/net/";
constexpr std::string_view LINK_SUFFIX = "/link";

HttpResponse json_response(unsigned status, nlohmann::json const& body)
{
    HttpResponse response;
    response.status = status;
    response.body = dump_json(body);
    return response;
}

HttpResponse method_not_allowed(std::string_view allow)
{
    auto response = error_response(405, "method not allowed; use " + std::string(allow));
    response.headers.emplace_back("Allow", std::string(allow));
    return response;
}

std::optional<std::uint64_t> parse_id(std::string_view text)
{
    std::uint64_t id = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty())
        return std::nullopt;
    return id;
}

} // namespace

HttpResponse error_response(unsigned status, std::string_view message)
{
    HttpResponse response;
    response.status = status;
    response.body = fault_body(message);
    return response;
}

HttpResponse operation_response(Operation const& op)
{
    auto response = json_response(op.running() ? 202 : 200, to_json(op));
    if (op.running())
        response.headers.emplace_back("Location", fmt::format("{}{}", OPERATIONS_PREFIX, op.id));
    return response;
}

RouteResult ApiRouter::route(HttpRequest const& request)
{
    std::string_view path = request.target;
    if (auto query = path.find('?'); query != std::string_view::npos)
        path = path.substr(0, query);
    bool const get = request.method == "GET";

    if (path == "/api/v1/vm") {
        if (!get)
            return method_not_allowed("GET");
        return json_response(200, to_json(m_backend.vm_info()));
    }
    if (path == "/api/v1/vm/shutdown") {
        if (request.method != "PUT")
            return method_not_allowed("PUT");
        auto parsed = parse_shutdown_request(request.body);
        if (!parsed)
            return error_response(400, parsed.error());
        auto started = m_backend.shutdown(*parsed);
        if (!started)
            return error_response(409, started.error());
        return json_response(202, to_json(*started));
    }
    if (path == "/api/v1/memory") {
        if (!get)
            return method_not_allowed("GET");
        return json_response(200, to_json(m_backend.memory_info()));
    }
    if (path == "/api/v1/memory/policy") {
        if (request.method == "GET")
            return json_response(200, to_json(m_backend.memory_info().policy));
        if (request.method != "PUT")
            return method_not_allowed("GET, PUT");
        auto update = parse_policy_update(request.body);
        if (!update)
            return error_response(400, update.error());
        auto policy = m_backend.set_policy(*update);
        if (!policy)
            return error_response(400, policy.error());
        return json_response(200, to_json(*policy));
    }
    if (path == "/api/v1/memory/ceiling") {
        // GET shows the lease, PUT sets or renews it, DELETE releases it (an arbiter stopping).
        if (request.method == "GET") {
            auto ceiling = m_backend.memory_info().ceiling;
            if (!ceiling)
                return error_response(404, "no host ceiling in force");
            return json_response(200, to_json(*ceiling));
        }
        std::optional<CeilingRequest> wanted;
        if (request.method == "PUT") {
            auto parsed = parse_ceiling_request(request.body);
            if (!parsed)
                return error_response(400, parsed.error());
            wanted = *parsed;
        } else if (request.method != "DELETE") {
            return method_not_allowed("GET, PUT, DELETE");
        }
        auto set = m_backend.set_ceiling(wanted);
        if (!set)
            return error_response(409, set.error());
        if (!*set) {
            HttpResponse response;
            response.status = 204;
            return response;
        }
        return json_response(200, to_json(**set));
    }
    if (path == "/api/v1/memory/target") {
        if (request.method != "PUT")
            return method_not_allowed("PUT");
        RouteResult result;
        auto response = set_target(request.body, result);
        if (std::holds_alternative<WaitForOperation>(result))
            return result;
        return response;
    }
    if (path.starts_with(OPERATIONS_PREFIX)) {
        auto id = parse_id(path.substr(OPERATIONS_PREFIX.size()));
        if (!id)
            return error_response(404, "no such operation");
        if (!get)
            return method_not_allowed("GET");
        auto op = m_backend.operation(*id);
        if (!op)
            return error_response(404, fmt::format("no operation {}", *id));
        return json_response(200, to_json(*op));
    }
    if (path.starts_with(NET_PREFIX) && path.ends_with(LINK_SUFFIX)
        && path.size() > NET_PREFIX.size() + LINK_SUFFIX.size()) {
        // PUT /api/v1/net/{nic}/link {"up": bool}: the cable, as the guest sees it.
        auto id = parse_id(path.substr(NET_PREFIX.size(), path.size() - NET_PREFIX.size() - LINK_SUFFIX.size()));
        if (!id || *id > UINT32_MAX)
            return error_response(404, "no such NIC");
        if (request.method != "PUT")
            return method_not_allowed("PUT");
        auto up = parse_link_request(request.body);
        if (!up)
            return error_response(400, up.error());
        auto nic = m_backend.set_link(static_cast<std::uint32_t>(*id), *up);
        if (!nic)
            return error_response(404, nic.error());
        return json_response(200, to_json(*nic));
    }
    if (path == "/api/v1/events") {
        if (!get)
            return method_not_allowed("GET");
        return StreamEvents {};
    }
    if (path == "/metrics") {
        if (!get)
            return method_not_allowed("GET");
        auto vm = m_backend.vm_info();
        auto memory = m_backend.memory_info();
        auto counters = m_backend.counters();
        HttpResponse response;
        response.content_type = PROMETHEUS_CONTENT_TYPE;
        response.body = render_metrics(vm, memory, counters, m_stats, m_hub) + m_backend.extra_metrics();
        return response;
    }
    return error_response(404, "no such endpoint");
}

HttpResponse ApiRouter::set_target(std::string const& body, RouteResult& result)
{
    auto request = parse_target_request(body);
    if (!request)
        return error_response(400, request.error());
    auto op = m_backend.set_target(request->target_mib);
    if (!op) {
        switch (op.error()) {
        case SetTargetError::NotConnected: {
            // The DM driver connects late (QEMU hv-balloon and Hyper-V hold requests ~50 s after
            // boot, QEMU hw/hyperv/hv-balloon.c HV_BALLOON_POST_INIT_WAIT): tell the client to retry, not that it erred.
            auto response = error_response(503, "the guest's Dynamic Memory driver is not connected yet");
            response.headers.emplace_back("Retry-After", "1");
            return response;
        }
        case SetTargetError::AboveMax: {
            auto info = m_backend.memory_info();
            return error_response(400,
                fmt::format("target_mib {} is above max_memory_mib {}", request->target_mib, info.max_mib));
        }
        case SetTargetError::AutoMode:
            return error_response(409, "the memory policy is \"auto\": it sets the target; PUT /api/v1/memory/policy "
                                       "{\"mode\": \"manual\"} first");
        case SetTargetError::BelowFloor: {
            auto info = m_backend.memory_info();
            return error_response(400,
                fmt::format("target_mib {} is below the safe floor of {} MiB", request->target_mib, info.floor_mib));
        }
        }
        return error_response(500, "unknown set_target error");
    }
    if (request->timeout && op->running() && request->timeout->count() > 0) {
        result = WaitForOperation { *op, *request->timeout };
        return {};
    }
    return operation_response(*op);
}

} // namespace vmm::api

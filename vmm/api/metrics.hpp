// SPDX-License-Identifier: MIT
// Prometheus text exposition (format 0.0.4) of the memory state and the counters.
#pragma once

#include <string>

#include "vmm/api/api_backend.hpp"

namespace vmm::api {

struct ServerStats;
class EventHub;

inline constexpr char const* PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

std::string render_metrics(VmInfo const&, MemoryInfo const&, MemoryCounters const&, ServerStats const&,
    EventHub const&);

} // namespace vmm::api

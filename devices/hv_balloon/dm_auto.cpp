// SPDX-License-Identifier: MIT
// DynamicMemory: the glue to DmPolicy (auto mode). The policy runs at each status report and at
// its own deadline, which next_deadline() folds into the engine's one timer.
#include "devices/hv_balloon/dynamic_memory.hpp"

#include "base/log.hpp"

namespace vmm::hv_balloon {

namespace {
constexpr std::string_view COMPONENT = "hv_balloon";
}

std::optional<Instant> DynamicMemory::next_deadline() const
{
    auto const policy = m_policy.next_deadline();
    if (!policy)
        return m_deadline;
    if (!m_deadline)
        return policy;
    return std::min(*policy, *m_deadline);
}

Result<void> DynamicMemory::set_policy(PolicyConfig config)
{
    VMM_TRY(validate_policy(config, m_map.max_pages()));
    m_policy.configure(config);
    log::info(COMPONENT, "memory policy: {} ({}..{} MiB, buffer {} %)", policy_mode_name(config.mode),
        config.min.mib(), (config.max.raw() ? config.max : m_map.max_pages()).mib(), config.buffer_percent);
    run_policy();
    return {};
}

void DynamicMemory::set_ceiling(std::optional<mem::PageCount> limit, Duration lease)
{
    std::optional<HostCeiling> ceiling;
    if (limit)
        ceiling = HostCeiling { *limit, m_now + lease };
    if (m_policy.set_ceiling(ceiling)) {
        emit(DmCeilingChanged { limit, lease });
        if (limit)
            log::info(COMPONENT, "host ceiling {} MiB (lease {} ms)", limit->mib(),
                std::chrono::duration_cast<std::chrono::milliseconds>(lease).count());
        else
            log::info(COMPONENT, "host ceiling cleared");
    }
    run_policy();
}

PolicyView DynamicMemory::policy_view() const
{
    PolicyView view;
    view.now = m_now;
    view.connected = m_caps.has_value() && m_state != State::Closed && m_state != State::PostConnectDelay;
    view.current = m_map.current_pages();
    view.ballooned = m_map.ballooned_pages();
    view.reachable = hot_add_available() ? m_map.max_pages() : view.current + view.ballooned;
    view.target = m_target;
    view.operation_running = operation_running();
    view.shrinking = view.operation_running && m_operation->target < m_operation->from;
    view.report = m_guest_status ? &*m_guest_status : nullptr;
    return view;
}

void DynamicMemory::run_policy()
{
    if (auto const lapsed = m_policy.ceiling(); lapsed && m_policy.expire_ceiling(m_now)) {
        emit(DmCeilingExpired { lapsed->limit });
        log::warn(COMPONENT, "host ceiling {} MiB expired: the arbiter stopped renewing it; back to {}..{} MiB",
            lapsed->limit.mib(), m_policy.config().min.mib(),
            (m_policy.config().max.raw() ? m_policy.config().max : m_map.max_pages()).mib());
    }
    auto const view = policy_view();
    auto target = m_policy.evaluate(view);
    if (!target)
        return;
    emit(DmPolicyDecided { m_policy.last_decision(), view.current });
    log::info(COMPONENT, "auto: {} -> {} MiB ({})", view.current.mib(), target->mib(), m_policy.last_decision().reason);
    // A target reached at once finished its operation inside set_target(): nothing to follow.
    if (set_target(*target) && operation_running())
        m_operation_by_policy = true;
}

} // namespace vmm::hv_balloon

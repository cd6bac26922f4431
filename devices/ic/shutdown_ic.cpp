// SPDX-License-Identifier: MIT
// ShutdownIc: see shutdown_ic.hpp.
#include "devices/ic/shutdown_ic.hpp"

namespace vmm::ic {

std::string_view shutdown_outcome_name(ShutdownOutcome outcome)
{
    switch (outcome) {
    case ShutdownOutcome::Accepted: return "accepted";
    case ShutdownOutcome::Refused: return "refused";
    case ShutdownOutcome::Lost: return "lost";
    }
    return "unknown";
}

ShutdownIc::ShutdownIc(vmbus::Guid instance)
    : IcChannel(instance, VERSIONS)
{
}

Result<void> ShutdownIc::request(bool restart)
{
    if (state() != IcState::Ready)
        return fail(Errc::Unsupported, "guest shutdown service not connected");
    if (request_in_flight())
        return fail(Errc::Busy, "a guest shutdown request is in flight");
    ShutdownBody body {};
    // 0 = shut down, 2 = restart; not forced (bit 0): the guest's own path decides (hv_util.c:236-254).
    body.flags = restart ? SHUTDOWN_FLAG_RESTART : 0;
    if (!send_request(wire_bytes(body)))
        return fail(Errc::Busy, "guest shutdown request not sent");
    return {};
}

void ShutdownIc::on_response(std::span<std::byte const>, u32 status)
{
    report(status == HV_S_OK ? ShutdownOutcome::Accepted : ShutdownOutcome::Refused);
}

void ShutdownIc::on_request_lost() { report(ShutdownOutcome::Lost); }

void ShutdownIc::report(ShutdownOutcome outcome)
{
    if (m_handler)
        m_handler(outcome);
}

} // namespace vmm::ic

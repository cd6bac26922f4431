// SPDX-License-Identifier: MIT
// ShutdownIc: the shutdown integration component. request() asks the guest to power off or
// restart through its own shutdown path (Linux hv_utils runs orderly_poweroff/orderly_reboot,
// hv_util.c:167-175, 242-254); the guest's answer (HV_S_OK or a failure) is reported through
// the outcome callback. Whether the guest then really powers off is the owner's business
// (it times the request and forces a stop).
#pragma once

#include <functional>

#include "devices/ic/ic_channel.hpp"

namespace vmm::ic {

enum class ShutdownOutcome : u8 {
    Accepted, // Guest answered HV_S_OK: it is shutting down.
    Refused,  // Guest answered a failure status.
    Lost,     // No answer (timeout, or the channel closed first).
};
std::string_view shutdown_outcome_name(ShutdownOutcome);

class ShutdownIc final : public IcChannel {
public:
    // Service versions hv_utils knows, newest first (hv_util.c:56-62: 3.2, 3.1, 3.0, 1.0).
    static constexpr std::array<IcVersion, 4> VERSIONS { IcVersion { 3, 2 }, IcVersion { 3, 1 }, IcVersion { 3, 0 },
        IcVersion { 1, 0 } };

    explicit ShutdownIc(vmbus::Guid instance);

    // Sends the request now. Errors: not negotiated yet (Unsupported), a request in flight (Busy).
    Result<void> request(bool restart);
    void set_outcome_handler(std::function<void(ShutdownOutcome)> handler) { m_handler = std::move(handler); }

protected:
    vmbus::Guid class_guid() const override { return SHUTDOWN_GUID; }
    IcMessageType service_type() const override { return IcMessageType::Shutdown; }
    void on_response(std::span<std::byte const> body, u32 status) override;
    void on_request_lost() override;

private:
    void report(ShutdownOutcome outcome);
    std::function<void(ShutdownOutcome)> m_handler;
};

} // namespace vmm::ic

// SPDX-License-Identifier: MIT
// An observer of what the guest sends the VMBus host, for the opt-in traffic recorder
// (vmm/backends/traffic_recorder.hpp, README "Fuzzing": seeds from a real guest). It sees each
// HvPostMessage payload before the host parses it and each guest->host ring packet a device
// accepted, just before the device's on_packet. Off (nullptr) by default; called under the VMBus
// glue lock, so it must not call back into the host.
#pragma once

#include <span>

#include "base/types.hpp"
#include "devices/vmbus/channel_device.hpp"
#include "devices/vmbus/packet.hpp"

namespace vmm::vmbus {

class TrafficTap {
public:
    virtual ~TrafficTap() = default;
    virtual void on_guest_message(u32 vp, u32 connection_id, u32 message_type, std::span<std::byte const> payload) = 0;
    // `interface_type` is the device's class GUID (its offer), so a recording can be split per device.
    virtual void on_guest_packet(Guid const& interface_type, u32 relid, InboundPacket const& packet) = 0;
    // Bytes a device gathered from guest memory for one message (ChannelPort::record_guest_bytes).
    virtual void on_guest_bytes(Guid const& interface_type, u32 relid, std::span<std::byte const> bytes) = 0;
};

} // namespace vmm::vmbus

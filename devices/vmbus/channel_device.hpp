// SPDX-License-Identifier: MIT
// The interface between the VMBus host and one VMBus device (the DM device is one): the device
// describes its offer and gets packets; the host hands it a ChannelPort while the channel is open.
// Shared interface agreed in RULES.md ("Shared interfaces"); change only by agreement.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <span>

#include "base/error.hpp"

namespace vmm::vmbus {

// A GUID in wire order (the 16 bytes exactly as they appear in OFFERCHANNEL).
struct Guid {
    std::array<std::uint8_t, 16> bytes;
    auto operator<=>(Guid const&) const = default;
};

struct OfferParams {
    Guid interface_type;     // Class GUID (selects the guest driver).
    Guid interface_instance; // Unique among live offers; becomes the guest device name.
    std::uint16_t mmio_megabytes = 0;
};

// What a device may do on its open channel. Implemented by the VMBus host, faked in tests.
class ChannelPort {
public:
    virtual ~ChannelPort() = default;
    // Writes one VM_PKT_DATA_INBAND packet (payload padded to 8 bytes by the host) into the
    // host->guest ring and signals the guest if needed. Errc::Busy when the ring lacks room
    // (the device waits for on_ring_space()).
    virtual Result<void> send_packet(std::span<std::byte const> payload, std::uint64_t transaction_id) = 0;
    // Free bytes in the host->guest ring (for sizing multi-message work).
    virtual std::uint64_t send_space_bytes() const = 0;
};

// A VMBus device. Calls come one at a time from the VmbusHost (under the VMM's VMBus glue lock).
class ChannelDevice {
public:
    virtual ~ChannelDevice() = default;
    virtual OfferParams offer() const = 0;
    virtual void on_open(ChannelPort& port) = 0; // port valid until on_close()
    // One guest->host packet's payload (after the packet descriptor), guest-controlled.
    virtual void on_packet(std::span<std::byte const> payload) = 0;
    virtual void on_ring_space() = 0; // host->guest ring has room again
    virtual void on_close() = 0;      // closed, rescinded, unloaded or reset
};

} // namespace vmm::vmbus

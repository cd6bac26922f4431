// SPDX-License-Identifier: MIT
// TEMPORARY copy of the agreed devices/vmbus/channel_device.hpp interface (RULES.md "Shared
// interfaces"), used only while the VMBus engineer's file has not landed. devices/hv_balloon's
// meson.build adds this include path only when devices/vmbus/channel_device.hpp is missing.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <span>

#include "base/error.hpp"

namespace vmm::vmbus {
struct Guid {
    std::array<std::uint8_t, 16> bytes;
    auto operator<=>(Guid const&) const = default;
};
struct OfferParams {
    Guid interface_type;
    Guid interface_instance;
    std::uint16_t mmio_megabytes = 0;
};
class ChannelPort {
public:
    virtual ~ChannelPort() = default;
    virtual Result<void> send_packet(std::span<std::byte const> payload, std::uint64_t transaction_id) = 0;
    virtual std::uint64_t send_space_bytes() const = 0;
};
class ChannelDevice {
public:
    virtual ~ChannelDevice() = default;
    virtual OfferParams offer() const = 0;
    virtual void on_open(ChannelPort& port) = 0;
    virtual void on_packet(std::span<std::byte const> payload) = 0;
    virtual void on_ring_space() = 0;
    virtual void on_close() = 0;
};
} // namespace vmm::vmbus

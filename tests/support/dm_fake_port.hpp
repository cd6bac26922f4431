// SPDX-License-Identifier: MIT
// FakeChannelPort: a vmbus::ChannelPort that queues host->guest DM messages for a fake guest to
// read, and can report a full ring (Errc::Busy).
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "devices/vmbus/channel_device.hpp"

namespace vmm::test {

class FakeChannelPort final : public vmbus::ChannelPort {
public:
    Result<void> send_packet(std::span<std::byte const> payload, std::uint64_t) override
    {
        if (busy)
            return fail(Errc::Busy, "ring full");
        if (fail_sends)
            return fail(Errc::Syscall, "ring broken");
        sent.emplace_back(payload.begin(), payload.end());
        ++sent_total;
        return {};
    }
    std::uint64_t send_space_bytes() const override { return busy ? 0 : 16 * 1024; }
    Result<void> send(vmbus::OutboundPacket const& packet) override
    {
        // DM only sends plain inband packets; anything else is a test failure to surface.
        if (packet.type != vmbus::VmPacketType::VM_PKT_DATA_INBAND || !packet.header.empty())
            return fail(Errc::Unsupported, "fake port: inband packets only");
        return send_packet(packet.payload, packet.transaction_id);
    }
    Result<vmbus::GpadlView> acquire_gpadl(std::uint32_t id) override
    {
        return fail(Errc::Unsupported, "fake port: no GPADLs", id);
    }
    void release_gpadl(std::uint32_t) override { }

    bool busy = false;
    bool fail_sends = false;
    std::deque<std::vector<std::byte>> sent; // Not yet read by the guest.
    std::uint64_t sent_total = 0;
};

} // namespace vmm::test

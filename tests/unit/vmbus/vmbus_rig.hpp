// SPDX-License-Identifier: MIT
// Shared fixture for VMBus host tests: fake memory, SynIC port, host with two VPs, an echo
// device and the Linux-like test guest.
#pragma once

#include <gtest/gtest.h>

#include "devices/vmbus/connection.hpp"
#include "tests/support/vmbus_fakes.hpp"
#include "tests/support/vmbus_test_guest.hpp"

namespace vmm::test {

class VmbusRig : public ::testing::Test {
protected:
    static constexpr std::uint32_t VCPUS = 2;
    static constexpr std::uint32_t RING_PAGES = 10; // DM: 5 + 5 (guest-interface §7.1).

    template<typename T>
    static T with_type(vmbus::MessageType type)
    {
        T message {};
        message.header.msgtype = static_cast<std::uint32_t>(type);
        return message;
    }
    static vmbus::MessageHeader header_only(vmbus::MessageType type) { return { static_cast<std::uint32_t>(type), 0 }; }

    // Connect at `version`, add nothing, request offers; returns the offers.
    std::vector<vmbus::OfferChannel> connect(std::uint32_t version = vmbus::VERSION_WIN10_V5_3)
    {
        EXPECT_TRUE(guest.initiate_contact(version));
        return guest.request_offers();
    }
    // Full Linux bring-up of the echo device's channel; returns its offer.
    vmbus::OfferChannel open_echo(std::uint32_t version = vmbus::VERSION_WIN10_V5_3)
    {
        auto offers = connect(version);
        EXPECT_EQ(offers.size(), 1u);
        if (offers.empty())
            return {};
        EXPECT_EQ(guest.bring_up(offers[0], ring_pages, RING_PAGES / 2), vmbus::CHANNEL_STATUS_SUCCESS);
        return offers[0];
    }
    std::size_t count_sent(vmbus::MessageType type, std::vector<FakeSynicPort::Posted> const& messages) const
    {
        std::size_t count = 0;
        for (auto const& message : messages)
            count += message.msgtype() == static_cast<std::uint32_t>(type) ? 1 : 0;
        return count;
    }

    FakeGuestMemory memory = VmbusRam::make();
    FakeSynicPort synic;
    vmbus::VmbusHost host { memory.memory(), synic, VCPUS };
    EchoDevice echo { 1 };
    TestVmbusGuest guest { host, synic, memory };
    std::vector<mem::Gpn> ring_pages = TestVmbusGuest::scattered_pages(RING_PAGES);

    void SetUp() override { ASSERT_TRUE(host.add_device(echo).has_value()); }
};

} // namespace vmm::test

// SPDX-License-Identifier: MIT
// parse_message: sizes per type, unknown and host->guest types, GPADL range data.
#include "devices/vmbus/message_parser.hpp"

#include <gtest/gtest.h>

#include <cstring>

using namespace vmm;
using namespace vmm::vmbus;

namespace {

std::vector<std::byte> message_of(MessageType type, std::size_t size)
{
    std::vector<std::byte> bytes(size, std::byte { 0 });
    u32 raw = static_cast<u32>(type);
    std::memcpy(bytes.data(), &raw, std::min<std::size_t>(4, size));
    return bytes;
}

struct SizeCase {
    MessageType type;
    std::size_t linux_bytes; // What Linux 6.1 sends (guest-interface §6.3).
};

constexpr SizeCase GUEST_MESSAGES[] = {
    { MessageType::CHANNELMSG_REQUESTOFFERS, 8 },
    { MessageType::CHANNELMSG_OPENCHANNEL, 148 },
    { MessageType::CHANNELMSG_CLOSECHANNEL, 12 },
    { MessageType::CHANNELMSG_GPADL_HEADER, 28 + 8 * 10 },
    { MessageType::CHANNELMSG_GPADL_BODY, 16 + 8 * 28 },
    { MessageType::CHANNELMSG_GPADL_TEARDOWN, 16 },
    { MessageType::CHANNELMSG_RELID_RELEASED, 12 },
    { MessageType::CHANNELMSG_INITIATE_CONTACT, 40 },
    { MessageType::CHANNELMSG_UNLOAD, 8 },
    { MessageType::CHANNELMSG_TL_CONNECT_REQUEST, 40 },
    { MessageType::CHANNELMSG_MODIFYCHANNEL, 16 },
};

} // namespace

TEST(VmbusMessageParser, AcceptsEveryGuestMessageAtTheSizeLinuxSends)
{
    for (auto const& entry : GUEST_MESSAGES)
        EXPECT_TRUE(parse_message(message_of(entry.type, entry.linux_bytes)).has_value()) << static_cast<u32>(entry.type);
}

TEST(VmbusMessageParser, RejectsEveryGuestMessageOneByteShorterThanItsMinimum)
{
    for (auto const& entry : GUEST_MESSAGES) {
        std::size_t minimum = minimum_message_bytes(entry.type);
        auto parsed = parse_message(message_of(entry.type, minimum - 1));
        ASSERT_FALSE(parsed.has_value()) << static_cast<u32>(entry.type);
        EXPECT_EQ(parsed.error().code(), Errc::GuestProtocol);
    }
}

TEST(VmbusMessageParser, RejectsHostToGuestUnassignedAndUnknownTypes)
{
    for (u32 type : { 0u, 1u, 2u, 4u, 6u, 10u, 12u, 15u, 17u, 18u, 19u, 20u, 23u, 24u, 25u, 0xffff'ffffu }) {
        auto parsed = parse_message(message_of(static_cast<MessageType>(type), 200));
        ASSERT_FALSE(parsed.has_value()) << type;
        EXPECT_EQ(parsed.error().code(), Errc::GuestProtocol);
    }
}

TEST(VmbusMessageParser, RejectsPayloadsOver240BytesAndShorterThanTheHeader)
{
    EXPECT_FALSE(parse_message(message_of(MessageType::CHANNELMSG_OPENCHANNEL, 241)).has_value());
    EXPECT_FALSE(parse_message(message_of(MessageType::CHANNELMSG_UNLOAD, 7)).has_value());
    EXPECT_FALSE(parse_message({}).has_value());
}

TEST(VmbusMessageParser, AcceptsLongerFixedMessagesAndUsesOnlyTheirStruct)
{
    auto bytes = message_of(MessageType::CHANNELMSG_INITIATE_CONTACT, 56); // A newer guest's longer form.
    u32 version = VERSION_WIN10_V5_3;
    std::memcpy(bytes.data() + 8, &version, 4);
    auto parsed = parse_message(bytes);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(std::get<InitiateContact>(*parsed).vmbus_version_requested, VERSION_WIN10_V5_3);
}

TEST(VmbusMessageParser, GpadlHeaderRangeDataBecomesWordsAndMustBeWholeWords)
{
    auto bytes = message_of(MessageType::CHANNELMSG_GPADL_HEADER, 20 + 8 + 16);
    u64 head = (u64 { 0 } << 32) | 8192; // byte_offset 0, byte_count 8192.
    u64 pfns[2] = { 0x10, 0x11 };
    std::memcpy(bytes.data() + 20, &head, 8);
    std::memcpy(bytes.data() + 28, pfns, 16);
    auto parsed = parse_message(bytes);
    ASSERT_TRUE(parsed.has_value());
    auto const& header = std::get<GpadlHeaderMessage>(*parsed);
    ASSERT_EQ(header.range_words.size(), 3u);
    EXPECT_EQ(header.range_words[0], head);
    EXPECT_EQ(header.range_words[2], 0x11u);

    bytes.push_back(std::byte { 0 });
    EXPECT_FALSE(parse_message(bytes).has_value());
    auto body = message_of(MessageType::CHANNELMSG_GPADL_BODY, 16 + 8 + 4);
    EXPECT_FALSE(parse_message(body).has_value());
}

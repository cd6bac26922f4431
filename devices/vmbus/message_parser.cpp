// SPDX-License-Identifier: MIT
// Guest->host VMBus message parser. Sizes follow what Linux sends (guest-interface §6.3); fixed-size
// messages may be longer than their struct (newer guests append fields; UEFI pads to the maximum
// length, OpenVMM vmbus_server notes) but never shorter, and never over 240 bytes.
#include "devices/vmbus/message_parser.hpp"

#include <cstring>

namespace vmm::vmbus {

namespace {

std::vector<u64> words_from(std::span<std::byte const> bytes)
{
    std::vector<u64> words(bytes.size() / sizeof(u64));
    if (!words.empty())
        std::memcpy(words.data(), bytes.data(), words.size() * sizeof(u64));
    return words;
}

Result<Message> parse_gpadl_header(std::span<std::byte const> payload)
{
    auto fixed = wire_from<GpadlHeader>(payload);
    auto range_bytes = payload.subspan(sizeof(GpadlHeader));
    // The range data is made of 8-byte units (gpa_range head and PFNs), include/linux/hyperv.h:47-51.
    if (range_bytes.size() % sizeof(u64) != 0)
        return fail(Errc::GuestProtocol, "gpadl header range data not u64 words", payload.size());
    return GpadlHeaderMessage { fixed.child_relid, fixed.gpadl, fixed.range_buflen, fixed.rangecount,
        words_from(range_bytes) };
}

Result<Message> parse_gpadl_body(std::span<std::byte const> payload)
{
    auto fixed = wire_from<GpadlBody>(payload);
    auto pfn_bytes = payload.subspan(sizeof(GpadlBody));
    if (pfn_bytes.size() % sizeof(u64) != 0)
        return fail(Errc::GuestProtocol, "gpadl body pfns not u64 words", payload.size());
    return GpadlBodyMessage { fixed.msgnumber, fixed.gpadl, words_from(pfn_bytes) };
}

} // namespace

std::size_t minimum_message_bytes(MessageType type)
{
    switch (type) {
    case MessageType::CHANNELMSG_REQUESTOFFERS:
    case MessageType::CHANNELMSG_UNLOAD:
        return sizeof(MessageHeader);
    case MessageType::CHANNELMSG_OPENCHANNEL:
        return sizeof(OpenChannel);
    case MessageType::CHANNELMSG_CLOSECHANNEL:
        return sizeof(CloseChannel);
    case MessageType::CHANNELMSG_GPADL_HEADER:
        return sizeof(GpadlHeader) + sizeof(GpaRange); // At least one range head.
    case MessageType::CHANNELMSG_GPADL_BODY:
        return sizeof(GpadlBody) + sizeof(u64); // At least one PFN.
    case MessageType::CHANNELMSG_GPADL_TEARDOWN:
        return sizeof(GpadlTeardown);
    case MessageType::CHANNELMSG_RELID_RELEASED:
        return sizeof(RelidReleased);
    case MessageType::CHANNELMSG_INITIATE_CONTACT:
        return sizeof(InitiateContact);
    case MessageType::CHANNELMSG_TL_CONNECT_REQUEST:
        return sizeof(TlConnectRequest);
    case MessageType::CHANNELMSG_MODIFYCHANNEL:
        return sizeof(ModifyChannel);
    default:
        return 0; // Host->guest or unassigned types.
    }
}

Result<Message> parse_message(std::span<std::byte const> payload)
{
    if (payload.size() > MAX_MESSAGE_PAYLOAD_BYTES)
        return fail(Errc::GuestProtocol, "vmbus message over 240 bytes", payload.size());
    if (payload.size() < sizeof(MessageHeader))
        return fail(Errc::GuestProtocol, "vmbus message shorter than its header", payload.size());
    auto header = wire_from<MessageHeader>(payload);
    auto type = static_cast<MessageType>(header.msgtype);
    std::size_t minimum = minimum_message_bytes(type);
    if (minimum == 0)
        return fail(Errc::GuestProtocol, "vmbus message type not accepted from a guest", header.msgtype);
    if (payload.size() < minimum)
        return fail(Errc::GuestProtocol, "vmbus message too short", header.msgtype);

    switch (type) {
    case MessageType::CHANNELMSG_REQUESTOFFERS:
        return RequestOffers {};
    case MessageType::CHANNELMSG_UNLOAD:
        return Unload {};
    case MessageType::CHANNELMSG_OPENCHANNEL:
        return wire_from<OpenChannel>(payload);
    case MessageType::CHANNELMSG_CLOSECHANNEL:
        return wire_from<CloseChannel>(payload);
    case MessageType::CHANNELMSG_GPADL_HEADER:
        return parse_gpadl_header(payload);
    case MessageType::CHANNELMSG_GPADL_BODY:
        return parse_gpadl_body(payload);
    case MessageType::CHANNELMSG_GPADL_TEARDOWN:
        return wire_from<GpadlTeardown>(payload);
    case MessageType::CHANNELMSG_RELID_RELEASED:
        return wire_from<RelidReleased>(payload);
    case MessageType::CHANNELMSG_INITIATE_CONTACT:
        return wire_from<InitiateContact>(payload);
    case MessageType::CHANNELMSG_TL_CONNECT_REQUEST:
        return wire_from<TlConnectRequest>(payload);
    case MessageType::CHANNELMSG_MODIFYCHANNEL:
        return wire_from<ModifyChannel>(payload);
    default:
        return fail(Errc::GuestProtocol, "vmbus message type not accepted from a guest", header.msgtype);
    }
}

} // namespace vmm::vmbus

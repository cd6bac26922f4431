// SPDX-License-Identifier: MIT
// Parses one guest->host VMBus channel message (the HvPostMessage payload) into a typed value.
// Sizes are checked per type; the result is a copy, so later guest writes cannot change it.
#pragma once

#include <cstddef>
#include <span>
#include <variant>
#include <vector>

#include "base/error.hpp"
#include "base/types.hpp"
#include "devices/vmbus/protocol.hpp"

namespace vmm::vmbus {

struct RequestOffers { };
struct Unload { };

// GPADL_HEADER: the fixed fields and the range data words this message carries (the range data
// is a stream of u64 words: {byte_count | byte_offset << 32}, pfn..., next range...).
struct GpadlHeaderMessage {
    u32 child_relid;
    u32 gpadl;
    u16 range_buflen;
    u16 rangecount;
    std::vector<u64> range_words;
};

// GPADL_BODY: a continuation of the range data of an in-progress GPADL.
struct GpadlBodyMessage {
    u32 msgnumber;
    u32 gpadl;
    std::vector<u64> range_words;
};

using Message = std::variant<InitiateContact, RequestOffers, OpenChannel, CloseChannel, GpadlHeaderMessage,
    GpadlBodyMessage, GpadlTeardown, RelidReleased, Unload, TlConnectRequest, ModifyChannel>;

// Minimum payload size of a guest->host message type; 0 for types a guest may not send.
std::size_t minimum_message_bytes(MessageType type);

// Errc::GuestProtocol for unknown or host->guest types, short messages, payloads over 240 bytes
// and GPADL messages whose range data is not a whole number of u64 words.
Result<Message> parse_message(std::span<std::byte const> payload);

} // namespace vmm::vmbus

// SPDX-License-Identifier: MIT
// The VMBus host's only way out to the guest's SynIC: post a message into a VP's SINT message
// slot, or set an event flag and raise the SINT. Implemented by vmm/hyperv (Partition), faked in
// tests. Shared interface agreed in RULES.md ("Shared interfaces"); change only by agreement.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace vmm::vmbus {

class SynicPort {
public:
    virtual ~SynicPort() = default;
    // Post a 256-byte-slot message (type + payload <= 240 bytes) to SINT `sint` of VP `vp`.
    // Returns false if the slot is busy (the caller queues and retries on on_slot_freed()).
    virtual bool post_message(std::uint32_t vp, std::uint8_t sint, std::uint32_t message_type,
                              std::span<std::byte const> payload) = 0;
    // Set event flag `flag` in the SIEFP page of VP `vp` for `sint`, and raise the interrupt.
    virtual void signal_event(std::uint32_t vp, std::uint8_t sint, std::uint32_t flag) = 0;
};

} // namespace vmm::vmbus

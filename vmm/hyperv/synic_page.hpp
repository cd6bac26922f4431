// SPDX-License-Identifier: MIT
// Host-side writes into the SynIC pages a running guest shares with us: one message slot of the
// message page (SIMP) and one flag bit of the event-flags page (SIEFP). Lock-free protocol with
// the guest through std::atomic_ref on the shared words (guest-interface §4.2-§4.4).
#pragma once

#include <cstddef>
#include <span>

#include "base/types.hpp"
#include "mem/guest_memory.hpp"

namespace vmm::hyperv {

enum class SlotWrite {
    Written, // The message is in the slot; the caller raises the SINT.
    Busy,    // The guest still owns the slot; msg_pending is now set, so it will write EOM.
    Fault,   // The slot is not RAM (cannot happen for a validated SIMP; counted and dropped).
};

// Writes `payload` (<= 240 bytes, checked by the caller) as message `message_type` into the
// 256-byte slot at `slot`, publishing message_type last with release order.
SlotWrite write_message_slot(mem::GuestMemory const&, mem::Gpa slot, u32 message_type,
    std::span<std::byte const> payload);

// True if the slot at `slot` holds a message the guest has not consumed (message_type != 0).
bool message_slot_occupied(mem::GuestMemory const&, mem::Gpa slot);

enum class FlagSet { NewlySet, AlreadySet, Fault };

// Atomically sets bit `flag` (< HV_EVENT_FLAGS_COUNT, checked by the caller) of the 256-byte
// event-flags area at `area`.
FlagSet set_event_flag(mem::GuestMemory const&, mem::Gpa area, u32 flag);

} // namespace vmm::hyperv

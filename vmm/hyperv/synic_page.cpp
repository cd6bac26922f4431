// SPDX-License-Identifier: MIT
// SynIC message-slot and event-flag writes (guest-interface §4.2-§4.4; Linux side: drivers/hv/
// vmbus_drv.c:1025-1161 and include/asm-generic/mshyperv.h:119-151).
#include "vmm/hyperv/synic_page.hpp"

#include <atomic>
#include <bit>
#include <cstring>

#include "vmm/hyperv/hvdef.hpp"

namespace vmm::hyperv {
namespace {

// SAFETY: guest RAM is mmap'd page-aligned and slots/areas are 256-byte aligned inside a page,
// so every word we reference is naturally aligned; the assert guards that host invariant.
template<typename T>
std::atomic_ref<T> shared_word(std::span<std::byte> bytes, std::size_t offset)
{
    std::byte* address = bytes.data() + offset;
    VMM_ASSERT(reinterpret_cast<std::uintptr_t>(address) % std::atomic_ref<T>::required_alignment == 0);
    return std::atomic_ref<T> { *reinterpret_cast<T*>(address) };
}

} // namespace

SlotWrite write_message_slot(mem::GuestMemory const& memory, mem::Gpa slot, u32 message_type,
    std::span<std::byte const> payload)
{
    VMM_ASSERT(payload.size() <= HV_MESSAGE_PAYLOAD_BYTE_COUNT && message_type != HVMSG_NONE);
    auto bytes = memory.contiguous(slot, HV_MESSAGE_SIZE);
    if (!bytes)
        return SlotWrite::Fault;
    auto type = shared_word<u32>(*bytes, HV_MESSAGE_TYPE_OFFSET);
    if (type.load(std::memory_order_acquire) != HVMSG_NONE) {
        // The guest clears message_type, then (full barrier) reads msg_pending and writes EOM if
        // set. We set msg_pending, then (full barrier: a locked OR) re-read message_type. One of
        // the two always sees the other's store, so no wake-up is lost (guest-interface §4.4 step 3).
        shared_word<u8>(*bytes, HV_MESSAGE_FLAGS_OFFSET).fetch_or(HV_MESSAGE_FLAG_PENDING, std::memory_order_seq_cst);
        if (type.load(std::memory_order_seq_cst) != HVMSG_NONE)
            return SlotWrite::Busy;
    }
    // The slot is empty, so the guest does not read it until message_type becomes non-zero,
    // except msg_pending, which it may still be reading after clearing the previous message:
    // that byte is stored atomically. The caller's queue decides about further messages, so
    // msg_pending starts clear.
    HvMessage message {};
    message.header.payload_size = static_cast<u8>(payload.size());
    if (!payload.empty())
        std::memcpy(message.payload, payload.data(), payload.size());
    auto const* source = reinterpret_cast<std::byte const*>(&message);
    bytes->data()[offsetof(HvMessageHeader, payload_size)] = source[offsetof(HvMessageHeader, payload_size)];
    shared_word<u8>(*bytes, HV_MESSAGE_FLAGS_OFFSET).store(0, std::memory_order_relaxed);
    std::size_t const rest = offsetof(HvMessageHeader, reserved);
    std::memcpy(bytes->data() + rest, source + rest, sizeof(message) - rest);
    type.store(message_type, std::memory_order_release);
    return SlotWrite::Written;
}

bool message_slot_occupied(mem::GuestMemory const& memory, mem::Gpa slot)
{
    auto bytes = memory.contiguous(slot, HV_MESSAGE_SIZE);
    return bytes && shared_word<u32>(*bytes, HV_MESSAGE_TYPE_OFFSET).load(std::memory_order_acquire) != HVMSG_NONE;
}

FlagSet set_event_flag(mem::GuestMemory const& memory, mem::Gpa area, u32 flag)
{
    VMM_ASSERT(flag < HV_EVENT_FLAGS_COUNT);
    auto bytes = memory.contiguous(area, HV_EVENT_FLAGS_BYTE_COUNT);
    if (!bytes)
        return FlagSet::Fault;
    // Linux tests-and-clears these bits as unsigned long words with locked instructions
    // (vmbus_drv.c:1203-1284), so the host sets them with an atomic OR on the same words.
    u64 const bit = u64 { 1 } << (flag % 64);
    u64 const old = shared_word<u64>(*bytes, (flag / 64) * sizeof(u64)).fetch_or(bit, std::memory_order_seq_cst);
    return (old & bit) != 0 ? FlagSet::AlreadySet : FlagSet::NewlySet;
}

} // namespace vmm::hyperv

// SPDX-License-Identifier: MIT
// VMBus ring buffers over GPADL pages (not host-contiguous): RingPages does wrapped, page-split
// copies and atomic control-word access through GuestMemory; RingReader consumes the guest->host
// ring, RingWriter produces into the host->guest ring.
//
// Spec: guest-interface §7 and Appendix A; Linux drivers/hv/ring_buffer.c (the guest's side of both).
// Every index read from the shared header is validated (< data size, 8-aligned) before use; a
// bad value is a GuestProtocol error and the channel owner closes the ring.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "base/types.hpp"
#include "devices/vmbus/protocol.hpp"
#include "mem/gpa.hpp"
#include "mem/guest_memory.hpp"

namespace vmm::vmbus {

// One ring: a header page followed by data pages, each a guest page from the GPADL.
class RingPages {
public:
    // At least one header and one data page; the pages are copied.
    static Result<RingPages> from_pages(std::span<mem::Gpn const> pages);

    u32 data_bytes() const { return m_data_bytes; }
    // Wrapped copies within the data area; offset < data_bytes(), size <= data_bytes().
    Result<void> read(mem::GuestMemory const& memory, u32 offset, std::span<std::byte> out) const;
    Result<void> write(mem::GuestMemory const& memory, u32 offset, std::span<std::byte const> in) const;
    // Header control words, shared with the running guest: one atomic access per call.
    Result<u32> load(mem::GuestMemory const& memory, u64 field_offset) const;
    Result<void> store(mem::GuestMemory const& memory, u64 field_offset, u32 value) const;

private:
    Result<void> copy(mem::GuestMemory const& memory, u32 offset, std::span<std::byte> out,
        std::span<std::byte const> in) const;
    std::vector<mem::Gpn> m_pages; // [0] = header page.
    u32 m_data_bytes { 0 };
};

// One packet read from the guest->host ring. `payload` points into the caller's buffer.
struct ReceivedPacket {
    PacketDescriptor descriptor;
    std::span<std::byte const> payload;
};

// Host as consumer of the guest->host ring (guest-interface §7.5).
class RingReader {
public:
    RingReader(mem::GuestMemory const& memory, RingPages pages);
    // Takes the guest-initialised read_index (validated) as the private read position.
    Result<void> start();
    // Copies the next packet into `buffer` (reused across calls) and advances the private read
    // position; nullopt when the ring is empty. An error means the ring is broken.
    Result<std::optional<ReceivedPacket>> next(std::vector<std::byte>& buffer);
    // Publishes the private read position. True when the guest set pending_send_sz and this
    // commit moved it from "not enough room" to "enough room" (ring_buffer.c:593-675 mirrored).
    Result<bool> commit();
    // The consumer's interrupt_mask (1 while draining, guest-interface §7.5).
    Result<void> set_interrupt_mask(bool masked);
    // True if the guest published data past the private read position.
    Result<bool> has_data();
    u32 data_bytes() const { return m_pages.data_bytes(); }

private:
    Result<u32> load_index(u64 field_offset) const;

    mem::GuestMemory const& m_memory;
    RingPages m_pages;
    u32 m_read { 0 };           // Private read position (next packet).
    u32 m_published_read { 0 }; // Last value stored to read_index.
};

// Host as producer of the host->guest ring (guest-interface §7.6, §7.7).
class RingWriter {
public:
    RingWriter(mem::GuestMemory const& memory, RingPages pages);
    // Takes the guest-initialised write_index (validated) as the private write position; the
    // shared copy is never trusted again.
    Result<void> start();
    // Largest payload write() would accept now (0 if none).
    Result<u64> payload_space_bytes() const;
    // Writes one packet (descriptor, payload padded to 8 bytes, trailer) and publishes it.
    // Returns true when the guest must be signalled (interrupt_mask clear and the ring was empty
    // before, ring_buffer.c:52-70). Errc::Busy when the ring lacks room: pending_send_sz is then
    // set so the guest signals after it frees enough space.
    Result<bool> write(VmPacketType type, u16 flags, u64 transaction_id, std::span<std::byte const> payload)
    {
        return write(type, flags, transaction_id, {}, payload);
    }
    // The same with `header` (a multiple of 8 bytes) between descriptor and payload: offset8
    // then points past it (transfer-page packets, hyperv.h:300-310).
    Result<bool> write(VmPacketType type, u16 flags, u64 transaction_id, std::span<std::byte const> header,
        std::span<std::byte const> payload);
    // After a guest signal: if the host waits for space and the space is there now, clears
    // pending_send_sz and returns true (tell the device).
    Result<bool> space_freed();
    bool waiting_for_space() const { return m_pending_send_bytes != 0; }
    u32 data_bytes() const { return m_pages.data_bytes(); }

private:
    Result<u32> free_bytes() const;

    mem::GuestMemory const& m_memory;
    RingPages m_pages;
    u32 m_write { 0 };              // Private write position.
    u32 m_pending_send_bytes { 0 }; // What we stored in pending_send_sz (0 = not waiting).
};

// Ring bytes one packet with `payload_bytes` of payload takes: descriptor + padded payload +
// trailer.
constexpr u64 packet_ring_bytes(u64 payload_bytes)
{
    return sizeof(PacketDescriptor) + ((payload_bytes + PACKET_ALIGN_BYTES - 1) & ~(PACKET_ALIGN_BYTES - 1))
        + PACKET_TRAILER_BYTES;
}

} // namespace vmm::vmbus

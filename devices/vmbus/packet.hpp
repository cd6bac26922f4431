// SPDX-License-Identifier: MIT
// VMBus ring packets as a device sees them: the guest->host InboundPacket (descriptor fields,
// the type-specific header between descriptor and payload, the payload) with checked parsers
// for its GPA-direct page ranges and transfer-page ranges, and the host->guest OutboundPacket.
//
// Spec: Linux 6.1 include/linux/hyperv.h:459-471 (types), 260-265 (hv_page_buffer),
// 300-330 (vmbus_packet_mpb_array, vmtransfer_page_packet_header), drivers/hv/channel.c
// vmbus_sendpacket_pagebuffer/vmbus_sendpacket_mpb_desc (how a guest builds GPA-direct packets).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "base/types.hpp"
#include "devices/vmbus/protocol.hpp"
#include "mem/gpa.hpp"

namespace vmm::vmbus {

struct InboundPacket {
    VmPacketType type;
    u16 flags;                            // VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED
    u64 transaction_id;
    std::span<std::byte const> header;   // Bytes between the descriptor and offset8*8.
    std::span<std::byte const> payload;  // offset8*8 .. len8*8 (includes the sender's padding).

    bool completion_requested() const { return (flags & VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED) != 0; }
};

// What follows the descriptor of a GPA-direct packet (vmbus_packet_mpb_array minus the
// descriptor): reserved, range count, then the ranges.
struct GpaDirectHeader {
    u32 reserved;
    u32 range_count;
};
static_assert(sizeof(GpaDirectHeader) == 8 && Wire<GpaDirectHeader>);

// One range of a GPA-direct packet (struct vmbus_mpb_array / hv_page_buffer): byte_offset
// into the first page, byte_count, and the guest page numbers it spans.
struct GpaDirectRange {
    u32 byte_count;
    u32 byte_offset;
    std::vector<mem::Gpn> pages;
};

// Parses and validates the ranges of a VM_PKT_DATA_USING_GPA_DIRECT packet's header: offset
// within the first page, non-empty, page count = ceil((offset + count) / 4096), everything
// inside the header. Pages are only numbers here; access goes through GuestMemory (checked).
Result<std::vector<GpaDirectRange>> parse_gpa_direct(InboundPacket const& packet);

// A transfer-page range (vmtransfer_page_range): a slice of a transfer page set (for netvsc:
// of the receive buffer GPADL) the receiver reads.
struct TransferPageRange {
    u32 byte_count;
    u32 byte_offset;
};
static_assert(sizeof(TransferPageRange) == 8 && Wire<TransferPageRange>);

// What follows the descriptor of a VM_PKT_DATA_USING_XFER_PAGES packet (hyperv.h:300-310).
struct TransferPageHeader {
    u16 transfer_page_set_id;
    u8 sender_owns_set;
    u8 reserved;
    u32 range_count;
};
static_assert(sizeof(TransferPageHeader) == 8 && Wire<TransferPageHeader>);

struct TransferPages {
    u16 set_id;
    std::vector<TransferPageRange> ranges;
};
Result<TransferPages> parse_transfer_pages(InboundPacket const& packet);
// The header bytes (TransferPageHeader + ranges) of a host->guest transfer-page packet.
std::vector<std::byte> transfer_page_header(u16 set_id, std::span<TransferPageRange const> ranges);

// A host->guest packet: `header` (a multiple of 8 bytes, usually empty) goes between the
// descriptor and the payload and sets offset8; the payload is padded to 8 bytes.
struct OutboundPacket {
    VmPacketType type;
    u16 flags;
    u64 transaction_id;
    std::span<std::byte const> header;
    std::span<std::byte const> payload;
};

// Bound on ranges per packet: netvsc sends at most MAX_PAGE_BUFFER_COUNT (32) + RNDIS pages
// (hyperv.h:42); anything larger only costs host time.
inline constexpr u32 MAX_PACKET_RANGES = 64;

} // namespace vmm::vmbus

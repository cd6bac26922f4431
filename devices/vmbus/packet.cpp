// SPDX-License-Identifier: MIT
// Parsers for the type-specific headers of VMBus ring packets; see packet.hpp.
#include "devices/vmbus/packet.hpp"

#include <cstring>

namespace vmm::vmbus {

namespace {

constexpr u64 PAGE_BYTES = 4096; // HV_HYP_PAGE_SIZE: VMBus page numbers are 4 KiB frames.

} // namespace

Result<std::vector<GpaDirectRange>> parse_gpa_direct(InboundPacket const& packet)
{
    if (packet.type != VmPacketType::VM_PKT_DATA_USING_GPA_DIRECT)
        return fail(Errc::InvalidArgument, "not a GPA-direct packet", static_cast<u16>(packet.type));
    auto header = packet.header;
    if (header.size() < sizeof(GpaDirectHeader))
        return fail(Errc::GuestProtocol, "GPA-direct header truncated", header.size());
    auto fixed = wire_from<GpaDirectHeader>(header);
    if (fixed.range_count == 0 || fixed.range_count > MAX_PACKET_RANGES)
        return fail(Errc::GuestProtocol, "GPA-direct range count", fixed.range_count);
    std::size_t at = sizeof(GpaDirectHeader);
    std::vector<GpaDirectRange> ranges;
    ranges.reserve(fixed.range_count);
    for (u32 i = 0; i < fixed.range_count; ++i) {
        if (header.size() - at < 8)
            return fail(Errc::GuestProtocol, "GPA-direct range truncated", i);
        GpaDirectRange range {};
        std::memcpy(&range.byte_count, header.data() + at, 4);
        std::memcpy(&range.byte_offset, header.data() + at + 4, 4);
        at += 8;
        // hv_page_buffer/vmbus_mpb_array: offset within the first page (channel.c
        // vmbus_sendpacket_pagebuffer uses offset_in_page()).
        if (range.byte_count == 0 || range.byte_offset >= PAGE_BYTES)
            return fail(Errc::GuestProtocol, "GPA-direct range bounds", range.byte_offset);
        u64 page_count = (u64 { range.byte_offset } + range.byte_count + PAGE_BYTES - 1) / PAGE_BYTES;
        if ((header.size() - at) / 8 < page_count)
            return fail(Errc::GuestProtocol, "GPA-direct page list truncated", page_count);
        range.pages.reserve(page_count);
        for (u64 p = 0; p < page_count; ++p) {
            u64 gpn = 0;
            std::memcpy(&gpn, header.data() + at, 8);
            at += 8;
            if (gpn >= mem::MAX_GPN)
                return fail(Errc::GuestProtocol, "GPA-direct page number", gpn);
            range.pages.push_back(mem::Gpn { gpn });
        }
        ranges.push_back(std::move(range));
    }
    return ranges;
}

Result<TransferPages> parse_transfer_pages(InboundPacket const& packet)
{
    if (packet.type != VmPacketType::VM_PKT_DATA_USING_XFER_PAGES)
        return fail(Errc::InvalidArgument, "not a transfer-page packet", static_cast<u16>(packet.type));
    if (packet.header.size() < sizeof(TransferPageHeader))
        return fail(Errc::GuestProtocol, "transfer-page header truncated", packet.header.size());
    auto fixed = wire_from<TransferPageHeader>(packet.header);
    if (fixed.range_count == 0 || fixed.range_count > MAX_PACKET_RANGES)
        return fail(Errc::GuestProtocol, "transfer-page range count", fixed.range_count);
    auto rest = packet.header.subspan(sizeof(TransferPageHeader));
    if (rest.size() / sizeof(TransferPageRange) < fixed.range_count)
        return fail(Errc::GuestProtocol, "transfer-page ranges truncated", fixed.range_count);
    TransferPages pages { fixed.transfer_page_set_id, {} };
    pages.ranges.resize(fixed.range_count);
    std::memcpy(pages.ranges.data(), rest.data(), fixed.range_count * sizeof(TransferPageRange));
    return pages;
}

std::vector<std::byte> transfer_page_header(u16 set_id, std::span<TransferPageRange const> ranges)
{
    TransferPageHeader fixed { set_id, 0, 0, static_cast<u32>(ranges.size()) };
    std::vector<std::byte> bytes(sizeof(fixed) + ranges.size_bytes());
    std::memcpy(bytes.data(), &fixed, sizeof(fixed));
    if (!ranges.empty())
        std::memcpy(bytes.data() + sizeof(fixed), ranges.data(), ranges.size_bytes());
    return bytes;
}

} // namespace vmm::vmbus

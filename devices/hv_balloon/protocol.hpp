// SPDX-License-Identifier: MIT
// Hyper-V Dynamic Memory (DM) protocol wire definitions: message types, versions, capability
// bits, page ranges and message layouts. Structs, enums, constants and static_asserts only.
//
// Spec: Linux drivers/hv/hv_balloon.c:40-430 (all structs __packed, little-endian, 4 KiB pages);
//       docs/guest-interface.md §8.2-8.3 (byte-verified layouts).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "base/wire.hpp"

namespace vmm::hv_balloon {

// Version word = major << 16 | minor (hv_balloon.c:57-71). Linux 6.1 asks for WIN10 (2.0) first,
// then WIN8 (1.0), then WIN7 (0.3) with is_last_attempt (hv_balloon.c:1442-1466, 1737).
inline constexpr std::uint32_t DYNMEM_PROTOCOL_VERSION_1 = 0x00000003; // 0.3, WIN7
inline constexpr std::uint32_t DYNMEM_PROTOCOL_VERSION_2 = 0x00010000; // 1.0, WIN8: adds INFO_MESSAGE
inline constexpr std::uint32_t DYNMEM_PROTOCOL_VERSION_3 = 0x00020000; // 2.0, WIN10 (current)

// hv_balloon.c:79-101. An open enum: every u16 is representable, switches need `default:`.
enum class DmMessageType : std::uint16_t {
    DM_ERROR = 0,
    DM_VERSION_REQUEST = 1,
    DM_VERSION_RESPONSE = 2,
    DM_CAPABILITIES_REPORT = 3,
    DM_CAPABILITIES_RESPONSE = 4,
    DM_STATUS_REPORT = 5,
    DM_BALLOON_REQUEST = 6,
    DM_BALLOON_RESPONSE = 7,
    DM_UNBALLOON_REQUEST = 8,
    DM_UNBALLOON_RESPONSE = 9,
    DM_MEM_HOT_ADD_REQUEST = 10,
    DM_MEM_HOT_ADD_RESPONSE = 11,
    DM_INFO_MESSAGE = 12,
};

// Linux receives host messages into one 4 KiB buffer (hv_balloon.c:494 recv_buffer,
// vmbus_recvpacket(..., HV_HYP_PAGE_SIZE)); a larger message livelocks its softirq
// (docs/guest-interface.md §10.1), so every host message stays within this.
inline constexpr std::size_t DM_MAX_HOST_MESSAGE_BYTES = 4096;

// dm_mem_page_range (hv_balloon.c:134-148): bits 0-39 start PFN, bits 40-63 page count.
struct DmPageRange {
    std::uint64_t raw; // 0

    static constexpr unsigned START_BITS = 40;
    static constexpr std::uint64_t MAX_START = (std::uint64_t { 1 } << START_BITS) - 1;
    static constexpr std::uint64_t MAX_COUNT = (std::uint64_t { 1 } << 24) - 1;

    static constexpr DmPageRange make(std::uint64_t start, std::uint64_t count)
    {
        return DmPageRange { (start & MAX_START) | (count << START_BITS) };
    }
    constexpr std::uint64_t start() const { return raw & MAX_START; }
    constexpr std::uint64_t count() const { return raw >> START_BITS; }
};
static_assert(sizeof(DmPageRange) == 8 && Wire<DmPageRange>);
static_assert(DmPageRange::make(0x123456, 0x8000).raw == 0x0080000000123456); // guest-interface §8.3

// dm_caps (hv_balloon.c:115-131): bit 0 balloon, bit 1 hot_add, bits 2-5 hot_add_alignment
// (alignment = 2^n MiB). Linux 6.1 sends 0x1F: balloon, hot_add, n = 7 -> 128 MiB
// (hv_balloon.c:1785-1789).
struct DmCaps {
    std::uint64_t raw;
    constexpr bool balloon() const { return raw & 1; }
    constexpr bool hot_add() const { return (raw >> 1) & 1; }
    constexpr unsigned hot_add_alignment_log2_mib() const { return static_cast<unsigned>((raw >> 2) & 0xF); }
    constexpr std::uint64_t hot_add_alignment_bytes() const
    {
        return (std::uint64_t { 1 } << hot_add_alignment_log2_mib()) << 20;
    }
};
static_assert(DmCaps { 0x1F }.hot_add_alignment_bytes() == 128ull << 20);

// dm_header (hv_balloon.c:160-164). size counts the whole message including this header.
struct [[gnu::packed]] DmHeader {
    std::uint16_t type;     // 0: DmMessageType
    std::uint16_t size;     // 2
    std::uint32_t trans_id; // 4: guest-made; the guest never checks the host's
};
static_assert(sizeof(DmHeader) == 8 && Wire<DmHeader>);

struct [[gnu::packed]] DmVersionRequest {
    DmHeader hdr;         // 0
    std::uint32_t version; // 8: minor u16 @8, major u16 @10
    std::uint32_t flags;   // 12: bit 0 is_last_attempt
};
static_assert(sizeof(DmVersionRequest) == 16 && Wire<DmVersionRequest>);

// Also the layout of dm_capabilities_resp_msg (bit 0 is_accepted).
struct [[gnu::packed]] DmVersionResponse {
    DmHeader hdr;        // 0
    std::uint64_t flags; // 8: bit 0 is_accepted
};
static_assert(sizeof(DmVersionResponse) == 16 && Wire<DmVersionResponse>);

struct [[gnu::packed]] DmCapabilities {
    DmHeader hdr;                  // 0
    std::uint64_t caps;            // 8: DmCaps
    std::uint64_t min_page_cnt;    // 16: Linux 0, unused by hosts
    std::uint64_t max_page_number; // 24: Linux ~0, unused by hosts
};
static_assert(sizeof(DmCapabilities) == 32 && Wire<DmCapabilities>);

struct [[gnu::packed]] DmCapabilitiesResponse {
    DmHeader hdr;        // 0
    std::uint64_t flags; // 8: bit 0 is_accepted (Linux knows no other bit)
};
static_assert(sizeof(DmCapabilitiesResponse) == 16 && Wire<DmCapabilitiesResponse>);

// dm_status (hv_balloon.c:247-255). All counts in 4 KiB pages; untrusted hints.
struct [[gnu::packed]] DmStatusReport {
    DmHeader hdr;                   // 0
    std::uint64_t num_avail;        // 8: Linux: MemAvailable
    std::uint64_t num_committed;    // 16: Linux: Committed_AS + ballooned + offline added + floor
    std::uint64_t page_file_size;   // 24
    std::uint64_t zero_free;        // 32
    std::uint32_t page_file_writes; // 40
    std::uint32_t io_diff;          // 44
};
static_assert(sizeof(DmStatusReport) == 48 && Wire<DmStatusReport>);

struct [[gnu::packed]] DmBalloonRequest {
    DmHeader hdr;            // 0
    std::uint32_t num_pages; // 8
    std::uint32_t reservedz; // 12
};
static_assert(sizeof(DmBalloonRequest) == 16 && Wire<DmBalloonRequest>);

// Followed by range_count DmPageRange. Note the C bitfield: range_count is bits 1-31 of the
// word at offset 12, i.e. value >> 1 (hv_balloon.c:290-296).
struct [[gnu::packed]] DmBalloonResponse {
    DmHeader hdr;                 // 0
    std::uint32_t reservedz;      // 8
    std::uint32_t more_and_count; // 12: bit 0 more_pages, bits 1-31 range_count
    constexpr bool more_pages() const { return more_and_count & 1; }
    constexpr std::uint32_t range_count() const { return more_and_count >> 1; }
};
static_assert(sizeof(DmBalloonResponse) == 16 && Wire<DmBalloonResponse>);

// Followed by range_count DmPageRange. Unlike the balloon response, range_count is a plain u32
// (hv_balloon.c:313-318).
struct [[gnu::packed]] DmUnballoonRequest {
    DmHeader hdr;              // 0
    std::uint32_t more_pages;  // 8: bit 0
    std::uint32_t range_count; // 12
};
static_assert(sizeof(DmUnballoonRequest) == 16 && Wire<DmUnballoonRequest>);
inline constexpr std::size_t DM_MAX_UNBALLOON_RANGES
    = (DM_MAX_HOST_MESSAGE_BYTES - sizeof(DmUnballoonRequest)) / sizeof(DmPageRange); // 510
static_assert(DM_MAX_UNBALLOON_RANGES == 510);

struct [[gnu::packed]] DmUnballoonResponse {
    DmHeader hdr; // 0
};
static_assert(sizeof(DmUnballoonResponse) == 8 && Wire<DmUnballoonResponse>);

// The guest tells the range-only form from range+region by hdr.size == 16 exactly
// (hv_balloon.c:1555-1582).
struct [[gnu::packed]] DmHotAddRequest {
    DmHeader hdr;      // 0
    DmPageRange range; // 8: pages the host has backed
};
static_assert(sizeof(DmHotAddRequest) == 16 && Wire<DmHotAddRequest>);

struct [[gnu::packed]] DmHotAddRequestWithRegion {
    DmHeader hdr;       // 0
    DmPageRange range;  // 8
    DmPageRange region; // 16: address window the guest adds blocks for
};
static_assert(sizeof(DmHotAddRequestWithRegion) == 24 && Wire<DmHotAddRequestWithRegion>);

struct [[gnu::packed]] DmHotAddResponse {
    DmHeader hdr;             // 0
    std::uint32_t page_count; // 8: pages newly covered
    std::uint32_t result;     // 12: 1 success or permanent failure (page_count 0), 0 transient
};
static_assert(sizeof(DmHotAddResponse) == 16 && Wire<DmHotAddResponse>);

// dm_info_msg + dm_info_header + u64 (hv_balloon.c:404-430, process_info at 1074-1092).
inline constexpr std::uint32_t INFO_TYPE_MAX_PAGE_CNT = 0;
struct [[gnu::packed]] DmInfoMaxPageCount {
    DmHeader hdr;                 // 0
    std::uint32_t reserved;       // 8
    std::uint32_t info_size;      // 12: 16 (info header + u64)
    std::uint32_t info_type;      // 16: INFO_TYPE_MAX_PAGE_CNT
    std::uint32_t data_size;      // 20: 8
    std::uint64_t max_page_count; // 24
};
static_assert(sizeof(DmInfoMaxPageCount) == 32 && Wire<DmInfoMaxPageCount>);

// VMBus class GUID {525074DC-8985-46E2-8057-A307DC18A502} in wire order (hv_balloon.c:2092-2097,
// docs/guest-interface.md Appendix A).
inline constexpr std::array<std::uint8_t, 16> DM_CLASS_GUID_BYTES { 0xDC, 0x74, 0x50, 0x52, 0x85, 0x89,
    0xE2, 0x46, 0x80, 0x57, 0xA3, 0x07, 0xDC, 0x18, 0xA5, 0x02 };

} // namespace vmm::hv_balloon

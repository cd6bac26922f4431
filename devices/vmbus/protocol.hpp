// SPDX-License-Identifier: MIT
// VMBus wire definitions: channel message types and layouts, protocol versions, ring-buffer
// control page and packet descriptor, and the few Hyper-V facts VMBus needs. Pure data.
//
// Spec: Linux 6.1 include/linux/hyperv.h:113-165 (ring), 470-726 (messages),
//       drivers/hv/hyperv_vmbus.h:108-117 (connection ids, SINT), connection.c:53-62 (versions);
//       guest-interface §6.2-§6.4, §7.2-§7.4 (docs/guest-interface.md).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "base/types.hpp"
#include "base/wire.hpp"

namespace vmm::vmbus {

// ---- Hyper-V facts (TLFS; include/asm-generic/hyperv-tlfs.h) -----------------------------------
inline constexpr u32 MAX_MESSAGE_PAYLOAD_BYTES = 240; // HV_MESSAGE_PAYLOAD_BYTE_COUNT
inline constexpr u32 HVMSG_VMBUS = 1;                 // SynIC message type for VMBus (guest-interface §4.2)
inline constexpr u8 VMBUS_MESSAGE_SINT = 2;           // hyperv_vmbus.h:116
inline constexpr u32 VMBUS_MESSAGE_CONNECTION_ID = 1;   // hyperv_vmbus.h:109 (< 5.0, and INITIATE_CONTACT < 5.0)
inline constexpr u32 VMBUS_EVENT_CONNECTION_ID = 2;     // hyperv_vmbus.h:112 (shared, non-dedicated signals)
inline constexpr u32 VMBUS_MESSAGE_CONNECTION_ID_4 = 4; // hyperv_vmbus.h:110 (>= 5.0)
inline constexpr u32 CONNECTION_ID_MASK = 0x00ff'ffff;  // HvPostMessage/HvSignalEvent: 24-bit id (guest-interface §3.4)

// Hypercall status values the VMBus host returns (TLFS; guest-interface §3.4).
inline constexpr u16 HV_STATUS_SUCCESS = 0;
inline constexpr u16 HV_STATUS_INVALID_PARAMETER = 5;
inline constexpr u16 HV_STATUS_INVALID_CONNECTION_ID = 18;
inline constexpr u16 HV_STATUS_INSUFFICIENT_BUFFERS = 19;

// Status in OPENCHANNEL_RESULT / GPADL_CREATED / MODIFYCHANNEL_RESPONSE: Linux only tests != 0
// (channel.c:545-560, 772-790); Hyper-V uses NTSTATUS, so we send STATUS_UNSUCCESSFUL.
inline constexpr u32 CHANNEL_STATUS_SUCCESS = 0;
inline constexpr u32 CHANNEL_STATUS_UNSUCCESSFUL = 0xC000'0001;

// ---- Versions (include/linux/hyperv.h:269-277; connection.c:53-62) ------------------------------
inline constexpr u32 make_version(u32 major, u32 minor) { return (major << 16) | minor; }
inline constexpr u32 VERSION_WS2008 = make_version(0, 13);
inline constexpr u32 VERSION_WIN7 = make_version(1, 1);
inline constexpr u32 VERSION_WIN8 = make_version(2, 4);
inline constexpr u32 VERSION_WIN8_1 = make_version(3, 0);
inline constexpr u32 VERSION_WIN10 = make_version(4, 0);
inline constexpr u32 VERSION_WIN10_V4_1 = make_version(4, 1);
inline constexpr u32 VERSION_WIN10_V5 = make_version(5, 0);
inline constexpr u32 VERSION_WIN10_V5_1 = make_version(5, 1);
inline constexpr u32 VERSION_WIN10_V5_2 = make_version(5, 2);
inline constexpr u32 VERSION_WIN10_V5_3 = make_version(5, 3);

// Every version Linux 6.1 offers, newest first (connection.c:53-62); this host accepts all of
// them. WIN7 and WS2008 are refused: they signal through the interrupt page instead of per-relid
// SIEFP flags (vmbus_drv.c:1203-1284) and no supported guest needs them.
inline constexpr std::array<u32, 8> SUPPORTED_VERSIONS { VERSION_WIN10_V5_3, VERSION_WIN10_V5_2,
    VERSION_WIN10_V5_1, VERSION_WIN10_V5, VERSION_WIN10_V4_1, VERSION_WIN10, VERSION_WIN8_1, VERSION_WIN8 };

constexpr bool is_supported_version(u32 version)
{
    for (u32 supported : SUPPORTED_VERSIONS)
        if (supported == version)
            return true;
    return false;
}

// ---- Channel message types (include/linux/hyperv.h:483-509) -------------------------------------
enum class MessageType : u32 {
    CHANNELMSG_INVALID = 0,
    CHANNELMSG_OFFERCHANNEL = 1,
    CHANNELMSG_RESCIND_CHANNELOFFER = 2,
    CHANNELMSG_REQUESTOFFERS = 3,
    CHANNELMSG_ALLOFFERS_DELIVERED = 4,
    CHANNELMSG_OPENCHANNEL = 5,
    CHANNELMSG_OPENCHANNEL_RESULT = 6,
    CHANNELMSG_CLOSECHANNEL = 7,
    CHANNELMSG_GPADL_HEADER = 8,
    CHANNELMSG_GPADL_BODY = 9,
    CHANNELMSG_GPADL_CREATED = 10,
    CHANNELMSG_GPADL_TEARDOWN = 11,
    CHANNELMSG_GPADL_TORNDOWN = 12,
    CHANNELMSG_RELID_RELEASED = 13,
    CHANNELMSG_INITIATE_CONTACT = 14,
    CHANNELMSG_VERSION_RESPONSE = 15,
    CHANNELMSG_UNLOAD = 16,
    CHANNELMSG_UNLOAD_RESPONSE = 17,
    CHANNELMSG_18 = 18,
    CHANNELMSG_19 = 19,
    CHANNELMSG_20 = 20,
    CHANNELMSG_TL_CONNECT_REQUEST = 21,
    CHANNELMSG_MODIFYCHANNEL = 22,
    CHANNELMSG_TL_CONNECT_RESULT = 23,
    CHANNELMSG_MODIFYCHANNEL_RESPONSE = 24,
};

// Relids 1..2047: the guest's relid array has MAX_CHANNEL_RELIDS = 2048 entries and relid 0 is
// never dispatched (hyperv_vmbus.h:195-201; guest-interface §6.1).
inline constexpr u32 MIN_RELID = 1;
inline constexpr u32 MAX_RELID = 2047;

// ---- Message layouts (all start with the 8-byte header) -----------------------------------------
using WireGuid = std::array<u8, 16>;

struct MessageHeader {
    u32 msgtype; // 0
    u32 padding; // 4
};
static_assert(sizeof(MessageHeader) == 8 && Wire<MessageHeader>);

struct InitiateContact {
    MessageHeader header;          //  0
    u32 vmbus_version_requested;   //  8
    u32 target_vcpu;               // 12  VP that receives channel-control messages
    u64 interrupt_page_or_sint;    // 16  < 5.0: interrupt page GPA; >= 5.0: low byte = msg_sint
    u64 monitor_page1;             // 24
    u64 monitor_page2;             // 32
};
static_assert(sizeof(InitiateContact) == 40 && Wire<InitiateContact>);
static_assert(offsetof(InitiateContact, interrupt_page_or_sint) == 16);

struct VersionResponse {
    MessageHeader header;   //  0
    u8 version_supported;   //  8
    u8 connection_state;    //  9  ignored by Linux (guest-interface §6.4)
    u16 padding;            // 10
    u32 msg_conn_id;        // 12  used by the guest for >= 5.0 (connection.c:150-155)
};
static_assert(sizeof(VersionResponse) == 16 && Wire<VersionResponse>);

struct OfferChannel {
    MessageHeader header;      //   0
    WireGuid if_type;          //   8
    WireGuid if_instance;      //  24
    u32 reserved[4];           //  40  interface_revision/instance, reserved1/2 (u64 pair in Linux)
    u16 chn_flags;             //  56
    u16 mmio_megabytes;        //  58
    u8 user_def[120];          //  60  MAX_USER_DEFINED_BYTES
    u16 sub_channel_index;     // 180
    u16 reserved3;             // 182
    u32 child_relid;           // 184
    u8 monitorid;              // 188
    u8 monitor_flags;          // 189  bit 0 monitor_allocated (always 0 here, guest-interface §6.10)
    u16 interrupt_flags;       // 190  bit 0 is_dedicated_interrupt
    u32 connection_id;         // 192
};
static_assert(sizeof(OfferChannel) == 196 && Wire<OfferChannel>);
static_assert(offsetof(OfferChannel, chn_flags) == 56 && offsetof(OfferChannel, sub_channel_index) == 180);
static_assert(offsetof(OfferChannel, child_relid) == 184 && offsetof(OfferChannel, connection_id) == 192);

struct RescindChannelOffer {
    MessageHeader header; // 0
    u32 child_relid;      // 8
};
static_assert(sizeof(RescindChannelOffer) == 12 && Wire<RescindChannelOffer>);

struct OpenChannel {
    MessageHeader header;                    //  0
    u32 child_relid;                         //  8
    u32 openid;                              // 12
    u32 ringbuffer_gpadlhandle;              // 16
    u32 target_vp;                           // 20
    u32 downstream_ringbuffer_pageoffset;    // 24  first page of the host->guest ring in the GPADL
    u8 userdata[120];                        // 28
};
static_assert(sizeof(OpenChannel) == 148 && Wire<OpenChannel>);

struct OpenResult {
    MessageHeader header; //  0
    u32 child_relid;      //  8
    u32 openid;           // 12
    u32 status;           // 16
};
static_assert(sizeof(OpenResult) == 20 && Wire<OpenResult>);

struct CloseChannel {
    MessageHeader header; // 0
    u32 child_relid;      // 8
};
static_assert(sizeof(CloseChannel) == 12 && Wire<CloseChannel>);

// GPADL_HEADER fixed part; the range data (struct gpa_range {u32 byte_count; u32 byte_offset;
// u64 pfn_array[]}) follows at offset 20, so its u64 PFNs are misaligned: parse with memcpy.
struct GpadlHeader {
    MessageHeader header; //  0
    u32 child_relid;      //  8
    u32 gpadl;            // 12
    u16 range_buflen;     // 16  bytes of range data (all ranges, all messages)
    u16 rangecount;       // 18
};
static_assert(sizeof(GpadlHeader) == 20 && Wire<GpadlHeader>);

struct GpaRange {
    u32 byte_count;  // 0
    u32 byte_offset; // 4  offset into the first page
};
static_assert(sizeof(GpaRange) == 8 && Wire<GpaRange>);

struct GpadlBody {
    MessageHeader header; //  0
    u32 msgnumber;        //  8  Linux leaves it 0 (channel.c:400-446)
    u32 gpadl;            // 12
};                        // 16  u64 pfn[]
static_assert(sizeof(GpadlBody) == 16 && Wire<GpadlBody>);

struct GpadlCreated {
    MessageHeader header; //  0
    u32 child_relid;      //  8
    u32 gpadl;            // 12
    u32 creation_status;  // 16
};
static_assert(sizeof(GpadlCreated) == 20 && Wire<GpadlCreated>);

struct GpadlTeardown {
    MessageHeader header; //  0
    u32 child_relid;      //  8
    u32 gpadl;            // 12
};
static_assert(sizeof(GpadlTeardown) == 16 && Wire<GpadlTeardown>);

struct GpadlTorndown {
    MessageHeader header; // 0
    u32 gpadl;            // 8
};
static_assert(sizeof(GpadlTorndown) == 12 && Wire<GpadlTorndown>);

struct RelidReleased {
    MessageHeader header; // 0
    u32 child_relid;      // 8
};
static_assert(sizeof(RelidReleased) == 12 && Wire<RelidReleased>);

struct TlConnectRequest {
    MessageHeader header;        //  0
    WireGuid guest_endpoint_id;  //  8
    WireGuid host_service_id;    // 24
};
static_assert(sizeof(TlConnectRequest) == 40 && Wire<TlConnectRequest>);

struct ModifyChannel {
    MessageHeader header; //  0
    u32 child_relid;      //  8
    u32 target_vp;        // 12
};
static_assert(sizeof(ModifyChannel) == 16 && Wire<ModifyChannel>);

struct ModifyChannelResponse {
    MessageHeader header; //  0
    u32 child_relid;      //  8
    u32 status;           // 12
};
static_assert(sizeof(ModifyChannelResponse) == 16 && Wire<ModifyChannelResponse>);

// ---- Ring buffers (include/linux/hyperv.h:113-165; guest-interface §7) ---------------------------------
inline constexpr u64 RING_PAGE_BYTES = 4096; // The header occupies one page; data follows.

// The shared control fields at the start of a ring's header page.
struct RingControl {
    u32 write_index;     //  0  byte offset into the data area; written by the producer
    u32 read_index;      //  4  written by the consumer
    u32 interrupt_mask;  //  8  consumer: 1 = don't signal me
    u32 pending_send_sz; // 12  producer: waiting for this many free bytes (0 = not waiting)
    u32 reserved1[12];   // 16
    u32 feature_bits;    // 64  bit 0 = feat_pending_send_sz
};
static_assert(sizeof(RingControl) == 68 && Wire<RingControl>);
inline constexpr u64 RING_WRITE_INDEX_OFFSET = offsetof(RingControl, write_index);
inline constexpr u64 RING_READ_INDEX_OFFSET = offsetof(RingControl, read_index);
inline constexpr u64 RING_INTERRUPT_MASK_OFFSET = offsetof(RingControl, interrupt_mask);
inline constexpr u64 RING_PENDING_SEND_SZ_OFFSET = offsetof(RingControl, pending_send_sz);
inline constexpr u64 RING_FEATURE_BITS_OFFSET = offsetof(RingControl, feature_bits);
inline constexpr u32 RING_FEATURE_PENDING_SEND_SZ = 1;

struct PacketDescriptor {
    u16 type;     //  0  VmPacketType
    u16 offset8;  //  2  payload offset in 8-byte units
    u16 len8;     //  4  packet length (descriptor + payload + padding) in 8-byte units
    u16 flags;    //  6  bit 0 = completion requested
    u64 trans_id; //  8
};
static_assert(sizeof(PacketDescriptor) == 16 && Wire<PacketDescriptor>);

// Every packet is followed by a u64 (write index at the packet's start << 32) (ring_buffer.c:
// 96-101, 386-392): VMBUS_PKT_TRAILER.
inline constexpr u64 PACKET_TRAILER_BYTES = 8;
inline constexpr u64 PACKET_ALIGN_BYTES = 8;

enum class VmPacketType : u16 { // include/linux/hyperv.h:459-471
    VM_PKT_INVALID = 0x0,
    VM_PKT_SYNCH = 0x1,
    VM_PKT_ADD_XFER_PAGESET = 0x2,
    VM_PKT_RM_XFER_PAGESET = 0x3,
    VM_PKT_ESTABLISH_GPADL = 0x4,
    VM_PKT_TEARDOWN_GPADL = 0x5,
    VM_PKT_DATA_INBAND = 0x6,
    VM_PKT_DATA_USING_XFER_PAGES = 0x7,
    VM_PKT_DATA_USING_GPADL = 0x8,
    VM_PKT_DATA_USING_GPA_DIRECT = 0x9,
    VM_PKT_CANCEL_REQUEST = 0xa,
    VM_PKT_COMP = 0xb,
    VM_PKT_DATA_USING_ADDITIONAL_PKT = 0xc,
    VM_PKT_ADDITIONAL_DATA = 0xd,
};
inline constexpr u16 VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED = 1;

} // namespace vmm::vmbus

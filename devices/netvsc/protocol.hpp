// SPDX-License-Identifier: MIT
// netvsc wire formats: NVSP (the VMBus-level protocol of the synthetic NIC) and the RNDIS
// messages it carries. Spec: Linux 6.1 drivers/net/hyperv/hyperv_net.h (NVSP at 280-846, RNDIS
// at 1100-1800), include/linux/rndis.h (message types, status codes, OIDs), and the
// behaviour of drivers/net/hyperv/netvsc.c and rndis_filter.c (cited where used).
#pragma once

#include <cstdint>

#include "base/types.hpp"
#include "base/wire.hpp"
#include "devices/vmbus/channel_device.hpp"

namespace vmm::netvsc {

// Synthetic network adapter class GUID f8615163-df3e-46c5-913f-f2d2f965ed0e (HV_NIC_GUID,
// include/linux/hyperv.h:1474-1477), in wire order.
inline constexpr vmbus::Guid NIC_CLASS_ID { { 0x63, 0x51, 0x61, 0xf8, 0x3e, 0xdf, 0xc5, 0x46, 0x91, 0x3f, 0xf2, 0xd2,
    0xf9, 0x65, 0xed, 0x0e } };

// ---- NVSP (hyperv_net.h:281-375) ----
inline constexpr u32 NVSP_PROTOCOL_VERSION_1 = 2;
inline constexpr u32 NVSP_PROTOCOL_VERSION_2 = 0x30002;
inline constexpr u32 NVSP_PROTOCOL_VERSION_4 = 0x40000;
inline constexpr u32 NVSP_PROTOCOL_VERSION_5 = 0x50000;
inline constexpr u32 NVSP_PROTOCOL_VERSION_6 = 0x60000;
inline constexpr u32 NVSP_PROTOCOL_VERSION_61 = 0x60001;

enum NvspMessageType : u32 {
    NVSP_MSG_TYPE_INIT = 1,
    NVSP_MSG_TYPE_INIT_COMPLETE = 2,
    NVSP_MSG1_TYPE_SEND_NDIS_VER = 100,
    NVSP_MSG1_TYPE_SEND_RECV_BUF = 101,
    NVSP_MSG1_TYPE_SEND_RECV_BUF_COMPLETE = 102,
    NVSP_MSG1_TYPE_REVOKE_RECV_BUF = 103,
    NVSP_MSG1_TYPE_SEND_SEND_BUF = 104,
    NVSP_MSG1_TYPE_SEND_SEND_BUF_COMPLETE = 105,
    NVSP_MSG1_TYPE_REVOKE_SEND_BUF = 106,
    NVSP_MSG1_TYPE_SEND_RNDIS_PKT = 107,
    NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE = 108,
    NVSP_MSG2_TYPE_SEND_NDIS_CONFIG = 125,
    NVSP_MSG4_TYPE_SEND_VF_ASSOCIATION = 128,
    NVSP_MSG4_TYPE_SWITCH_DATA_PATH = 129,
    NVSP_MSG5_TYPE_SUBCHANNEL = 133,
    NVSP_MSG5_TYPE_SEND_INDIRECTION_TABLE = 134,
};

enum NvspStatus : u32 {
    NVSP_STAT_NONE = 0,
    NVSP_STAT_SUCCESS = 1,
    NVSP_STAT_FAIL = 2,
    NVSP_STAT_PROTOCOL_TOO_NEW = 3,
    NVSP_STAT_PROTOCOL_TOO_OLD = 4,
    NVSP_STAT_INVALID_RNDIS_PKT = 5,
    NVSP_STAT_BUSY = 6,
};

// sizeof(struct nvsp_message): the 4-byte header + the largest union member
// (nvsp_6_pd_api_comp, 36 bytes). Linux sends and expects messages of this size (netvsc.c
// vmbus_sendpacket(..., sizeof(struct nvsp_message), ...)); its completion handler reads up to
// 28 bytes of any completion (netvsc.c:885-927), so the host sends whole messages too.
inline constexpr std::size_t NVSP_MESSAGE_BYTES = 40;

struct NvspInit { // nvsp_message_init
    u32 msg_type;
    u32 min_protocol_ver;
    u32 max_protocol_ver;
};
static_assert(sizeof(NvspInit) == 12 && Wire<NvspInit>);

struct NvspInitComplete { // nvsp_message_init_complete
    u32 msg_type;
    u32 negotiated_protocol_ver;
    u32 max_mdl_chain_len;
    u32 status;
};
static_assert(sizeof(NvspInitComplete) == 16 && Wire<NvspInitComplete>);

struct NvspSendNdisVersion { // nvsp_1_message_send_ndis_version
    u32 msg_type;
    u32 ndis_major_ver;
    u32 ndis_minor_ver;
};
static_assert(sizeof(NvspSendNdisVersion) == 12 && Wire<NvspSendNdisVersion>);

struct NvspSendNdisConfig { // nvsp_2_send_ndis_config
    u32 msg_type;
    u32 mtu; // The guest's MTU + Ethernet header (netvsc.c:624).
    u32 reserved;
    u32 capability_lo;
    u32 capability_hi;
};
static_assert(sizeof(NvspSendNdisConfig) == 20 && Wire<NvspSendNdisConfig>);

// nvsp_1_message_send_receive_buffer / _send_buffer: __packed, a u16 id after the handle.
struct NvspSendBuffer {
    u32 msg_type;
    u32 gpadl_handle;
    u16 id;
    u16 pad;
};
static_assert(sizeof(NvspSendBuffer) == 12 && Wire<NvspSendBuffer>);

struct NvspRevokeBuffer { // nvsp_1_message_revoke_receive_buffer / _send_buffer
    u32 msg_type;
    u16 id;
    u16 pad;
};
static_assert(sizeof(NvspRevokeBuffer) == 8 && Wire<NvspRevokeBuffer>);

struct NvspReceiveBufferSection { // nvsp_1_receive_buffer_section
    u32 offset;
    u32 sub_alloc_size;
    u32 num_sub_allocs;
    u32 end_offset;
};

struct NvspSendReceiveBufferComplete { // nvsp_1_message_send_receive_buffer_complete, 1 section
    u32 msg_type;
    u32 status;
    u32 num_sections;
    NvspReceiveBufferSection section;
};
static_assert(sizeof(NvspSendReceiveBufferComplete) == 28 && Wire<NvspSendReceiveBufferComplete>);

struct NvspSendSendBufferComplete { // nvsp_1_message_send_send_buffer_complete
    u32 msg_type;
    u32 status;
    u32 section_size;
};
static_assert(sizeof(NvspSendSendBufferComplete) == 12 && Wire<NvspSendSendBufferComplete>);

struct NvspSendRndisPacket { // nvsp_1_message_send_rndis_packet
    u32 msg_type;
    u32 channel_type; // 0 = RMC_DATA, 1 = RMC_CONTROL (netvsc.c:1157-1160).
    u32 send_buf_section_index; // NETVSC_INVALID_INDEX when no send-buffer section is used.
    u32 send_buf_section_size;
};
static_assert(sizeof(NvspSendRndisPacket) == 16 && Wire<NvspSendRndisPacket>);

struct NvspSendRndisPacketComplete { // nvsp_1_message_send_rndis_packet_complete
    u32 msg_type;
    u32 status;
};
static_assert(sizeof(NvspSendRndisPacketComplete) == 8 && Wire<NvspSendRndisPacketComplete>);

struct NvspSubchannelComplete { // nvsp_5_subchannel_complete
    u32 msg_type;
    u32 status;
    u32 num_subchannels;
};
static_assert(sizeof(NvspSubchannelComplete) == 12 && Wire<NvspSubchannelComplete>);

inline constexpr u32 NETVSC_INVALID_INDEX = 0xffff'ffff; // hyperv_net.h:860
inline constexpr u32 RMC_DATA = 0;
inline constexpr u32 RMC_CONTROL = 1;

// ---- RNDIS (include/linux/rndis.h, hyperv_net.h:1160-1300) ----
inline constexpr u32 RNDIS_MSG_PACKET = 0x1;
inline constexpr u32 RNDIS_MSG_INIT = 0x2;
inline constexpr u32 RNDIS_MSG_INIT_C = 0x80000002;
inline constexpr u32 RNDIS_MSG_HALT = 0x3;
inline constexpr u32 RNDIS_MSG_QUERY = 0x4;
inline constexpr u32 RNDIS_MSG_QUERY_C = 0x80000004;
inline constexpr u32 RNDIS_MSG_SET = 0x5;
inline constexpr u32 RNDIS_MSG_SET_C = 0x80000005;
inline constexpr u32 RNDIS_MSG_RESET = 0x6;
inline constexpr u32 RNDIS_MSG_RESET_C = 0x80000006;
inline constexpr u32 RNDIS_MSG_INDICATE = 0x7;
inline constexpr u32 RNDIS_MSG_KEEPALIVE = 0x8;
inline constexpr u32 RNDIS_MSG_KEEPALIVE_C = 0x80000008;

inline constexpr u32 RNDIS_STATUS_SUCCESS = 0x00000000;
inline constexpr u32 RNDIS_STATUS_MEDIA_CONNECT = 0x4001000B;
inline constexpr u32 RNDIS_STATUS_MEDIA_DISCONNECT = 0x4001000C;
inline constexpr u32 RNDIS_STATUS_FAILURE = 0xC0000001;
inline constexpr u32 RNDIS_STATUS_NOT_SUPPORTED = 0xC00000BB;
inline constexpr u32 RNDIS_STATUS_INVALID_DATA = 0xC0010015;

inline constexpr u32 RNDIS_MAJOR_VERSION = 1;
inline constexpr u32 RNDIS_MINOR_VERSION = 0;
inline constexpr u32 RNDIS_DF_CONNECTIONLESS = 1;
inline constexpr u32 RNDIS_MEDIUM_802_3 = 0;

// OIDs (rndis.h:208-326, hyperv_net.h:1420-1426 for the offload ones, hyperv_net.h:13-14 RSS).
inline constexpr u32 OID_GEN_SUPPORTED_LIST = 0x00010101;
inline constexpr u32 OID_GEN_HARDWARE_STATUS = 0x00010102;
inline constexpr u32 OID_GEN_MEDIA_SUPPORTED = 0x00010103;
inline constexpr u32 OID_GEN_MEDIA_IN_USE = 0x00010104;
inline constexpr u32 OID_GEN_MAXIMUM_FRAME_SIZE = 0x00010106;
inline constexpr u32 OID_GEN_LINK_SPEED = 0x00010107;
inline constexpr u32 OID_GEN_CURRENT_PACKET_FILTER = 0x0001010E;
inline constexpr u32 OID_GEN_MAXIMUM_TOTAL_SIZE = 0x00010111;
inline constexpr u32 OID_GEN_MEDIA_CONNECT_STATUS = 0x00010114;
inline constexpr u32 OID_GEN_PHYSICAL_MEDIUM = 0x00010202;
inline constexpr u32 OID_GEN_RNDIS_CONFIG_PARAMETER = 0x0001021B;
inline constexpr u32 OID_GEN_XMIT_OK = 0x00020101;
inline constexpr u32 OID_GEN_RCV_OK = 0x00020102;
inline constexpr u32 OID_GEN_XMIT_ERROR = 0x00020103;
inline constexpr u32 OID_GEN_RCV_ERROR = 0x00020104;
inline constexpr u32 OID_GEN_RCV_NO_BUFFER = 0x00020105;
inline constexpr u32 OID_GEN_FRIENDLY_NAME = 0x00020216;
inline constexpr u32 OID_802_3_PERMANENT_ADDRESS = 0x01010101;
inline constexpr u32 OID_802_3_CURRENT_ADDRESS = 0x01010102;
inline constexpr u32 OID_802_3_MULTICAST_LIST = 0x01010103;
inline constexpr u32 OID_802_3_MAXIMUM_LIST_SIZE = 0x01010104;
inline constexpr u32 OID_GEN_RECEIVE_SCALE_CAPABILITIES = 0x00010203;
inline constexpr u32 OID_TCP_OFFLOAD_CURRENT_CONFIG = 0xFC01020B;
inline constexpr u32 OID_TCP_OFFLOAD_PARAMETERS = 0xFC01020C;
inline constexpr u32 OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES = 0xFC01020D;

// Packet filter bits (rndis.h:157-168).
inline constexpr u32 NDIS_PACKET_TYPE_DIRECTED = 0x01;
inline constexpr u32 NDIS_PACKET_TYPE_MULTICAST = 0x02;
inline constexpr u32 NDIS_PACKET_TYPE_ALL_MULTICAST = 0x04;
inline constexpr u32 NDIS_PACKET_TYPE_BROADCAST = 0x08;
inline constexpr u32 NDIS_PACKET_TYPE_PROMISCUOUS = 0x20;

// struct rndis_message's header: type and total length (hyperv_net.h:1770-1779).
struct RndisHeader {
    u32 msg_type;
    u32 msg_len;
};
static_assert(sizeof(RndisHeader) == 8 && Wire<RndisHeader>);
inline constexpr std::size_t RNDIS_HEADER_BYTES = sizeof(RndisHeader);

struct RndisInitializeRequest {
    u32 req_id;
    u32 major_ver;
    u32 minor_ver;
    u32 max_xfer_size;
};
struct RndisInitializeComplete {
    u32 req_id;
    u32 status;
    u32 major_ver;
    u32 minor_ver;
    u32 dev_flags;
    u32 medium;
    u32 max_pkt_per_msg;
    u32 max_xfer_size;
    u32 pkt_alignment_factor;
    u32 af_list_offset;
    u32 af_list_size;
};
static_assert(sizeof(RndisInitializeComplete) == 44 && Wire<RndisInitializeComplete>);

// Query and set requests share their first fields; info_buf_offset counts from req_id
// (rndis_filter.c:649, query->info_buf_offset = sizeof(struct rndis_query_request)).
struct RndisQuerySetRequest {
    u32 req_id;
    u32 oid;
    u32 info_buflen;
    u32 info_buf_offset;
    u32 dev_vc_handle;
};
static_assert(sizeof(RndisQuerySetRequest) == 20 && Wire<RndisQuerySetRequest>);

struct RndisQueryComplete {
    u32 req_id;
    u32 status;
    u32 info_buflen;
    u32 info_buf_offset; // From req_id; Linux requires >= sizeof(*this) (rndis_filter.c:700).
};
static_assert(sizeof(RndisQueryComplete) == 16 && Wire<RndisQueryComplete>);

struct RndisStatusComplete { // rndis_set_complete, rndis_keepalive_complete
    u32 req_id;
    u32 status;
};
struct RndisResetComplete {
    u32 status;
    u32 addressing_reset;
};
struct RndisIndicateStatus {
    u32 status;
    u32 status_buflen;
    u32 status_buf_offset;
};

// struct rndis_packet: offsets count from data_offset's own field (the byte after the header).
struct RndisPacket {
    u32 data_offset;
    u32 data_len;
    u32 oob_data_offset;
    u32 oob_data_len;
    u32 num_oob_data_elements;
    u32 per_pkt_info_offset;
    u32 per_pkt_info_len;
    u32 vc_handle;
    u32 reserved;
};
static_assert(sizeof(RndisPacket) == 36 && Wire<RndisPacket>);

// ndis_object_header + the NDIS 6.0 part of struct ndis_offload (hyperv_net.h:1700-1760):
// NDIS_OFFLOAD_SIZE_6_0 = offsetof(ipsecv2) = 4 + 32 (csum) + 16 (lsov1) + 28 (ipsecv1) +
// 28 (lsov2) + 4 (flags) = 112 bytes. Every capability zero: no offload is advertised.
inline constexpr u8 NDIS_OBJECT_TYPE_OFFLOAD = 0xa7;
inline constexpr u8 NDIS_OFFLOAD_PARAMETERS_REVISION_1 = 1;
inline constexpr u16 NDIS_OFFLOAD_SIZE_6_0 = 112;
// ndis_offload_params values that leave an offload off (hyperv_net.h:1340-1360): 0 "no
// change", 1 "disabled" (TX_RX_DISABLED, LSOV*_DISABLED, RSC_DISABLED).
inline constexpr u8 NDIS_OFFLOAD_PARAMETERS_NO_CHANGE = 0;
inline constexpr u8 NDIS_OFFLOAD_PARAMETERS_DISABLED = 1;

} // namespace vmm::netvsc

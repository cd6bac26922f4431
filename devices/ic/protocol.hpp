// SPDX-License-Identifier: MIT
// Integration-component (IC) wire definitions: the pipe and ICMSG headers every IC packet
// starts with, version negotiation, and the shutdown, heartbeat and time-sync bodies. Pure data.
//
// Spec: Linux 6.1 include/linux/hyperv.h:1541-1640 (ICMSG*, icmsg_hdr, icmsg_negotiate,
// shutdown_msg_data, heartbeat_msg_data, ictimesync_*), include/uapi/linux/hyperv.h:34-40
// (framework versions), 319-320 (HV_S_OK, HV_E_FAIL); drivers/hv/hv_util.c (the guest side);
// drivers/hv/channel_mgmt.c vmbus_prep_negotiate_resp() (how a guest answers a negotiation).
#pragma once

#include <array>
#include <cstdint>

#include "base/types.hpp"
#include "base/wire.hpp"
#include "devices/vmbus/channel_device.hpp"

namespace vmm::ic {

// struct vmbuspipe_hdr: Linux ignores it; Hyper-V hosts send flags 0 and the message size.
struct PipeHeader {
    u32 flags;
    u32 msgsize; // Bytes after this header.
};
static_assert(sizeof(PipeHeader) == 8 && Wire<PipeHeader>);

struct IcVersion {
    u16 major;
    u16 minor;
    auto operator<=>(IcVersion const&) const = default;
};
static_assert(sizeof(IcVersion) == 4 && Wire<IcVersion>);

// struct icmsg_hdr (__packed; laid out here without padding: every field is naturally aligned
// except status, so it is split).
struct IcMessageHeader {
    IcVersion framework;   //  0 icverframe
    u16 type;              //  4 icmsgtype
    u16 message_major;     //  6 icvermsg.major
    u16 message_minor;     //  8 icvermsg.minor
    u16 size;              // 10 icmsgsize: body bytes after this header
    u16 status_lo;         // 12 status (u32, unaligned in the packed struct)
    u16 status_hi;         // 14
    u8 transaction;        // 16 ictransaction_id
    u8 flags;              // 17 icflags
    u8 reserved[2];        // 18
    u32 status() const { return u32 { status_lo } | (u32 { status_hi } << 16); }
    void set_status(u32 value)
    {
        status_lo = static_cast<u16>(value);
        status_hi = static_cast<u16>(value >> 16);
    }
};
static_assert(sizeof(IcMessageHeader) == 20 && Wire<IcMessageHeader>);

// ICMSG_HDR: the two headers together.
inline constexpr std::size_t ICMSG_HEADER_BYTES = sizeof(PipeHeader) + sizeof(IcMessageHeader);
static_assert(ICMSG_HEADER_BYTES == 28);

enum class IcMessageType : u16 { // ICMSGTYPE_*
    Negotiate = 0,
    Heartbeat = 1,
    KvpExchange = 2,
    Shutdown = 3,
    TimeSync = 4,
};

inline constexpr u8 ICMSGHDRFLAG_TRANSACTION = 1;
inline constexpr u8 ICMSGHDRFLAG_REQUEST = 2;
inline constexpr u8 ICMSGHDRFLAG_RESPONSE = 4;

inline constexpr u32 HV_S_OK = 0x0000'0000;
inline constexpr u32 HV_E_FAIL = 0x8000'4005;

// struct icmsg_negotiate, followed by icframe_vercnt framework versions then icmsg_vercnt
// service versions.
struct IcNegotiate {
    u16 framework_count;
    u16 message_count;
    u32 reserved;
};
static_assert(sizeof(IcNegotiate) == 8 && Wire<IcNegotiate>);
// IC_VERSION_NEGOTIATION_MAX_VER_COUNT: a guest refuses more.
inline constexpr u16 MAX_NEGOTIATION_VERSIONS = 100;

// Framework versions, newest first (UTIL_FW_VERSION 3.0, UTIL_WS2K8_FW_VERSION 1.0).
inline constexpr std::array<IcVersion, 2> FRAMEWORK_VERSIONS { IcVersion { 3, 0 }, IcVersion { 1, 0 } };

// struct shutdown_msg_data.
struct ShutdownBody {
    u32 reason_code;
    u32 timeout_seconds;
    u32 flags; // 0 shut down, 2 restart, 4 hibernate; | 1 = forced (hv_util.c:236-241)
    std::array<u8, 2048> display_message;
};
static_assert(sizeof(ShutdownBody) == 2060 && Wire<ShutdownBody>);
inline constexpr u32 SHUTDOWN_FLAG_FORCE = 1;
inline constexpr u32 SHUTDOWN_FLAG_RESTART = 2;

// struct heartbeat_msg_data: the guest answers seq_num + 1 (hv_util.c:540-543).
struct HeartbeatBody {
    u64 seq_num;
    u32 reserved[8];
};
static_assert(sizeof(HeartbeatBody) == 40 && Wire<HeartbeatBody>);

// struct ictimesync_data (services < 4.0) and ictimesync_ref_data (4.0), both __packed:
// encoded byte by byte in timesync_ic.cpp.
inline constexpr std::size_t TIMESYNC_BODY_BYTES = 25;     // 3 x u64 + u8 flags
inline constexpr std::size_t TIMESYNC_REF_BODY_BYTES = 22; // 2 x u64 + flags, leap, stratum, 3 reserved
inline constexpr u8 ICTIMESYNCFLAG_PROBE = 0;
inline constexpr u8 ICTIMESYNCFLAG_SYNC = 1;
inline constexpr u8 ICTIMESYNCFLAG_SAMPLE = 2;
// Hyper-V time is 100 ns units since 1601-01-01; WLTIMEDELTA is the 1601..1970 offset.
inline constexpr u64 WLTIMEDELTA = 116'444'736'000'000'000ull;

// Class GUIDs in wire order (include/linux/hyperv.h:1410-1437, GUID_INIT little-endian fields).
inline constexpr vmbus::Guid SHUTDOWN_GUID { { 0x31, 0x60, 0x0b, 0x0e, 0x13, 0x52, 0x34, 0x49, 0x81, 0x8b, 0x38,
    0xd9, 0x0c, 0xed, 0x39, 0xdb } };
inline constexpr vmbus::Guid TIMESYNC_GUID { { 0x30, 0xe6, 0x27, 0x95, 0xae, 0xd0, 0x7b, 0x49, 0xad, 0xce, 0xe8,
    0x0a, 0xb0, 0x17, 0x5c, 0xaf } };
inline constexpr vmbus::Guid HEARTBEAT_GUID { { 0x39, 0x4f, 0x16, 0x57, 0x15, 0x91, 0x78, 0x4e, 0xab, 0x55, 0x38,
    0x2f, 0x3b, 0xd5, 0x42, 0x2d } };

} // namespace vmm::ic

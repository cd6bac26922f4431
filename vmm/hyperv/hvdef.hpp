// SPDX-License-Identifier: MIT
// Hyper-V TLFS definitions the partition emulates: CPUID leaves and bits, synthetic MSRs,
// hypercall codes, control word and status values, SynIC message slot and event-flag layouts.
// Pure data (long like OpenVMM's hvdef). Names follow Linux include/asm-generic/hyperv-tlfs.h
// and arch/x86/include/asm/hyperv-tlfs.h (6.1) so grep finds the spec.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/types.hpp"
#include "base/wire.hpp"

namespace vmm::hyperv {

// --- CPUID leaves (arch/x86/include/asm/hyperv-tlfs.h:18-37) -------------------------------------
inline constexpr u32 HYPERV_CPUID_VENDOR_AND_MAX_FUNCTIONS = 0x4000'0000;
inline constexpr u32 HYPERV_CPUID_INTERFACE = 0x4000'0001;
inline constexpr u32 HYPERV_CPUID_VERSION = 0x4000'0002;
inline constexpr u32 HYPERV_CPUID_FEATURES = 0x4000'0003;
inline constexpr u32 HYPERV_CPUID_ENLIGHTMENT_INFO = 0x4000'0004;
inline constexpr u32 HYPERV_CPUID_IMPLEMENT_LIMITS = 0x4000'0005;
inline constexpr u32 HYPERV_CPUID_NESTED_FEATURES = 0x4000'000A;
// Highest leaf we report. Linux reads leaf 0xA only when max >= 0xA (mshyperv.c:408-413); we
// define every leaf up to it explicitly (zeros where unused), guest-interface §1.2.
inline constexpr u32 HYPERV_CPUID_MAX_LEAF = HYPERV_CPUID_NESTED_FEATURES;

// "Microsoft Hv" in EBX:ECX:EDX (mshyperv.c:221-226).
inline constexpr u32 HYPERV_SIGNATURE_EBX = 0x7263'694D; // "Micr"
inline constexpr u32 HYPERV_SIGNATURE_ECX = 0x666F'736F; // "osof"
inline constexpr u32 HYPERV_SIGNATURE_EDX = 0x7648'2074; // "t Hv"
inline constexpr u32 HYPERV_INTERFACE_HV1 = 0x3123'7648; // "Hv#1" (TLFS 2.4.2)

// 0x40000003 EAX: partition privileges low (include/asm-generic/hyperv-tlfs.h:49-76).
inline constexpr u32 HV_MSR_VP_RUNTIME_AVAILABLE = 1u << 0;
// Only together with the TSC page: alone, Linux's sched_clock reads the MSR and exits on every
// call (drivers/clocksource/hyperv_timer.c:559-579).
inline constexpr u32 HV_MSR_TIME_REF_COUNT_AVAILABLE = 1u << 1;
inline constexpr u32 HV_MSR_SYNIC_AVAILABLE = 1u << 2;
inline constexpr u32 HV_MSR_SYNTIMER_AVAILABLE = 1u << 3;
inline constexpr u32 HV_MSR_APIC_ACCESS_AVAILABLE = 1u << 4;
inline constexpr u32 HV_MSR_HYPERCALL_AVAILABLE = 1u << 5;
inline constexpr u32 HV_MSR_VP_INDEX_AVAILABLE = 1u << 6;
inline constexpr u32 HV_MSR_RESET_AVAILABLE = 1u << 7;
inline constexpr u32 HV_MSR_REFERENCE_TSC_AVAILABLE = 1u << 9;
inline constexpr u32 HV_MSR_GUEST_IDLE_AVAILABLE = 1u << 10;
inline constexpr u32 HV_ACCESS_FREQUENCY_MSRS = 1u << 11;
inline constexpr u32 HV_ACCESS_REENLIGHTENMENT = 1u << 13;
inline constexpr u32 HV_ACCESS_TSC_INVARIANT = 1u << 15;

// 0x40000003 EBX: partition privileges high (include/asm-generic/hyperv-tlfs.h:81-93).
inline constexpr u32 HV_ACCESS_PARTITION_ID = 1u << 1; // Never: guest BUG()s (§1.3).
inline constexpr u32 HV_POST_MESSAGES = 1u << 4;
inline constexpr u32 HV_SIGNAL_EVENTS = 1u << 5;
inline constexpr u32 HV_CPU_MANAGEMENT = 1u << 12;             // Never: root partition paths.
inline constexpr u32 HV_ENABLE_EXTENDED_HYPERCALLS = 1u << 20; // Only with 0x8001 implemented.
inline constexpr u32 HV_ISOLATION = 1u << 22;                  // Never: SNP/VBS paths.

// 0x40000003 EDX: misc features (arch/x86/include/asm/hyperv-tlfs.h:44-70).
inline constexpr u32 HV_X64_HYPERCALL_XMM_INPUT_AVAILABLE = 1u << 4;
inline constexpr u32 HV_X64_GUEST_IDLE_STATE_AVAILABLE = 1u << 5;
inline constexpr u32 HV_FEATURE_FREQUENCY_MSRS_AVAILABLE = 1u << 8;
inline constexpr u32 HV_FEATURE_GUEST_CRASH_MSR_AVAILABLE = 1u << 10;
inline constexpr u32 HV_STIMER_DIRECT_MODE_AVAILABLE = 1u << 19; // hyperv-tlfs.h:70

// 0x40000004 EAX: implementation hints (arch/x86/include/asm/hyperv-tlfs.h:81-118).
inline constexpr u32 HV_X64_APIC_ACCESS_RECOMMENDED = 1u << 3;
inline constexpr u32 HV_DEPRECATING_AEOI_RECOMMENDED = 1u << 9;
inline constexpr u32 HV_X64_CLUSTER_IPI_RECOMMENDED = 1u << 10;
inline constexpr u32 HV_X64_EX_PROCESSOR_MASKS_RECOMMENDED = 1u << 11;
// 0x40000004 EBX: spin-wait retry count; all ones = "never notify" (TLFS 2.4.5).
inline constexpr u32 HV_SPIN_WAIT_NEVER = 0xFFFF'FFFF;

// --- Synthetic MSRs (arch/x86/include/asm/hyperv-tlfs.h:170-254) --------------------------------
inline constexpr u32 HV_X64_MSR_GUEST_OS_ID = 0x4000'0000;
inline constexpr u32 HV_X64_MSR_HYPERCALL = 0x4000'0001;
inline constexpr u32 HV_X64_MSR_VP_INDEX = 0x4000'0002;
inline constexpr u32 HV_X64_MSR_RESET = 0x4000'0003;
inline constexpr u32 HV_X64_MSR_VP_RUNTIME = 0x4000'0010;
inline constexpr u32 HV_X64_MSR_TIME_REF_COUNT = 0x4000'0020;
inline constexpr u32 HV_X64_MSR_REFERENCE_TSC = 0x4000'0021;
inline constexpr u32 HV_X64_MSR_TSC_FREQUENCY = 0x4000'0022;
inline constexpr u32 HV_X64_MSR_APIC_FREQUENCY = 0x4000'0023;
inline constexpr u32 HV_X64_MSR_EOI = 0x4000'0070;
inline constexpr u32 HV_X64_MSR_ICR = 0x4000'0071;
inline constexpr u32 HV_X64_MSR_TPR = 0x4000'0072;
inline constexpr u32 HV_X64_MSR_VP_ASSIST_PAGE = 0x4000'0073;
inline constexpr u32 HV_X64_MSR_SCONTROL = 0x4000'0080;
inline constexpr u32 HV_X64_MSR_SVERSION = 0x4000'0081;
inline constexpr u32 HV_X64_MSR_SIEFP = 0x4000'0082;
inline constexpr u32 HV_X64_MSR_SIMP = 0x4000'0083;
inline constexpr u32 HV_X64_MSR_EOM = 0x4000'0084;
inline constexpr u32 HV_X64_MSR_SINT0 = 0x4000'0090;
inline constexpr u32 HV_X64_MSR_SINT15 = 0x4000'009F;
// STIMERn_CONFIG = 0x400000B0 + 2n, STIMERn_COUNT = 0x400000B1 + 2n (hyperv-tlfs.h:228-235).
inline constexpr u32 HV_X64_MSR_STIMER0_CONFIG = 0x4000'00B0;
inline constexpr u32 HV_X64_MSR_STIMER3_COUNT = 0x4000'00B7;
inline constexpr u32 HV_X64_MSR_GUEST_IDLE = 0x4000'00F0; // hyperv-tlfs.h:238
inline constexpr u32 HV_X64_MSR_CRASH_P0 = 0x4000'0100;
inline constexpr u32 HV_X64_MSR_CRASH_P3 = 0x4000'0103;
inline constexpr u32 HV_X64_MSR_CRASH_P4 = 0x4000'0104;
inline constexpr u32 HV_X64_MSR_CRASH_CTL = 0x4000'0105;
inline constexpr u32 HV_X64_MSR_TSC_INVARIANT_CONTROL = 0x4000'0118;
// Every synthetic MSR lives in [0x40000000, 0x400001FF] (TLFS 3.0); anything there we do not
// implement is a #GP with a rate-limited log.
inline constexpr u32 HV_X64_MSR_RANGE_FIRST = 0x4000'0000;
inline constexpr u32 HV_X64_MSR_RANGE_LAST = 0x4000'01FF;

// HYPERCALL MSR (arch/x86/include/asm/hyperv-tlfs.h:302-309, 338-341): bit 0 enable, bits 1-11 reserved
// (preserved on read-back), bits 12-63 guest PFN of the hypercall page.
inline constexpr u64 HV_X64_MSR_HYPERCALL_ENABLE = 1u << 0;
inline constexpr u64 HV_X64_MSR_HYPERCALL_PAGE_ADDRESS_MASK = ~u64 { 0xFFF };
// REFERENCE_TSC (include/asm-generic/hyperv-tlfs.h:105-112, union hv_reference_tsc_msr): bit 0
// enable, bits 1-11 reserved-preserve (Linux writes back what it read, hyperv_timer.c:540-548),
// PFN in 12-63.
inline constexpr u64 HV_X64_MSR_TSC_REFERENCE_ENABLE = 1u << 0;
// RESET (TLFS 2.4.4 "HV_X64_MSR_RESET"): writing bit 0 resets the partition; other bits reserved.
inline constexpr u64 HV_X64_MSR_RESET_BIT = 1u << 0;
// VP_ASSIST_PAGE (hyperv-tlfs.h:349): bit 0 enable, bits 1-11 reserved, PFN in 12-63.
inline constexpr u64 HV_X64_MSR_VP_ASSIST_PAGE_ENABLE = 1u << 0;
inline constexpr u64 HV_PAGE_RESERVED_MASK = 0xFFE; // Bits 1-11 of the page-address MSRs.
inline constexpr u64 HV_PAGE_ADDRESS_MASK = ~u64 { 0xFFF };
// TSC_INVARIANT_CONTROL: bit 0 "expose invariant TSC" (mshyperv.c:442-454); the rest reserved.
inline constexpr u64 HV_EXPOSE_INVARIANT_TSC = 1u << 0;

// SynIC control registers (include/asm-generic/hyperv-tlfs.h:230-240, 359-395).
inline constexpr u64 HV_SYNIC_CONTROL_ENABLE = 1u << 0;
inline constexpr u64 HV_SYNIC_SIMP_ENABLE = 1u << 0;
inline constexpr u64 HV_SYNIC_SIEFP_ENABLE = 1u << 0;
inline constexpr u64 HV_SYNIC_VERSION_1 = 0x1;
inline constexpr u32 HV_SYNIC_SINT_COUNT = 16;
inline constexpr u64 HV_SYNIC_SINT_VECTOR_MASK = 0xFF;
inline constexpr u64 HV_SYNIC_SINT_MASKED = 1u << 16;
inline constexpr u64 HV_SYNIC_SINT_AUTO_EOI = 1u << 17;
inline constexpr u64 HV_SYNIC_SINT_POLLING = 1u << 18;
inline constexpr u64 HV_SYNIC_SINT_RESERVED_MASK = ~u64 { 0x7'00FF }; // Bits 8-15, 19-63.
inline constexpr u64 HV_SYNIC_SINT_RESET_VALUE = HV_SYNIC_SINT_MASKED;
// Vectors 0-15 are exceptions; TLFS (and KVM synic_set_sint, arch/x86/kvm/hyperv.c:143-148)
// refuse them for an unmasked SINT.
inline constexpr u8 HV_SYNIC_FIRST_VALID_VECTOR = 16;

// CRASH_CTL (include/asm-generic/hyperv-tlfs.h:143-144).
inline constexpr u64 HV_CRASH_CTL_CRASH_NOTIFY_MSG = u64 { 1 } << 62;
inline constexpr u64 HV_CRASH_CTL_CRASH_NOTIFY = u64 { 1 } << 63;

// --- Hypercalls (include/asm-generic/hyperv-tlfs.h:147-219) ------------------------------------
inline constexpr u16 HVCALL_NOTIFY_LONG_SPIN_WAIT = 0x0008;
inline constexpr u16 HVCALL_SEND_IPI = 0x000B;
inline constexpr u16 HVCALL_SEND_IPI_EX = 0x0015;
inline constexpr u16 HVCALL_GET_PARTITION_ID = 0x0046;
inline constexpr u16 HVCALL_POST_MESSAGE = 0x005C;
inline constexpr u16 HVCALL_SIGNAL_EVENT = 0x005D;
inline constexpr u16 HV_EXT_CALL_QUERY_CAPABILITIES = 0x8001; // First extended code (hyperv-tlfs.h:173).
inline constexpr u16 HV_EXT_CALL_MEMORY_HEAT_HINT = 0x8003;   // hyperv-tlfs.h:174
// HvExtCallQueryCapabilities bit for HvExtCallMemoryHeatHint (hyperv-tlfs.h:182).
inline constexpr u64 HV_EXT_CAPABILITY_MEMORY_COLD_DISCARD_HINT = u64 { 1 } << 8;

// Control word (hyperv-tlfs.h:192-206).
inline constexpr u64 HV_HYPERCALL_CODE_MASK = 0xFFFF;
inline constexpr u64 HV_HYPERCALL_FAST_BIT = u64 { 1 } << 16;
inline constexpr unsigned HV_HYPERCALL_VARHEAD_OFFSET = 17;
inline constexpr u64 HV_HYPERCALL_VARHEAD_MASK = u64 { 0x3FF } << HV_HYPERCALL_VARHEAD_OFFSET;
inline constexpr unsigned HV_HYPERCALL_REP_COMP_OFFSET = 32;
inline constexpr u64 HV_HYPERCALL_REP_COMP_MASK = u64 { 0xFFF } << HV_HYPERCALL_REP_COMP_OFFSET;
inline constexpr unsigned HV_HYPERCALL_REP_START_OFFSET = 48;
inline constexpr u64 HV_HYPERCALL_REP_START_MASK = u64 { 0xFFF } << HV_HYPERCALL_REP_START_OFFSET;
inline constexpr u64 HV_HYPERCALL_RSVD_MASK = (u64 { 0x1F } << 27) // Bits 27-31.
    | (u64 { 0xF } << 44)                                          // Bits 44-47.
    | (u64 { 0xF } << 60);                                         // Bits 60-63.

// Status codes (hyperv-tlfs.h:209-219); the result value carries them in bits 0-15.
inline constexpr u16 HV_STATUS_SUCCESS = 0;
inline constexpr u16 HV_STATUS_INVALID_HYPERCALL_CODE = 2;
inline constexpr u16 HV_STATUS_INVALID_HYPERCALL_INPUT = 3;
inline constexpr u16 HV_STATUS_INVALID_ALIGNMENT = 4;
inline constexpr u16 HV_STATUS_INVALID_PARAMETER = 5;
inline constexpr u16 HV_STATUS_ACCESS_DENIED = 6;
inline constexpr u16 HV_STATUS_OPERATION_DENIED = 8;
inline constexpr u16 HV_STATUS_INSUFFICIENT_MEMORY = 11;
inline constexpr u16 HV_STATUS_INVALID_PORT_ID = 17;
inline constexpr u16 HV_STATUS_INVALID_CONNECTION_ID = 18;
inline constexpr u16 HV_STATUS_INSUFFICIENT_BUFFERS = 19;

// Hypercall input/output GPAs are 8-byte aligned and must not cross a page (TLFS 3.7).
inline constexpr u64 HV_HYPERCALL_INPUT_ALIGN = 8;

// --- SynIC message page (include/asm-generic/hyperv-tlfs.h:255-324) ----------------------------
inline constexpr std::size_t HV_MESSAGE_SIZE = 256;
inline constexpr std::size_t HV_MESSAGE_PAYLOAD_BYTE_COUNT = 240;
inline constexpr u32 HVMSG_NONE = 0x0000'0000;
// Message types with bit 31 set belong to the hypervisor (timer, intercepts, hyperv-tlfs.h:
// 239-264); a guest-posted message must use a type in [1, 0x7FFFFFFF] (TLFS HvPostMessage).
inline constexpr u32 HV_MESSAGE_TYPE_HYPERVISOR_MASK = 0x8000'0000;
inline constexpr u8 HV_MESSAGE_FLAG_PENDING = 1u << 0; // hv_message_flags.msg_pending

struct HvMessageHeader {
    u32 message_type;  // 0   HVMSG_NONE = slot empty; written last by the host.
    u8 payload_size;   // 4   <= 240
    u8 message_flags;  // 5   bit 0 msg_pending
    u16 reserved;      // 6
    u64 sender;        // 8   port id / sender (ignored by Linux)
};
static_assert(sizeof(HvMessageHeader) == 16 && Wire<HvMessageHeader>);
inline constexpr std::size_t HV_MESSAGE_TYPE_OFFSET = 0;
inline constexpr std::size_t HV_MESSAGE_FLAGS_OFFSET = 5;
static_assert(offsetof(HvMessageHeader, message_type) == HV_MESSAGE_TYPE_OFFSET
    && offsetof(HvMessageHeader, payload_size) == 4 && offsetof(HvMessageHeader, message_flags) == HV_MESSAGE_FLAGS_OFFSET
    && offsetof(HvMessageHeader, reserved) == 6 && offsetof(HvMessageHeader, sender) == 8);

struct HvMessage {
    HvMessageHeader header;                                  // 0
    std::byte payload[HV_MESSAGE_PAYLOAD_BYTE_COUNT];        // 16
};
static_assert(sizeof(HvMessage) == HV_MESSAGE_SIZE && Wire<HvMessage>);
static_assert(offsetof(HvMessage, payload) == 16);

// --- SynIC event-flags page (include/asm-generic/hyperv-tlfs.h:336, 359-365) ------------------------
// 16 areas of 256 bytes; area n (SINT n) holds 2048 flag bits.
inline constexpr std::size_t HV_EVENT_FLAGS_BYTE_COUNT = 256;
inline constexpr u32 HV_EVENT_FLAGS_COUNT = HV_EVENT_FLAGS_BYTE_COUNT * 8;
static_assert(HV_SYNIC_SINT_COUNT * HV_MESSAGE_SIZE == 4096);
static_assert(HV_SYNIC_SINT_COUNT * HV_EVENT_FLAGS_BYTE_COUNT == 4096);

// --- Reference TSC page (include/asm-generic/hyperv-tlfs.h:98-103; TLFS 12.7) ------------------------
// ReferenceTime = ((guest TSC * tsc_scale) >> 64) + tsc_offset, in 100 ns units; the guest
// retries while tsc_sequence changes and falls back to TIME_REF_COUNT when it is 0
// (include/clocksource/hyperv_timer.h:40-85, hyperv_timer.c:377-385).
struct HvReferenceTscPage {
    u32 tsc_sequence; // 0
    u32 reserved1;    // 4
    u64 tsc_scale;    // 8
    i64 tsc_offset;   // 16
};
static_assert(sizeof(HvReferenceTscPage) == 24 && Wire<HvReferenceTscPage>);
static_assert(offsetof(HvReferenceTscPage, tsc_scale) == 8 && offsetof(HvReferenceTscPage, tsc_offset) == 16);
inline constexpr u32 HV_TSC_SEQUENCE_INVALID = 0; // "use the MSR" (hyperv_timer.h:50-53)
inline constexpr u64 HV_CLOCK_HZ = 10'000'000;    // 100 ns units (include/clocksource/hyperv_timer.h:20)

// --- Synthetic timers (include/asm-generic/hyperv-tlfs.h:241, 264, 327-356; TLFS 12.4) -----------
inline constexpr u32 HV_SYNIC_STIMER_COUNT = 4;
inline constexpr u32 HVMSG_TIMER_EXPIRED = 0x8000'0010;
// union hv_stimer_config
inline constexpr u64 HV_STIMER_ENABLE = 1u << 0;
inline constexpr u64 HV_STIMER_PERIODIC = 1u << 1;
inline constexpr u64 HV_STIMER_LAZY = 1u << 2;
inline constexpr u64 HV_STIMER_AUTO_ENABLE = 1u << 3;
inline constexpr unsigned HV_STIMER_VECTOR_SHIFT = 4; // apic_vector: bits 4-11
inline constexpr u64 HV_STIMER_DIRECT_MODE = 1u << 12;
inline constexpr unsigned HV_STIMER_SINT_SHIFT = 16; // sintx: bits 16-19
inline constexpr u64 HV_STIMER_RESERVED_MASK = (u64 { 0x7 } << 13) | (~u64 { 0 } << 20); // reserved_z0/z1
struct HvTimerMessagePayload {
    u32 timer_index;     // 0
    u32 reserved;        // 4
    u64 expiration_time; // 8   reference time the timer expired
    u64 delivery_time;   // 16  reference time the message was written
};
static_assert(sizeof(HvTimerMessagePayload) == 24 && Wire<HvTimerMessagePayload>);

// --- Hypercall inputs ---------------------------------------------------------------------------
// HvPostMessage input (drivers/hv/hyperv_vmbus.h:99-105).
struct HvPostMessageInput {
    u32 connection_id; // 0   bits 0-23 id, 24-31 reserved
    u32 reserved;      // 4
    u32 message_type;  // 8
    u32 payload_size;  // 12  <= 240
    // 16: payload
};
static_assert(sizeof(HvPostMessageInput) == 16 && Wire<HvPostMessageInput>);
inline constexpr u32 HV_CONNECTION_ID_MASK = 0x00FF'FFFF;

// HvSignalEvent input (TLFS; KVM kvm_hvcall_signal_event, arch/x86/kvm/hyperv.c:2090-2129).
struct HvSignalEventInput {
    u32 connection_id; // 0
    u16 flag_number;   // 4
    u16 reserved;      // 6
};
static_assert(sizeof(HvSignalEventInput) == 8 && Wire<HvSignalEventInput>);

// HvCallSendSyntheticClusterIpi (include/asm-generic/hyperv-tlfs.h:411-416).
struct HvSendIpi {
    u32 vector;   // 0
    u32 reserved; // 4
    u64 cpu_mask; // 8   VPs 0-63
};
static_assert(sizeof(HvSendIpi) == 16 && Wire<HvSendIpi>);

// HvCallSendSyntheticClusterIpiEx fixed header (hyperv-tlfs.h:405-423); the variable header is
// one u64 bank per set bit of valid_bank_mask, bank i covering VPs 64*i .. 64*i+63.
struct HvSendIpiExHeader {
    u32 vector;           // 0
    u32 reserved;         // 4
    u64 format;           // 8   HV_GENERIC_SET_*
    u64 valid_bank_mask;  // 16
    // 24: u64 bank_contents[popcount(valid_bank_mask)]
};
static_assert(sizeof(HvSendIpiExHeader) == 24 && Wire<HvSendIpiExHeader>);
inline constexpr u64 HV_GENERIC_SET_SPARSE_4K = 0;
inline constexpr u64 HV_GENERIC_SET_ALL = 1;
inline constexpr u32 HV_VP_SET_BANK_COUNT = 64;
// IPI vectors Linux and KVM accept (arch/x86/include/asm/hyperv-tlfs.h:346-347).
inline constexpr u32 HV_IPI_LOW_VECTOR = 0x10;
inline constexpr u32 HV_IPI_HIGH_VECTOR = 0xFF;

} // namespace vmm::hyperv

// SPDX-License-Identifier: MIT
// NVMe 1.4 (NVM Express Base Specification revision 1.4, 2019-06-10) wire formats and numbers
// the controller engine uses: BAR0 registers (§3.1), submission/completion entries (§4.2, §4.6),
// opcodes (§5, §6), status codes (§4.6.1.2) and feature/log identifiers (§5.14, §5.21).
// Section numbers below are of that document.
#pragma once

#include <cstddef>

#include "base/types.hpp"
#include "base/wire.hpp"

namespace vmm::nvme {

// BAR0 register offsets (§3.1, Figure 78).
inline constexpr u64 REG_CAP = 0x00;   // 64-bit Controller Capabilities.
inline constexpr u64 REG_VS = 0x08;
inline constexpr u64 REG_INTMS = 0x0C;
inline constexpr u64 REG_INTMC = 0x10;
inline constexpr u64 REG_CC = 0x14;
inline constexpr u64 REG_CSTS = 0x1C;
inline constexpr u64 REG_NSSR = 0x20;
inline constexpr u64 REG_AQA = 0x24;
inline constexpr u64 REG_ASQ = 0x28;   // 64-bit.
inline constexpr u64 REG_ACQ = 0x30;   // 64-bit.
inline constexpr u64 REG_CMBMSC = 0x50; // 64-bit CMB Memory Space Control (1.4).
inline constexpr u64 REG_DOORBELL_BASE = 0x1000;
// With CAP.DSTRD = 0 doorbells are 4 bytes apart: SQ y tail at 0x1000 + 2y*4, CQ y head at
// 0x1000 + (2y+1)*4 (§3.1.24, §3.1.25).
inline constexpr u64 DOORBELL_STRIDE = 4;

inline constexpr u32 VERSION_1_4 = 0x0001'0400; // §3.1.2: MJR 1, MNR 4, TER 0.

// CC fields (§3.1.5).
inline constexpr u32 CC_EN = 1u << 0;
inline constexpr unsigned CC_CSS_SHIFT = 4;
inline constexpr unsigned CC_MPS_SHIFT = 7;
inline constexpr unsigned CC_AMS_SHIFT = 11;
inline constexpr unsigned CC_SHN_SHIFT = 14;
inline constexpr unsigned CC_IOSQES_SHIFT = 16;
inline constexpr unsigned CC_IOCQES_SHIFT = 20;
// CSTS fields (§3.1.6).
inline constexpr u32 CSTS_RDY = 1u << 0;
inline constexpr u32 CSTS_CFS = 1u << 1;
inline constexpr unsigned CSTS_SHST_SHIFT = 2;
inline constexpr u32 SHST_NORMAL = 0, SHST_OCCURRING = 1, SHST_COMPLETE = 2;

inline constexpr u64 SQ_ENTRY_BYTES = 64; // 2^6: the only IOSQES/SQES value (Identify SQES).
inline constexpr u64 CQ_ENTRY_BYTES = 16; // 2^4.
inline constexpr u32 SQES_LOG2 = 6;
inline constexpr u32 CQES_LOG2 = 4;
inline constexpr u64 HOST_PAGE = 4096;    // CAP.MPSMIN = MPSMAX = 0: 2^(12+0).
inline constexpr u32 LBA_BYTES = 512;     // LBADS 9: what every OS and OVMF boots from.
inline constexpr u32 LBA_SHIFT = 9;

// §4.2, Figure 104/105: a submission queue entry.
struct SubmissionEntry {
    u32 cdw0; // OPC 7:0, FUSE 9:8, PSDT 15:14, CID 31:16.
    u32 nsid;
    u32 cdw2;
    u32 cdw3;
    u64 mptr;
    u64 prp1;
    u64 prp2;
    u32 cdw10;
    u32 cdw11;
    u32 cdw12;
    u32 cdw13;
    u32 cdw14;
    u32 cdw15;

    u8 opcode() const { return static_cast<u8>(cdw0 & 0xFF); }
    u8 fuse() const { return static_cast<u8>((cdw0 >> 8) & 0x3); }
    u8 psdt() const { return static_cast<u8>((cdw0 >> 14) & 0x3); }
    u16 cid() const { return static_cast<u16>(cdw0 >> 16); }
};
static_assert(sizeof(SubmissionEntry) == SQ_ENTRY_BYTES && Wire<SubmissionEntry>);

// §4.6, Figure 124: a completion queue entry. The status field holds the phase tag in bit 0.
struct CompletionEntry {
    u32 dw0;
    u32 dw1;
    u16 sq_head;
    u16 sq_id;
    u16 cid;
    u16 status; // P 0, SC 8:1, SCT 11:9, CRD 13:12, M 14, DNR 15 (Figure 126).
};
static_assert(sizeof(CompletionEntry) == CQ_ENTRY_BYTES && Wire<CompletionEntry>);

// Status = (SCT << 8) | SC, as Linux spells them (include/linux/nvme.h NVME_SC_*); the engine
// shifts it left by one and adds DNR when it posts.
enum class Status : u16 {
    Success = 0x000,
    InvalidOpcode = 0x001,
    InvalidField = 0x002,
    DataTransferError = 0x004,
    InternalError = 0x006,
    AbortRequested = 0x007,
    AbortSqDeleted = 0x008,
    InvalidNamespace = 0x00B,
    CommandSequenceError = 0x00C,
    InvalidPrpOffset = 0x013,
    NamespaceWriteProtected = 0x020, // §4.6.1.2.1 Figure 128 (new in 1.4).
    LbaOutOfRange = 0x080,
    CapacityExceeded = 0x081,
    // Command specific (SCT 1, §4.6.1.2.2 Figure 130).
    CompletionQueueInvalid = 0x100,
    InvalidQueueIdentifier = 0x101,
    InvalidQueueSize = 0x102,
    AbortCommandLimitExceeded = 0x103,
    AsyncEventLimitExceeded = 0x105,
    InvalidFirmwareSlot = 0x106,
    InvalidInterruptVector = 0x108,
    InvalidLogPage = 0x109,
    InvalidQueueDeletion = 0x10C,
    FeatureNotSaveable = 0x10D,
    // Media and data integrity errors (SCT 2, Figure 132).
    WriteFault = 0x280,
    UnrecoveredReadError = 0x281,
};
inline constexpr u16 STATUS_DNR = 1u << 15; // Do Not Retry, in the posted (shifted) field.

// Admin opcodes (§5, Figure 139).
enum class AdminOpcode : u8 {
    DeleteIoSq = 0x00,
    CreateIoSq = 0x01,
    GetLogPage = 0x02,
    DeleteIoCq = 0x04,
    CreateIoCq = 0x05,
    Identify = 0x06,
    Abort = 0x08,
    SetFeatures = 0x09,
    GetFeatures = 0x0A,
    AsyncEventRequest = 0x0C,
    DoorbellBufferConfig = 0x7C, // NVMe 1.3 §5.7 (1.4 §5.8): shadow doorbells for emulated controllers.
};
// NVM command set opcodes (§6, Figure 346).
enum class IoOpcode : u8 {
    Flush = 0x00,
    Write = 0x01,
    Read = 0x02,
    WriteZeroes = 0x08,
    DatasetManagement = 0x09,
};

// Identify CNS values (§5.15.1, Figure 244).
inline constexpr u8 CNS_NAMESPACE = 0x00;
inline constexpr u8 CNS_CONTROLLER = 0x01;
inline constexpr u8 CNS_ACTIVE_NAMESPACES = 0x02;
inline constexpr u8 CNS_NAMESPACE_DESCRIPTORS = 0x03;
inline constexpr u64 IDENTIFY_BYTES = 4096;

// Feature identifiers (§5.21.1, Figure 271).
inline constexpr u8 FEATURE_ARBITRATION = 0x01;
inline constexpr u8 FEATURE_POWER_MANAGEMENT = 0x02;
inline constexpr u8 FEATURE_TEMPERATURE_THRESHOLD = 0x04;
inline constexpr u8 FEATURE_ERROR_RECOVERY = 0x05;
inline constexpr u8 FEATURE_VOLATILE_WRITE_CACHE = 0x06;
inline constexpr u8 FEATURE_NUMBER_OF_QUEUES = 0x07;
inline constexpr u8 FEATURE_INTERRUPT_COALESCING = 0x08;
inline constexpr u8 FEATURE_INTERRUPT_VECTOR_CONFIG = 0x09;
inline constexpr u8 FEATURE_WRITE_ATOMICITY = 0x0A;
inline constexpr u8 FEATURE_ASYNC_EVENT_CONFIG = 0x0B;

// Log page identifiers (§5.14.1, Figure 191).
inline constexpr u8 LOG_ERROR_INFORMATION = 0x01;
inline constexpr u8 LOG_SMART_HEALTH = 0x02;
inline constexpr u8 LOG_FIRMWARE_SLOT = 0x03;
inline constexpr u64 LOG_ERROR_ENTRY_BYTES = 64;
inline constexpr u64 LOG_SMART_BYTES = 512;
inline constexpr u64 LOG_FIRMWARE_SLOT_BYTES = 512;

// Asynchronous event completion dword 0 (§5.2, Figure 146): type 2:0, info 15:8, log page 23:16.
inline constexpr u32 AEN_TYPE_ERROR = 0x0;
inline constexpr u32 AEN_TYPE_SMART = 0x1;
inline constexpr u32 AEN_ERROR_INVALID_DOORBELL = 0x00;       // Write to invalid doorbell register.
inline constexpr u32 AEN_ERROR_INVALID_DOORBELL_VALUE = 0x01; // Invalid doorbell write value.

// Dataset Management range (§6.7, Figure 364).
struct DsmRange {
    u32 attributes;
    u32 length_lbas;
    u64 start_lba;
};
static_assert(sizeof(DsmRange) == 16 && Wire<DsmRange>);

// Error Information log entry (§5.14.1.1, Figure 194), the fields the engine fills.
struct ErrorLogEntry {
    u64 error_count;
    u16 sq_id;
    u16 cid;
    u16 status; // Status field as posted (phase bit 0).
    u16 parameter_location;
    u64 lba;
    u32 nsid;
    u8 vendor_info;
    u8 transport_type;
    u8 reserved0[2];
    u64 command_specific;
    u16 transport_info;
    u8 reserved1[22];
};
static_assert(sizeof(ErrorLogEntry) == LOG_ERROR_ENTRY_BYTES && Wire<ErrorLogEntry>);

} // namespace vmm::nvme

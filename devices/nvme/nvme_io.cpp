// SPDX-License-Identifier: MIT
// NvmeController: NVM command set I/O commands (NVMe 1.4 §6) and back-end completions.
#include <algorithm>
#include <array>
#include <cerrno>

#include "base/error.hpp"
#include "devices/nvme/nvme_controller.hpp"

namespace vmm::nvme {

namespace {

constexpr std::string_view LOG = "nvme";
constexpr u32 NSID = 1;
constexpr u32 NSID_ALL = 0xFFFF'FFFF;
constexpr u32 FUA = 1u << 30;        // CDW12 bit 30 (§6.9, §6.15, §6.16).
constexpr u32 DEAC = 1u << 25;       // Write Zeroes CDW12: deallocate (§6.16).
constexpr u32 DSM_DEALLOCATE = 1u << 2; // Dataset Management CDW11 AD (§6.7).
constexpr u32 DSM_MAX_RANGES = 256;

// A back-end errno as the status the guest sees (§4.6.1.2): media errors for reads and writes so
// the guest's block layer reports an I/O error, Capacity Exceeded for a full host file system.
Status status_of_errno(BlockOp op, i32 result)
{
    if (result == -ENOSPC || result == -EDQUOT)
        return Status::CapacityExceeded;
    switch (op) {
    case BlockOp::Read: return Status::UnrecoveredReadError;
    case BlockOp::Write:
    case BlockOp::WriteZeroes: return Status::WriteFault;
    default: return Status::InternalError;
    }
}

} // namespace

u32 NvmeController::allocate_slot(u16 sqid, u16 cid, BlockOp op)
{
    u32 index;
    if (m_free_slots.empty()) {
        index = static_cast<u32>(m_slots.size());
        m_slots.emplace_back();
    } else {
        index = m_free_slots.back();
        m_free_slots.pop_back();
    }
    auto& slot = m_slots[index];
    slot.used = true;
    slot.orphan = false;
    slot.generation += 1;
    slot.sqid = sqid;
    slot.cid = cid;
    slot.op = op;
    slot.parts = 0;
    slot.status = Status::Success;
    slot.lba = 0;
    slot.bytes = 0;
    slot.segments.clear();
    return index;
}

void NvmeController::release_slot(u32 index)
{
    auto& slot = m_slots[index];
    slot.used = false;
    slot.segments.clear();
    m_free_slots.push_back(index);
}

void NvmeController::submit_part(u32 index, BlockOp op, bool fua, u64 offset, u64 length)
{
    auto& slot = m_slots[index];
    ++slot.parts;
    ++m_backend_outstanding;
    m_backend.submit(BlockRequest {
        .tag = tag_of(index, slot.generation),
        .op = op,
        .fua = fua,
        .offset = offset,
        .length = length,
        .buffers = (op == BlockOp::Read || op == BlockOp::Write) ? std::span<std::span<std::byte> const> { slot.segments }
                                                                 : std::span<std::span<std::byte> const> {},
    });
}

void NvmeController::io_command(u16 sqid, SubmissionEntry const& entry)
{
    if (auto done = start_io(sqid, entry)) {
        if (done->status != Status::Success) {
            ++m_stats.guest_errors;
            record_error(sqid, entry.cid(), done->status, 0);
        }
        post(sqid, entry.cid(), *done);
    }
}

// Validates and submits; returns the completion when the command finishes at once (refused).
std::optional<NvmeController::Completion> NvmeController::start_io(u16 sqid, SubmissionEntry const& entry)
{
    // PSDT != 0 asks for SGLs (Identify SGLS is 0) and fused operations are not supported
    // (FUSES 0): Invalid Field (§4.2).
    if (entry.psdt() != 0 || entry.fuse() != 0)
        return Completion { .status = Status::InvalidField };
    switch (static_cast<IoOpcode>(entry.opcode())) {
    case IoOpcode::Read: return start_read_write(sqid, entry, false);
    case IoOpcode::Write: return start_read_write(sqid, entry, true);
    case IoOpcode::Flush: return start_flush(sqid, entry);
    case IoOpcode::WriteZeroes: return start_write_zeroes(sqid, entry);
    case IoOpcode::DatasetManagement: return start_dataset_management(sqid, entry);
    }
    return Completion { .status = Status::InvalidOpcode };
}

std::optional<NvmeController::Completion> NvmeController::start_read_write(u16 sqid, SubmissionEntry const& entry, bool write)
{
    if (entry.nsid != NSID)
        return Completion { .status = Status::InvalidNamespace };
    u64 const slba = u64 { entry.cdw10 } | (u64 { entry.cdw11 } << 32);
    u64 const lbas = u64 { entry.cdw12 & 0xFFFF } + 1; // NLB is 0-based (§6.9).
    if (slba >= namespace_lbas() || lbas > namespace_lbas() - slba)
        return Completion { .status = Status::LbaOutOfRange };
    u64 const bytes = lbas << LBA_SHIFT;
    if (bytes > MAX_TRANSFER_BYTES)
        return Completion { .status = Status::InvalidField }; // Beyond MDTS (§5.15.2.1).
    if (write && namespace_read_only())
        return Completion { .status = Status::NamespaceWriteProtected };
    BlockOp const op = write ? BlockOp::Write : BlockOp::Read;
    u32 const index = allocate_slot(sqid, entry.cid(), op);
    auto& slot = m_slots[index];
    std::vector<u64>* walked = m_tap != nullptr ? &m_tap_list : nullptr;
    if (walked != nullptr)
        walked->clear();
    auto mapped = map_prps(m_memory, entry.prp1, entry.prp2, bytes, slot.segments, walked);
    if (walked != nullptr && !walked->empty())
        m_tap->on_prp_list(sqid, entry.cid(), *walked);
    if (!mapped) {
        release_slot(index);
        return Completion { .status = mapped.error() };
    }
    slot.lba = slba;
    slot.bytes = bytes;
    // Without a volatile write cache (Set Features WCE 0) every write is write-through.
    bool const fua = write && ((entry.cdw12 & FUA) != 0 || !m_write_cache);
    submit_part(index, op, fua, slba << LBA_SHIFT, bytes);
    return std::nullopt;
}

std::optional<NvmeController::Completion> NvmeController::start_flush(u16 sqid, SubmissionEntry const& entry)
{
    if (entry.nsid != NSID && entry.nsid != NSID_ALL)
        return Completion { .status = Status::InvalidNamespace };
    u32 const index = allocate_slot(sqid, entry.cid(), BlockOp::Flush);
    submit_part(index, BlockOp::Flush, false, 0, 0);
    return std::nullopt;
}

std::optional<NvmeController::Completion> NvmeController::start_write_zeroes(u16 sqid, SubmissionEntry const& entry)
{
    if (entry.nsid != NSID)
        return Completion { .status = Status::InvalidNamespace };
    u64 const slba = u64 { entry.cdw10 } | (u64 { entry.cdw11 } << 32);
    u64 const lbas = u64 { entry.cdw12 & 0xFFFF } + 1;
    if (slba >= namespace_lbas() || lbas > namespace_lbas() - slba)
        return Completion { .status = Status::LbaOutOfRange };
    if (namespace_read_only())
        return Completion { .status = Status::NamespaceWriteProtected };
    // DEAC asks that the range be deallocated as well; reads return zeroes either way (Identify
    // Namespace DLFEAT), so both go to the back-end as WriteZeroes (ZERO_RANGE or a hole).
    static_cast<void>(DEAC);
    u32 const index = allocate_slot(sqid, entry.cid(), BlockOp::WriteZeroes);
    m_slots[index].lba = slba;
    bool const fua = (entry.cdw12 & FUA) != 0 || !m_write_cache;
    submit_part(index, BlockOp::WriteZeroes, fua, slba << LBA_SHIFT, lbas << LBA_SHIFT);
    return std::nullopt;
}

std::optional<NvmeController::Completion> NvmeController::start_dataset_management(u16 sqid, SubmissionEntry const& entry)
{
    if (entry.nsid != NSID)
        return Completion { .status = Status::InvalidNamespace };
    u32 const ranges = (entry.cdw10 & 0xFF) + 1; // NR is 0-based (§6.7).
    if ((entry.cdw11 & DSM_DEALLOCATE) == 0)
        return Completion {}; // Only attribute hints (IDR/IDW/AD clear): advisory, nothing to do.
    if (namespace_read_only())
        return Completion { .status = Status::NamespaceWriteProtected };
    // Copy the range list out of guest RAM, then validate every range before the first discard.
    std::array<DsmRange, DSM_MAX_RANGES> list;
    Segments segments;
    if (auto mapped = map_prps(m_memory, entry.prp1, entry.prp2, u64 { ranges } * sizeof(DsmRange), segments); !mapped)
        return Completion { .status = mapped.error() };
    copy_from_segments(segments, std::as_writable_bytes(std::span { list.data(), ranges }));
    for (u32 i = 0; i < ranges; ++i) {
        u64 const lbas = list[i].length_lbas;
        if (list[i].start_lba > namespace_lbas() || lbas > namespace_lbas() - list[i].start_lba)
            return Completion { .status = Status::LbaOutOfRange };
    }
    u32 const index = allocate_slot(sqid, entry.cid(), BlockOp::Discard);
    for (u32 i = 0; i < ranges; ++i) {
        if (list[i].length_lbas != 0)
            submit_part(index, BlockOp::Discard, false, list[i].start_lba << LBA_SHIFT, u64 { list[i].length_lbas } << LBA_SHIFT);
    }
    if (m_slots[index].parts == 0) {
        release_slot(index);
        return Completion {};
    }
    return std::nullopt;
}

void NvmeController::on_io_complete(u64 tag, i32 result)
{
    BlockCompletion const one { .tag = tag, .result = result };
    on_io_complete(std::span { &one, 1 });
}

void NvmeController::on_io_complete(std::span<BlockCompletion const> batch)
{
    VMM_ASSERT(!m_in_process); // Never from inside BlockBackend::submit (block_backend.hpp).
    m_in_process = true;
    for (auto const& completion : batch)
        complete_part(completion.tag, completion.result);
    finish_reset_if_drained();
    progress_shutdown();
    raise_due_interrupts();
    m_in_process = false;
}

void NvmeController::complete_part(u64 tag, i32 result)
{
    u32 const index = static_cast<u32>(tag);
    VMM_ASSERT(index < m_slots.size());
    auto& slot = m_slots[index];
    // A tag the engine never handed out, or completed twice, is a back-end bug.
    VMM_ASSERT(slot.used && slot.generation == static_cast<u32>(tag >> 32) && slot.parts > 0);
    VMM_ASSERT(m_backend_outstanding > 0);
    --m_backend_outstanding;
    --slot.parts;
    if (result < 0 && slot.status == Status::Success) {
        slot.status = status_of_errno(slot.op, result);
        ++m_stats.io_errors;
        if (m_log_limit.allow())
            log::warn(LOG, "back-end {} at LBA {:#x} failed: errno {} (reported to the guest)",
                slot.op == BlockOp::Read ? "read" : slot.op == BlockOp::Write ? "write" : "request", slot.lba, -result);
    }
    if (slot.parts == 0) {
        if (slot.orphan) {
            release_slot(index);
        } else if (slot.sqid == INTERNAL_SQID) {
            // The shutdown flush: data are durable, report SHST complete (§3.1.6).
            release_slot(index);
            if (m_shutdown_requested)
                m_csts = (m_csts & ~(u32 { 0x3 } << CSTS_SHST_SHIFT)) | (SHST_COMPLETE << CSTS_SHST_SHIFT);
        } else {
            u16 const sqid = slot.sqid;
            u16 const cid = slot.cid;
            Status const status = slot.status;
            if (status == Status::Success) {
                if (slot.op == BlockOp::Read) {
                    ++m_stats.read_commands;
                    m_stats.bytes_read += slot.bytes;
                } else if (slot.op == BlockOp::Write) {
                    ++m_stats.write_commands;
                    m_stats.bytes_written += slot.bytes;
                } else if (slot.op == BlockOp::Flush) {
                    ++m_stats.flushes;
                }
            } else {
                record_error(sqid, cid, status, slot.lba);
            }
            release_slot(index);
            // Media errors may succeed on retry (DNR clear); the guest decides.
            post(sqid, cid, Completion { .status = status, .dnr = false });
            if (m_sqs[sqid].live && m_sqs[sqid].head != m_sqs[sqid].tail)
                process_sq(sqid);
        }
    }
}

} // namespace vmm::nvme

// SPDX-License-Identifier: MIT
// NvmeController: registers, doorbells, queue mechanics, completion posting, reset and shutdown.
// Doorbells and shadow doorbells are in nvme_doorbells.cpp, admin commands in nvme_admin.cpp,
// I/O commands in nvme_io.cpp.
#include "devices/nvme/nvme_controller.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "base/error.hpp"

namespace vmm::nvme {

namespace {

constexpr std::string_view LOG = "nvme";

// CAP (§3.1.1, Figure 79): MQES 15:0 (0-based), CQR 16 (queues must be physically contiguous),
// TO 31:24 (worst-case ready time in 500 ms units), DSTRD 35:32 = 0, CSS 44:37 bit 37 (NVM
// command set), MPSMIN 51:48 = MPSMAX 55:52 = 0 (4 KiB pages only).
constexpr u64 CAP_CQR = u64 { 1 } << 16;
constexpr u64 CAP_TO_500MS = 60; // 30 s: a reset waits for in-flight back-end I/O to finish.
constexpr u64 CAP_CSS_NVM = u64 { 1 } << 37;

} // namespace

NvmeController::NvmeController(NvmeControllerConfig config, mem::GuestMemory const& memory, BlockBackend& backend,
    NvmeInterrupts& interrupts)
    : m_config(std::move(config))
    , m_memory(memory)
    , m_backend(backend)
    , m_interrupts(interrupts)
{
    VMM_ASSERT(m_config.max_io_queues >= 1);
    VMM_ASSERT(m_config.msix_vectors >= 1);
    VMM_ASSERT(m_config.max_queue_entries >= 2 && m_config.max_queue_entries <= 65536);
    // Doorbells of every queue must fit in BAR0.
    VMM_ASSERT(REG_DOORBELL_BASE + (u64 { m_config.max_io_queues } + 1) * 2 * DOORBELL_STRIDE <= BAR0_BYTES);
    m_sqs.resize(m_config.max_io_queues + 1u);
    m_cqs.resize(m_config.max_io_queues + 1u);
    m_queues_granted = m_config.max_io_queues;
}

u64 NvmeController::cap() const
{
    return u64 { m_config.max_queue_entries - 1 } | CAP_CQR | (CAP_TO_500MS << 24) | CAP_CSS_NVM;
}

void NvmeController::guest_error(std::string_view what, u64 detail)
{
    ++m_stats.guest_errors;
    if (m_log_limit.allow())
        log::warn(LOG, "guest error: {} ({:#x}), ignored", what, detail);
}

void NvmeController::fail_controller(std::string_view why, u64 detail)
{
    // Controller Fatal Status (§3.1.6): the guest's driver resets the controller.
    if (!(m_csts & CSTS_CFS) && m_log_limit.allow())
        log::warn(LOG, "controller fatal status: {} ({:#x})", why, detail);
    ++m_stats.guest_errors;
    m_csts |= CSTS_CFS;
}

// ---------------------------------------------------------------------------------------------
// Registers.

void NvmeController::mmio_read(u64 offset, std::span<std::byte> data)
{
    std::ranges::fill(data, std::byte { 0 });
    if (offset >= BAR0_BYTES || data.size() > BAR0_BYTES - offset)
        return guest_error("BAR0 read out of range", offset);
    if (data.size() == 8 && (offset == REG_CAP || offset == REG_ASQ || offset == REG_ACQ)) {
        u64 const value = u64 { read_register32(offset) } | (u64 { read_register32(offset + 4) } << 32);
        std::memcpy(data.data(), &value, 8);
        return;
    }
    if (data.size() != 4 || (offset & 3) != 0)
        return guest_error("BAR0 read of unsupported size or alignment", offset);
    u32 const value = read_register32(offset);
    std::memcpy(data.data(), &value, 4);
}

u32 NvmeController::read_register32(u64 offset) const
{
    switch (offset) {
    case REG_CAP: return static_cast<u32>(cap());
    case REG_CAP + 4: return static_cast<u32>(cap() >> 32);
    case REG_VS: return VERSION_1_4;
    case REG_INTMS:
    case REG_INTMC: return m_intms;
    case REG_CC: return m_cc;
    case REG_CSTS: return m_csts;
    case REG_AQA: return m_aqa;
    case REG_ASQ: return static_cast<u32>(m_asq);
    case REG_ASQ + 4: return static_cast<u32>(m_asq >> 32);
    case REG_ACQ: return static_cast<u32>(m_acq);
    case REG_ACQ + 4: return static_cast<u32>(m_acq >> 32);
    default: return 0; // Reserved, optional (CMB, PMR, boot partitions) and doorbells read 0.
    }
}

void NvmeController::mmio_write(u64 offset, std::span<std::byte const> data)
{
    VMM_ASSERT(!m_in_process); // A back-end called back from submit(), or the owner does not serialise.
    m_in_process = true;
    if (offset >= BAR0_BYTES || data.size() > BAR0_BYTES - offset) {
        guest_error("BAR0 write out of range", offset);
    } else if (data.size() == 8 && (offset == REG_ASQ || offset == REG_ACQ)) {
        u64 value;
        std::memcpy(&value, data.data(), 8);
        write_register32(offset, static_cast<u32>(value));
        write_register32(offset + 4, static_cast<u32>(value >> 32));
    } else if (data.size() != 4 || (offset & 3) != 0) {
        guest_error("BAR0 write of unsupported size or alignment", offset);
    } else {
        u32 value;
        std::memcpy(&value, data.data(), 4);
        if (offset >= REG_DOORBELL_BASE)
            doorbell(offset, value);
        else
            write_register32(offset, value);
    }
    raise_due_interrupts();
    m_in_process = false;
}

void NvmeController::write_register32(u64 offset, u32 value)
{
    bool const enabled_now = (m_cc & CC_EN) != 0;
    switch (offset) {
    case REG_INTMS: m_intms |= value; return;  // §3.1.3/3.1.4: not used with MSI-X; kept for reads.
    case REG_INTMC: m_intms &= ~value; return;
    case REG_CC: write_cc(value); return;
    case REG_NSSR: return; // CAP.NSSRS is 0: NVM subsystem reset is not supported (§3.1.7).
    case REG_CMBMSC:
    case REG_CMBMSC + 4:
        // No controller memory buffer (CMBSZ reads 0), but Linux 6.1 writes CMBMSC.CRE on every
        // 1.4 controller before reading CMBSZ (drivers/nvme/host/pci.c nvme_map_cmb): expected.
        return;
    case REG_AQA:
    case REG_ASQ:
    case REG_ASQ + 4:
    case REG_ACQ:
    case REG_ACQ + 4:
        // §3.1.8-3.1.10: written while CC.EN is 0 only.
        if (enabled_now || m_resetting)
            return guest_error("admin queue register written while enabled", offset);
        if (offset == REG_AQA)
            m_aqa = value & 0x0FFF'0FFF;
        else if (offset == REG_ASQ)
            m_asq = (m_asq & ~u64 { 0xFFFF'FFFF }) | (value & ~u32 { 0xFFF });
        else if (offset == REG_ASQ + 4)
            m_asq = (m_asq & 0xFFFF'FFFF) | (u64 { value } << 32);
        else if (offset == REG_ACQ)
            m_acq = (m_acq & ~u64 { 0xFFFF'FFFF }) | (value & ~u32 { 0xFFF });
        else
            m_acq = (m_acq & 0xFFFF'FFFF) | (u64 { value } << 32);
        return;
    default:
        return guest_error("write to a read-only or reserved register", offset);
    }
}

void NvmeController::write_cc(u32 value)
{
    bool const was = (m_cc & CC_EN) != 0;
    bool const now = (value & CC_EN) != 0;
    if (m_resetting && now)
        return guest_error("CC.EN set before CSTS.RDY cleared", value);
    if (was && now) {
        // Only SHN may change while enabled (§3.1.5).
        u32 const shn = (value >> CC_SHN_SHIFT) & 0x3;
        m_cc = (m_cc & ~(u32 { 0x3 } << CC_SHN_SHIFT)) | (shn << CC_SHN_SHIFT);
        if (shn != 0 && !m_shutdown_requested) {
            m_shutdown_requested = true;
            m_csts = (m_csts & ~(u32 { 0x3 } << CSTS_SHST_SHIFT)) | (SHST_OCCURRING << CSTS_SHST_SHIFT);
            progress_shutdown();
        }
        return;
    }
    m_cc = value;
    if (!was && now)
        enable();
    else if (was && !now)
        begin_reset();
}

void NvmeController::enable()
{
    u32 const mps = (m_cc >> CC_MPS_SHIFT) & 0xF;
    u32 const css = (m_cc >> CC_CSS_SHIFT) & 0x7;
    u32 const ams = (m_cc >> CC_AMS_SHIFT) & 0x7;
    u32 const sq_entries = (m_aqa & 0xFFF) + 1;
    u32 const cq_entries = ((m_aqa >> 16) & 0xFFF) + 1;
    // §7.6.1: the admin queues are set up before CC.EN; a controller that cannot use them reports
    // Controller Fatal Status instead of becoming ready.
    if (mps != 0 || css != 0 || ams != 0)
        return fail_controller("CC.MPS/CSS/AMS not supported", m_cc);
    if (sq_entries < 2 || cq_entries < 2)
        return fail_controller("admin queue smaller than 2 entries", m_aqa);
    if (!m_memory.is_ram(mem::Gpa { m_asq }, sq_entries * SQ_ENTRY_BYTES)
        || !m_memory.is_ram(mem::Gpa { m_acq }, cq_entries * CQ_ENTRY_BYTES))
        return fail_controller("admin queue outside guest RAM", m_asq);
    m_sqs[0] = SubmissionQueue { .live = true, .base = m_asq, .size = sq_entries, .cqid = 0 };
    m_cqs[0] = CompletionQueue {};
    m_cqs[0].live = true;
    m_cqs[0].base = m_acq;
    m_cqs[0].size = cq_entries;
    m_cqs[0].interrupts = true;
    m_cqs[0].vector = 0;
    m_cqs[0].sq_refs = 1;
    m_csts = CSTS_RDY;
}

void NvmeController::begin_reset()
{
    ++m_stats.resets;
    // §7.6.2: CC.EN 1->0 deletes every queue and aborts outstanding commands. Back-end requests
    // already submitted cannot be recalled and may still write guest RAM, so CSTS.RDY stays 1
    // until they finish (the driver waits for RDY 0 up to CAP.TO before reusing its memory).
    for (auto& slot : m_slots) {
        if (slot.used)
            slot.orphan = true;
    }
    for (u32 i = 0; i < m_slots.size(); ++i) {
        if (m_slots[i].used && m_slots[i].parts == 0)
            release_slot(i);
    }
    for (auto& sq : m_sqs)
        sq = SubmissionQueue {};
    for (auto& cq : m_cqs)
        cq = CompletionQueue {};
    m_irq_due.clear();
    m_shutdown_requested = false;
    m_shutdown_flush_sent = false;
    m_queues_granted = m_config.max_io_queues;
    m_queues_set = false;
    m_arbitration = 0;
    m_power_state = 0;
    m_temperature_threshold = 0;
    m_error_recovery = 0;
    m_write_cache = true;
    m_interrupt_coalescing = 0;
    m_write_atomicity = 0;
    m_async_event_config = 0;
    m_aer_cids.clear();
    m_pending_events.clear();
    m_event_masked = {};
    if (m_shadow_doorbells != 0) {
        m_shadow_doorbells = 0;
        m_event_indexes = 0;
        m_interrupts.shadow_doorbells(false);
    }
    m_resetting = true;
    finish_reset_if_drained();
}

void NvmeController::finish_reset_if_drained()
{
    if (!m_resetting || m_backend_outstanding != 0)
        return;
    m_resetting = false;
    m_csts = 0; // RDY 0, CFS cleared, SHST back to normal.
}

void NvmeController::progress_shutdown()
{
    // §7.6.2: shutdown completes once outstanding I/O is done and data are durable: wait for
    // the back-end, then flush its write cache, then report SHST complete.
    if (!m_shutdown_requested || m_resetting)
        return;
    if (!m_shutdown_flush_sent) {
        for (auto const& slot : m_slots) {
            if (slot.used && slot.parts != 0)
                return;
        }
        m_shutdown_flush_sent = true;
        u32 const index = allocate_slot(INTERNAL_SQID, 0, BlockOp::Flush);
        submit_part(index, BlockOp::Flush, false, 0, 0);
        return;
    }
}

// ---------------------------------------------------------------------------------------------
// Queues.

void NvmeController::process_sq(u16 sqid)
{
    auto& sq = m_sqs[sqid];
    bool const shadowed = m_shadow_doorbells != 0 && sqid != 0;
    u64 const index = 2u * sqid;
    // A guest that keeps moving its shadow tail could keep this thread here; a few rounds, then
    // its next submission rings the doorbell again (EventIdx equals what was seen).
    for (int round = 0; round < 8; ++round) {
        if (shadowed) {
            // The shadow tail may be ahead of the last doorbell write (Linux pci.c
            // nvme_dbbuf_update_and_check_event rings only past EventIdx).
            auto tail = shadow_value(index);
            if (!tail)
                return;
            if (*tail >= sq.size)
                return invalid_doorbell(AEN_ERROR_INVALID_DOORBELL_VALUE, REG_DOORBELL_BASE + index * DOORBELL_STRIDE, *tail);
            sq.tail = *tail;
        }
        // Bound what one SQ has fetched but not completed to its size, so completions waiting
        // for CQ space (backlog) stay bounded however the guest drives its doorbells.
        while (sq.live && !sq.deleting && sq.head != sq.tail && sq.in_flight < sq.size && !(m_csts & CSTS_CFS)) {
            auto entry = m_memory.read_obj<SubmissionEntry>(mem::Gpa { sq.base + u64 { sq.head } * SQ_ENTRY_BYTES });
            if (!entry.has_value())
                return fail_controller("submission queue entry not in guest RAM", sq.base);
            sq.head = (sq.head + 1) % sq.size;
            ++sq.in_flight;
            if (m_tap != nullptr)
                m_tap->on_command(sqid, *entry);
            if (sqid == 0)
                admin_command(*entry);
            else
                io_command(sqid, *entry);
        }
        if (!shadowed || !sq.live || sq.deleting)
            return;
        // Ask for a doorbell once the guest moves past what we have seen, then look again: the
        // guest stores its tail before reading EventIdx, we store EventIdx before re-reading the
        // tail (full fences on both sides), so no submission is missed.
        write_event_index(index, sq.tail);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        auto again = shadow_value(index);
        if (!again || *again == sq.tail || sq.in_flight >= sq.size)
            return;
    }
}

void NvmeController::post(u16 sqid, u16 cid, Completion completion)
{
    auto& sq = m_sqs[sqid];
    VMM_ASSERT(sq.live);
    u16 status = static_cast<u16>(static_cast<u16>(completion.status) << 1);
    if (completion.status != Status::Success && completion.dnr)
        status |= STATUS_DNR;
    CompletionEntry entry {
        .dw0 = completion.dw0, .dw1 = 0, .sq_head = static_cast<u16>(sq.head), .sq_id = sqid, .cid = cid, .status = status
    };
    post_entry(sq.cqid, entry);
}

void NvmeController::post_entry(u16 cqid, CompletionEntry const& entry)
{
    auto& cq = m_cqs[cqid];
    VMM_ASSERT(cq.live);
    if (!cq.backlog.empty() || !write_cqe(cq, entry)) {
        cq.backlog.push_back(entry);
        return;
    }
    sq_entry_retired(entry.sq_id);
}

bool NvmeController::write_cqe(CompletionQueue& cq, CompletionEntry const& entry)
{
    if ((cq.tail + 1) % cq.size == cq.head) {
        u16 const cqid = static_cast<u16>(&cq - m_cqs.data());
        if (!refresh_cq_head(cqid) || (cq.tail + 1) % cq.size == cq.head)
            return false; // Full (§4.1.2): wait for the guest's head doorbell.
    }
    auto view = m_memory.contiguous(mem::Gpa { cq.base + u64 { cq.tail } * CQ_ENTRY_BYTES }, CQ_ENTRY_BYTES);
    if (!view.has_value()) {
        fail_controller("completion queue entry not in guest RAM", cq.base);
        return true; // Dropped; the controller is fatal now.
    }
    // The guest polls the phase bit: everything else first, then the status word with release
    // order, so a guest that sees the new phase sees the whole entry.
    std::memcpy(view->data(), &entry, offsetof(CompletionEntry, status));
    u16 const status = static_cast<u16>((entry.status & ~u16 { 1 }) | (cq.phase ? 1 : 0));
    std::atomic_ref<u16>(*reinterpret_cast<u16*>(view->data() + offsetof(CompletionEntry, status)))
        .store(status, std::memory_order_release);
    cq.tail = (cq.tail + 1) % cq.size;
    if (cq.tail == 0)
        cq.phase = !cq.phase;
    if (cq.interrupts && !cq.irq_due) {
        cq.irq_due = true;
        m_irq_due.push_back(static_cast<u16>(&cq - m_cqs.data()));
    }
    return true;
}

void NvmeController::drain_backlog(u16 cqid)
{
    auto& cq = m_cqs[cqid];
    while (!cq.backlog.empty() && cq.live) {
        CompletionEntry const entry = cq.backlog.front();
        if (!write_cqe(cq, entry))
            break;
        cq.backlog.pop_front();
        sq_entry_retired(entry.sq_id);
    }
    // SQs that stopped fetching at their in-flight bound may continue now.
    for (u16 sqid = 0; sqid < m_sqs.size(); ++sqid) {
        auto const& sq = m_sqs[sqid];
        if (sq.live && sq.cqid == cqid && sq.head != sq.tail)
            process_sq(sqid);
    }
}

void NvmeController::sq_entry_retired(u16 sqid)
{
    auto& sq = m_sqs[sqid];
    if (!sq.live || sq.in_flight == 0)
        return;
    --sq.in_flight;
    if (sq.deleting && sq.in_flight == 0) {
        // The deferred Delete I/O SQ completes now (nvme_admin.cpp delete_io_sq).
        u16 const cid = sq.delete_cid;
        m_cqs[sq.cqid].sq_refs -= 1;
        sq = SubmissionQueue {};
        post(0, cid, Completion {});
    }
}

void NvmeController::raise_due_interrupts()
{
    // One interrupt per CQ per guest access or back-end completion, however many entries it got.
    for (u16 cqid : m_irq_due) {
        auto& cq = m_cqs[cqid];
        if (cq.live && cq.irq_due && cq.interrupts)
            m_interrupts.raise(cq.vector);
        cq.irq_due = false;
    }
    m_irq_due.clear();
}

} // namespace vmm::nvme

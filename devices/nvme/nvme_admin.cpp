// SPDX-License-Identifier: MIT
// NvmeController: admin commands (NVMe 1.4 §5), asynchronous events and the error log.
#include <algorithm>
#include <cstring>

#include "base/error.hpp"
#include "devices/nvme/nvme_controller.hpp"
#include "devices/nvme/nvme_identify.hpp"

namespace vmm::nvme {

namespace {

constexpr u32 NSID = 1;
constexpr u32 SET_FEATURES_SAVE = 1u << 31; // CDW10 SV (§5.21).

} // namespace

void NvmeController::admin_command(SubmissionEntry const& entry)
{
    u16 const cid = entry.cid();
    Completion done {};
    if (entry.psdt() != 0 || entry.fuse() != 0) {
        done.status = Status::InvalidField; // PRPs only, no fused commands (Identify SGLS, FUSES).
    } else {
        switch (static_cast<AdminOpcode>(entry.opcode())) {
        case AdminOpcode::CreateIoCq: done = create_io_cq(entry); break;
        case AdminOpcode::CreateIoSq: done = create_io_sq(entry); break;
        case AdminOpcode::DeleteIoCq: done = delete_io_cq(entry); break;
        case AdminOpcode::DeleteIoSq:
            if (!delete_io_sq(entry, done))
                return; // Completes when the queue's commands have (sq_entry_retired).
            break;
        case AdminOpcode::Identify: done = identify(entry); break;
        case AdminOpcode::GetLogPage: done = get_log_page(entry); break;
        case AdminOpcode::SetFeatures: done = set_features(entry); break;
        case AdminOpcode::GetFeatures: done = get_features(entry); break;
        case AdminOpcode::Abort:
            // §5.1: the engine cannot recall a request from the back-end, so it aborts nothing:
            // DW0 bit 0 set = "command not aborted"; the command completes normally.
            done.dw0 = 1;
            break;
        case AdminOpcode::DoorbellBufferConfig: done = doorbell_buffer_config(entry); break;
        case AdminOpcode::AsyncEventRequest:
            if (m_aer_cids.size() >= AER_LIMIT) {
                done.status = Status::AsyncEventLimitExceeded;
                break;
            }
            m_aer_cids.push_back(cid); // Held until an event (§5.2); sq in_flight counts it.
            deliver_events();
            return;
        default: done.status = Status::InvalidOpcode; break;
        }
    }
    if (done.status != Status::Success) {
        ++m_stats.guest_errors;
        record_error(0, cid, done.status, 0);
    }
    post(0, cid, done);
}

NvmeController::Completion NvmeController::create_io_cq(SubmissionEntry const& entry)
{
    // §5.3: CDW10 QID 15:0, QSIZE 31:16 (0-based); CDW11 PC 0, IEN 1, IV 31:16; PRP1 the base.
    u16 const qid = static_cast<u16>(entry.cdw10);
    u32 const entries = (entry.cdw10 >> 16) + 1;
    bool const contiguous = (entry.cdw11 & 1) != 0;
    bool const interrupts = (entry.cdw11 & 2) != 0;
    u16 const vector = static_cast<u16>(entry.cdw11 >> 16);
    if (qid == 0 || qid > m_queues_granted || m_cqs[qid].live)
        return { .status = Status::InvalidQueueIdentifier };
    if (entries < 2 || entries > m_config.max_queue_entries)
        return { .status = Status::InvalidQueueSize };
    if (interrupts && vector >= m_config.msix_vectors)
        return { .status = Status::InvalidInterruptVector };
    if (!contiguous) // CAP.CQR is 1 (§3.1.1).
        return { .status = Status::InvalidField };
    if (((m_cc >> CC_IOCQES_SHIFT) & 0xF) != CQES_LOG2)
        return { .status = Status::InvalidField };
    if ((entry.prp1 & (HOST_PAGE - 1)) != 0)
        return { .status = Status::InvalidPrpOffset };
    if (!m_memory.is_ram(mem::Gpa { entry.prp1 }, u64 { entries } * CQ_ENTRY_BYTES))
        return { .status = Status::DataTransferError };
    auto& cq = m_cqs[qid];
    cq = CompletionQueue {};
    cq.live = true;
    cq.base = entry.prp1;
    cq.size = entries;
    cq.interrupts = interrupts;
    cq.vector = vector;
    return {};
}

NvmeController::Completion NvmeController::create_io_sq(SubmissionEntry const& entry)
{
    // §5.4: CDW10 QID, QSIZE; CDW11 PC 0, QPRIO 2:1 (round robin: ignored), CQID 31:16.
    u16 const qid = static_cast<u16>(entry.cdw10);
    u32 const entries = (entry.cdw10 >> 16) + 1;
    bool const contiguous = (entry.cdw11 & 1) != 0;
    u16 const cqid = static_cast<u16>(entry.cdw11 >> 16);
    if (qid == 0 || qid > m_queues_granted || m_sqs[qid].live)
        return { .status = Status::InvalidQueueIdentifier };
    if (cqid == 0 || cqid >= m_cqs.size() || !m_cqs[cqid].live)
        return { .status = Status::CompletionQueueInvalid };
    if (entries < 2 || entries > m_config.max_queue_entries)
        return { .status = Status::InvalidQueueSize };
    if (!contiguous || ((m_cc >> CC_IOSQES_SHIFT) & 0xF) != SQES_LOG2)
        return { .status = Status::InvalidField };
    if ((entry.prp1 & (HOST_PAGE - 1)) != 0)
        return { .status = Status::InvalidPrpOffset };
    if (!m_memory.is_ram(mem::Gpa { entry.prp1 }, u64 { entries } * SQ_ENTRY_BYTES))
        return { .status = Status::DataTransferError };
    m_sqs[qid] = SubmissionQueue { .live = true, .base = entry.prp1, .size = entries, .cqid = cqid };
    m_cqs[cqid].sq_refs += 1;
    return {};
}

NvmeController::Completion NvmeController::delete_io_cq(SubmissionEntry const& entry)
{
    // §5.6: every SQ using the CQ must be deleted first: Invalid Queue Deletion otherwise.
    u16 const qid = static_cast<u16>(entry.cdw10);
    if (qid == 0 || qid >= m_cqs.size() || !m_cqs[qid].live)
        return { .status = Status::InvalidQueueIdentifier };
    if (m_cqs[qid].sq_refs != 0)
        return { .status = Status::InvalidQueueDeletion };
    m_cqs[qid] = CompletionQueue {};
    return {};
}

bool NvmeController::delete_io_sq(SubmissionEntry const& entry, Completion& done)
{
    // §5.7: commands already fetched from the SQ complete (or abort) before the deletion does.
    // The back-end cannot recall them, so the deletion waits for their completions.
    u16 const qid = static_cast<u16>(entry.cdw10);
    if (qid == 0 || qid >= m_sqs.size() || !m_sqs[qid].live || m_sqs[qid].deleting) {
        done.status = Status::InvalidQueueIdentifier;
        return true;
    }
    auto& sq = m_sqs[qid];
    if (sq.in_flight != 0) {
        sq.deleting = true;
        sq.delete_cid = entry.cid();
        return false;
    }
    m_cqs[sq.cqid].sq_refs -= 1;
    sq = SubmissionQueue {};
    return true;
}

NvmeController::Completion NvmeController::doorbell_buffer_config(SubmissionEntry const& entry)
{
    // NVMe 1.4 §5.8: PRP1 the shadow doorbell page, PRP2 the EventIdx page, both page aligned
    // RAM; they cover every queue's doorbell index (2 * max queue id + 1 < 1024 words).
    if ((entry.prp1 & (HOST_PAGE - 1)) != 0 || (entry.prp2 & (HOST_PAGE - 1)) != 0 || entry.prp1 == entry.prp2
        || !m_memory.is_ram(mem::Gpa { entry.prp1 }, HOST_PAGE) || !m_memory.is_ram(mem::Gpa { entry.prp2 }, HOST_PAGE))
        return { .status = Status::InvalidField };
    bool const was = m_shadow_doorbells != 0;
    m_shadow_doorbells = entry.prp1;
    m_event_indexes = entry.prp2;
    // Queues that already exist continue from the controller's view (what QEMU's nvme does):
    // the guest reads its old value back from the shadow page.
    for (u16 qid = 1; qid < m_sqs.size(); ++qid) {
        if (m_sqs[qid].live) {
            static_cast<void>(m_memory.write_obj<u32>(mem::Gpa { m_shadow_doorbells + 2u * qid * DOORBELL_STRIDE }, m_sqs[qid].tail));
            write_event_index(2u * qid, m_sqs[qid].tail);
        }
        if (m_cqs[qid].live) {
            static_cast<void>(m_memory.write_obj<u32>(mem::Gpa { m_shadow_doorbells + (2u * qid + 1) * DOORBELL_STRIDE }, m_cqs[qid].head));
            write_event_index(2u * qid + 1, m_cqs[qid].head);
        }
    }
    if (!was)
        m_interrupts.shadow_doorbells(true);
    return {};
}

NvmeController::Completion NvmeController::send_to_guest(SubmissionEntry const& entry, std::span<std::byte const> data)
{
    Segments segments;
    if (auto mapped = map_prps(m_memory, entry.prp1, entry.prp2, data.size(), segments); !mapped)
        return { .status = mapped.error() };
    copy_to_segments(segments, data);
    return {};
}

NvmeController::Completion NvmeController::identify(SubmissionEntry const& entry)
{
    // §5.15: CDW10 CNS 7:0. The CNS values Linux 6.1 sends (drivers/nvme/host/core.c
    // nvme_identify_ctrl, nvme_identify_ns, nvme_scan_ns_list, nvme_identify_ns_descs) and
    // OVMF/stornvme use; the rest, e.g. 0x06 (I/O command set controller, NVMe 2.0) that
    // nvme_init_non_mdts_limits tries, get Invalid Field, which Linux tolerates.
    u8 const cns = static_cast<u8>(entry.cdw10 & 0xFF);
    switch (cns) {
    case CNS_CONTROLLER:
        return send_to_guest(entry,
            identify_controller(m_config, ControllerLimits { .mdts_log2 = MDTS_LOG2, .aer_limit = AER_LIMIT,
                .error_log_entries = ERROR_LOG_ENTRIES, .write_cache_present = true }));
    case CNS_NAMESPACE:
        if (entry.nsid != NSID)
            return { .status = Status::InvalidNamespace };
        return send_to_guest(entry, identify_namespace(m_config, namespace_lbas(), namespace_read_only()));
    case CNS_ACTIVE_NAMESPACES:
        if (entry.nsid >= 0xFFFF'FFFE)
            return { .status = Status::InvalidNamespace };
        return send_to_guest(entry, active_namespace_list(entry.nsid));
    case CNS_NAMESPACE_DESCRIPTORS:
        if (entry.nsid != NSID)
            return { .status = Status::InvalidNamespace };
        return send_to_guest(entry, namespace_descriptors(m_config));
    default: return { .status = Status::InvalidField };
    }
}

NvmeController::Completion NvmeController::get_log_page(SubmissionEntry const& entry)
{
    // §5.14: CDW10 LID 7:0, RAE 15, NUMDL 31:16; CDW11 NUMDU 15:0; CDW12/13 offset (bytes).
    u8 const lid = static_cast<u8>(entry.cdw10 & 0xFF);
    bool const retain = (entry.cdw10 & (1u << 15)) != 0;
    u64 const dwords = ((u64 { entry.cdw11 & 0xFFFF } << 16) | (entry.cdw10 >> 16)) + 1;
    u64 const offset = u64 { entry.cdw12 } | (u64 { entry.cdw13 } << 32);
    std::vector<std::byte> page;
    switch (lid) {
    case LOG_ERROR_INFORMATION: {
        // Newest first (Figure 194); entries never written are zero (error count 0).
        page.resize(ERROR_LOG_ENTRIES * LOG_ERROR_ENTRY_BYTES);
        for (u32 i = 0; i < ERROR_LOG_ENTRIES && i < m_error_count; ++i) {
            auto const& e = m_error_log[(m_error_count - 1 - i) % ERROR_LOG_ENTRIES];
            std::memcpy(page.data() + i * LOG_ERROR_ENTRY_BYTES, &e, sizeof(e));
        }
        if (!retain)
            m_event_masked[AEN_TYPE_ERROR] = false;
        break;
    }
    case LOG_SMART_HEALTH: {
        auto const log = smart_log(m_stats, m_error_count);
        page.assign(log.begin(), log.end());
        if (!retain)
            m_event_masked[AEN_TYPE_SMART] = false;
        break;
    }
    case LOG_FIRMWARE_SLOT: {
        auto const log = firmware_slot_log(m_config);
        page.assign(log.begin(), log.end());
        break;
    }
    default: return { .status = Status::InvalidLogPage };
    }
    if ((offset & 3) != 0 || offset >= page.size())
        return { .status = Status::InvalidField };
    // Bytes past the page read as zeroes (§5.14: "returns zeroes for unused bytes"), but the
    // transfer is bounded like every other one by MDTS.
    u64 const bytes = dwords * 4;
    if (bytes > MAX_TRANSFER_BYTES)
        return { .status = Status::InvalidField };
    std::vector<std::byte> out(bytes);
    u64 const available = std::min<u64>(bytes, page.size() - offset);
    std::memcpy(out.data(), page.data() + offset, available);
    auto done = send_to_guest(entry, out);
    deliver_events(); // An unmasked event type may now be reported.
    return done;
}

NvmeController::Completion NvmeController::set_features(SubmissionEntry const& entry)
{
    // §5.21: CDW10 FID 7:0, SV 31; CDW11 the value. ONCS bit 4 is 0: nothing is saveable.
    u8 const fid = static_cast<u8>(entry.cdw10 & 0xFF);
    u32 const value = entry.cdw11;
    if ((entry.cdw10 & SET_FEATURES_SAVE) != 0)
        return { .status = Status::FeatureNotSaveable };
    switch (fid) {
    case FEATURE_ARBITRATION: m_arbitration = value; return {};
    case FEATURE_POWER_MANAGEMENT:
        if ((value & 0x1F) != 0) // NPSS 0: power state 0 only.
            return { .status = Status::InvalidField };
        m_power_state = value & 0xFF;
        return {};
    case FEATURE_TEMPERATURE_THRESHOLD:
        // TMPSEL 19:16 and THSEL 21:20: only the composite sensor (0) exists; the threshold
        // is kept for Get Features but never crossed (no sensor, SMART reports 0 K).
        if (((value >> 16) & 0xF) != 0)
            return { .status = Status::InvalidField };
        m_temperature_threshold = value & 0x3F'FFFF;
        return {};
    case FEATURE_ERROR_RECOVERY:
        if ((value & (1u << 16)) != 0) // DULBE needs deallocated-block errors: not supported.
            return { .status = Status::InvalidField };
        m_error_recovery = value & 0xFFFF;
        return {};
    case FEATURE_VOLATILE_WRITE_CACHE: m_write_cache = (value & 1) != 0; return {};
    case FEATURE_NUMBER_OF_QUEUES: {
        // §5.21.1.7: NSQR 15:0, NCQR 31:16 (0-based; 0xFFFF invalid). Only before any I/O queue
        // exists; the answer is what was allocated: min(requested, limit), 0-based.
        u32 const nsqr = value & 0xFFFF;
        u32 const ncqr = value >> 16;
        if (nsqr == 0xFFFF || ncqr == 0xFFFF)
            return { .status = Status::InvalidField };
        for (u16 q = 1; q < m_sqs.size(); ++q) {
            if (m_sqs[q].live || m_cqs[q].live)
                return { .status = Status::CommandSequenceError };
        }
        u32 const limit = m_config.max_io_queues;
        u32 const granted = std::min(std::max(nsqr, ncqr) + 1, limit);
        m_queues_granted = static_cast<u16>(granted);
        m_queues_set = true;
        return { .dw0 = (granted - 1) | ((granted - 1) << 16) };
    }
    case FEATURE_INTERRUPT_COALESCING: m_interrupt_coalescing = value & 0xFFFF; return {}; // Accepted; no-op.
    case FEATURE_INTERRUPT_VECTOR_CONFIG:
        if ((value & 0xFFFF) >= m_config.msix_vectors)
            return { .status = Status::InvalidField };
        return {}; // Coalescing disable per vector: coalescing is a no-op anyway.
    case FEATURE_WRITE_ATOMICITY: m_write_atomicity = value & 1; return {};
    case FEATURE_ASYNC_EVENT_CONFIG: m_async_event_config = value; return {};
    default: return { .status = Status::InvalidField };
    }
}

NvmeController::Completion NvmeController::get_features(SubmissionEntry const& entry)
{
    // §5.9: CDW10 FID 7:0, SEL 10:8 (0 current, 1 default, 2 saved, 3 capabilities).
    u8 const fid = static_cast<u8>(entry.cdw10 & 0xFF);
    u32 const sel = (entry.cdw10 >> 8) & 0x7;
    if (sel > 3)
        return { .status = Status::InvalidField };
    bool const defaults = sel == 1 || sel == 2; // Nothing is saveable: saved = default.
    u32 const changeable = 1u << 2;             // SEL 3: changeable, not saveable, not per NS.
    auto answer = [&](u32 current, u32 fallback) -> Completion {
        if (sel == 3)
            return { .dw0 = changeable };
        return { .dw0 = defaults ? fallback : current };
    };
    switch (fid) {
    case FEATURE_ARBITRATION: return answer(m_arbitration, 0);
    case FEATURE_POWER_MANAGEMENT: return answer(m_power_state, 0);
    case FEATURE_TEMPERATURE_THRESHOLD: return answer(m_temperature_threshold, 0);
    case FEATURE_ERROR_RECOVERY: return answer(m_error_recovery, 0);
    case FEATURE_VOLATILE_WRITE_CACHE: return answer(m_write_cache ? 1 : 0, 1);
    case FEATURE_NUMBER_OF_QUEUES: {
        u32 const current = u32 { m_queues_granted } - 1;
        u32 const fallback = u32 { m_config.max_io_queues } - 1;
        return answer(current | (current << 16), fallback | (fallback << 16));
    }
    case FEATURE_INTERRUPT_COALESCING: return answer(m_interrupt_coalescing, 0);
    case FEATURE_INTERRUPT_VECTOR_CONFIG: {
        u32 const iv = entry.cdw11 & 0xFFFF;
        if (iv >= m_config.msix_vectors)
            return { .status = Status::InvalidField };
        return answer(iv, iv);
    }
    case FEATURE_WRITE_ATOMICITY: return answer(m_write_atomicity, 0);
    case FEATURE_ASYNC_EVENT_CONFIG: return answer(m_async_event_config, 0);
    default: return { .status = Status::InvalidField };
    }
}

void NvmeController::queue_event(u32 type, u32 info, u8 log_page)
{
    // §5.2: once an event of a type is reported, further ones of that type are masked until the
    // host reads the log page; the queue of unreported events is bounded.
    if (m_event_masked[type & 7])
        return;
    u32 const dw0 = (type & 7) | (info << 8) | (u32 { log_page } << 16);
    if (m_pending_events.size() >= MAX_PENDING_EVENTS
        || std::ranges::find(m_pending_events, dw0) != m_pending_events.end())
        return;
    m_pending_events.push_back(dw0);
    deliver_events();
}

void NvmeController::deliver_events()
{
    while (!m_pending_events.empty() && !m_aer_cids.empty() && m_sqs[0].live) {
        u32 const dw0 = m_pending_events.front();
        if (m_event_masked[dw0 & 7]) {
            m_pending_events.pop_front();
            continue;
        }
        m_pending_events.pop_front();
        m_event_masked[dw0 & 7] = true;
        u16 const cid = m_aer_cids.front();
        m_aer_cids.erase(m_aer_cids.begin());
        post(0, cid, Completion { .dw0 = dw0 });
    }
}

void NvmeController::record_error(u16 sqid, u16 cid, Status status, u64 lba)
{
    // §5.14.1.1: a 64-bit count that never wraps to 0 and the newest ERROR_LOG_ENTRIES entries.
    ++m_error_count;
    auto& e = m_error_log[(m_error_count - 1) % ERROR_LOG_ENTRIES];
    e = ErrorLogEntry {};
    e.error_count = m_error_count;
    e.sq_id = sqid;
    e.cid = cid;
    e.status = static_cast<u16>(static_cast<u16>(status) << 1);
    e.parameter_location = 0xFFFF;
    e.lba = lba;
    e.nsid = lba != 0 ? 1 : 0;
}

} // namespace vmm::nvme

// SPDX-License-Identifier: MIT
// NvmeController: doorbell writes, value-less doorbell kicks and shadow doorbells (Doorbell
// Buffer Config's shadow and EventIdx pages).
#include <atomic>

#include "base/error.hpp"
#include "devices/nvme/nvme_controller.hpp"

namespace vmm::nvme {

// ---------------------------------------------------------------------------------------------
// Doorbells (§3.1.24, §3.1.25; invalid writes §5.2.1 Figure 147).

void NvmeController::invalid_doorbell(u32 info, u64 offset, u32 value)
{
    guest_error(info == AEN_ERROR_INVALID_DOORBELL ? "doorbell of a queue that does not exist"
                                                   : "doorbell value past the queue",
        (offset << 32) | value);
    record_error(0xFFFF, 0xFFFF, Status::InvalidField, 0);
    queue_event(AEN_TYPE_ERROR, info, LOG_ERROR_INFORMATION);
}

void NvmeController::doorbell(u64 offset, u32 value)
{
    if (!(m_csts & CSTS_RDY) || m_resetting || (m_csts & CSTS_CFS))
        return guest_error("doorbell while the controller is not ready", offset);
    u64 const index = (offset - REG_DOORBELL_BASE) / DOORBELL_STRIDE;
    u64 const qid = index / 2;
    if (qid >= m_sqs.size())
        return invalid_doorbell(AEN_ERROR_INVALID_DOORBELL, offset, value);
    if ((index & 1) == 0)
        sq_tail_written(static_cast<u16>(qid), value, offset);
    else
        cq_head_written(static_cast<u16>(qid), value, offset);
}

void NvmeController::doorbell_kick(u64 offset)
{
    VMM_ASSERT(!m_in_process);
    m_in_process = true;
    u64 const index = offset >= REG_DOORBELL_BASE ? (offset - REG_DOORBELL_BASE) / DOORBELL_STRIDE : 0;
    if (offset < REG_DOORBELL_BASE || offset >= BAR0_BYTES || (offset & 3) != 0) {
        guest_error("doorbell kick outside the doorbells", offset);
    } else if (m_shadow_doorbells == 0 || index < 2) {
        // The admin queue has no shadow doorbells (Linux pci.c nvme_dbbuf_init skips qid 0).
        guest_error("doorbell kick without a shadow doorbell value", offset);
    } else if (auto value = shadow_value(index)) {
        doorbell(offset, *value);
    }
    raise_due_interrupts();
    m_in_process = false;
}

void NvmeController::sq_tail_written(u16 qid, u32 value, u64 offset)
{
    auto& sq = m_sqs[qid];
    if (!sq.live || sq.deleting)
        return invalid_doorbell(AEN_ERROR_INVALID_DOORBELL, offset, value);
    if (value >= sq.size)
        return invalid_doorbell(AEN_ERROR_INVALID_DOORBELL_VALUE, offset, value);
    sq.tail = value;
    process_sq(qid);
}

void NvmeController::cq_head_written(u16 qid, u32 value, u64 offset)
{
    auto& cq = m_cqs[qid];
    if (!cq.live)
        return invalid_doorbell(AEN_ERROR_INVALID_DOORBELL, offset, value);
    // The new head may not pass entries the controller has not posted.
    u32 const posted = (cq.tail + cq.size - cq.head) % cq.size;
    u32 const consumed = (value + cq.size - cq.head) % cq.size;
    if (value >= cq.size || consumed > posted)
        return invalid_doorbell(AEN_ERROR_INVALID_DOORBELL_VALUE, offset, value);
    cq.head = value;
    drain_backlog(qid);
}

std::optional<u32> NvmeController::shadow_value(u64 index)
{
    // The guest writes these words while we read them: one atomic load each (a 4-byte aligned
    // word inside a checked page), then the value is validated like a doorbell write.
    auto view = m_memory.contiguous(mem::Gpa { m_shadow_doorbells + index * DOORBELL_STRIDE }, 4);
    if (!view.has_value()) {
        fail_controller("shadow doorbell page no longer in guest RAM", m_shadow_doorbells);
        return std::nullopt;
    }
    return std::atomic_ref<u32>(*reinterpret_cast<u32*>(view->data())).load(std::memory_order_acquire);
}

void NvmeController::write_event_index(u64 index, u32 value)
{
    auto view = m_memory.contiguous(mem::Gpa { m_event_indexes + index * DOORBELL_STRIDE }, 4);
    if (!view.has_value())
        return fail_controller("EventIdx page no longer in guest RAM", m_event_indexes);
    std::atomic_ref<u32>(*reinterpret_cast<u32*>(view->data())).store(value, std::memory_order_release);
}

bool NvmeController::refresh_cq_head(u16 cqid)
{
    // With shadow doorbells the guest moves the CQ head in memory and rings only past EventIdx;
    // a full CQ looks there before giving up. False if the shadow value is invalid.
    if (m_shadow_doorbells == 0 || cqid == 0)
        return true;
    u64 const index = 2u * cqid + 1;
    auto value = shadow_value(index);
    if (!value)
        return false;
    auto& cq = m_cqs[cqid];
    u32 const posted = (cq.tail + cq.size - cq.head) % cq.size;
    u32 const consumed = (*value + cq.size - cq.head) % cq.size;
    if (*value >= cq.size || consumed > posted) {
        invalid_doorbell(AEN_ERROR_INVALID_DOORBELL_VALUE, REG_DOORBELL_BASE + index * DOORBELL_STRIDE, *value);
        return false;
    }
    cq.head = *value;
    write_event_index(index, cq.head);
    return true;
}

} // namespace vmm::nvme

// SPDX-License-Identifier: MIT
// DynamicMemory: hot-add. Requests use the range-only (16-byte) form, start on a hot-add block
// boundary, cover whole blocks, strictly increase and never overlap: the safe pattern of
// docs/guest-interface.md §9.4 (Linux then builds region == range, hv_balloon.c:1010-1026; a
// retry after a transient failure resumes inside that region without gaps). Every slot under
// the range is registered before the request leaves (§9.3).
#include "devices/hv_balloon/dynamic_memory.hpp"

#include <algorithm>
#include <vector>

#include "base/log.hpp"
#include "base/wire.hpp"

namespace vmm::hv_balloon {

namespace {
constexpr std::string_view COMPONENT = "hv_balloon";
// Linux 6.1 adds memory in 128 MiB blocks whatever it reports (hv_balloon.c:503-504 HA_CHUNK).
constexpr mem::PageCount LINUX_HOT_ADD_BLOCK { (128ull << 20) / mem::PAGE_SIZE };

std::uint64_t align_up(std::uint64_t value, std::uint64_t alignment)
{
    return (value + alignment - 1) / alignment * alignment;
}
} // namespace

mem::PageCount DynamicMemory::hot_add_block() const
{
    std::uint64_t guest = m_caps ? m_caps->hot_add_alignment_bytes() / mem::PAGE_SIZE : 0;
    return mem::PageCount { std::max(guest, LINUX_HOT_ADD_BLOCK.raw()) };
}

std::string_view DynamicMemory::hot_add_blocked_reason() const
{
    if (!m_caps || !m_caps->hot_add())
        return "cannot grow: the guest does not support hot-add";
    if (!m_memslots || !m_map.hot_add_window())
        return "cannot grow: no hot-add window configured";
    if (m_hot_add_disabled)
        return "cannot grow: the guest disabled hot-add";
    if (m_hot_add_exhausted)
        return "cannot grow: the guest hit its physical hot-add limit";
    return "cannot grow: the hot-add window is used up";
}

bool DynamicMemory::hot_add_available() const
{
    if (!m_caps || !m_caps->hot_add() || !m_memslots || !m_map.hot_add_window() || m_hot_add_disabled
        || m_hot_add_exhausted)
        return false;
    auto window = *m_map.hot_add_window();
    std::uint64_t block = hot_add_block().raw();
    mem::Gpn cursor = m_hot_add_cursor.value_or(mem::Gpn { align_up(window.start.raw(), block) });
    return cursor < window.end() && (window.end() - cursor).raw() >= block;
}

void DynamicMemory::begin_hot_add(mem::PageCount wanted)
{
    auto window = *m_map.hot_add_window();
    std::uint64_t block = hot_add_block().raw();
    mem::Gpn cursor = m_hot_add_cursor.value_or(mem::Gpn { align_up(window.start.raw(), block) });
    std::uint64_t available = cursor < window.end() ? (window.end() - cursor).raw() / block * block : 0;
    // Per-message cap, in whole blocks, within the 24-bit page count of a DM page range.
    std::uint64_t cap = std::min(m_config.max_hot_add_pages_per_request.raw(), DmPageRange::MAX_COUNT) / block * block;
    // Rounding up to whole blocks may overshoot the target; the planner balloons the excess.
    std::uint64_t count = std::min({ align_up(wanted.raw(), block), std::max(cap, block), available });
    if (count == 0) {
        finish_operation(OperationState::Failed, hot_add_blocked_reason());
        return;
    }
    mem::PageRange range { cursor, mem::PageCount { count } };
    m_hot_add_cursor = cursor;
    auto mapped = m_memslots->ensure_mapped(range);
    if (!mapped) {
        ++m_counters.memslot_failures;
        log::error(COMPONENT, "hot-add of {} not sent: memslot setup failed: {}", range, mapped.error());
        finish_operation(OperationState::Failed, "memslot setup failed");
        return;
    }
    m_hot_add_in_flight = range;
    send_hot_add_request();
}

void DynamicMemory::send_hot_add_request()
{
    VMM_ASSERT(m_hot_add_in_flight.has_value());
    auto range = *m_hot_add_in_flight;
    DmHotAddRequest request {
        DmHeader { static_cast<std::uint16_t>(DmMessageType::DM_MEM_HOT_ADD_REQUEST), sizeof(DmHotAddRequest), next_trans_id() },
        DmPageRange::make(range.start.raw(), range.count.raw()),
    };
    switch (send(wire_bytes(request))) {
    case SendOutcome::Sent: {
        ++m_counters.hot_add_requests;
        auto blocks = static_cast<std::int64_t>(range.count.raw() / LINUX_HOT_ADD_BLOCK.raw());
        enter(State::HotAddWaitReply, m_config.hot_add_reply_timeout_base + blocks * m_config.hot_add_reply_timeout_per_block);
        return;
    }
    case SendOutcome::Busy:
        enter(State::HotAddWaitRingSpace, m_config.ring_space_timeout);
        return;
    case SendOutcome::Failed:
        m_hot_add_in_flight.reset();
        finish_operation(OperationState::Failed, "could not send the hot-add request");
        enter(State::Idle);
        return;
    }
}

// Linux answers hot-add requests one at a time and in order (one work item, hv_balloon.c:1555-1581
// schedule_work(&ha_wrk.wrk); hot_add_req() sends one response per run, :1060-1071), and a
// response names no range: its trans_id is the guest's own counter (:1067). A request that
// arrives before the previous one's work ran overwrites it (:1567-1579), so two requests can get
// one answer. The host can match answers to requests only by order, so it never has two
// outstanding: after a timeout, step() holds further hot-add until the late answer comes
// (docs/guest-interface.md §9.4), and that answer is judged exactly as it would have been on
// time. Without this, a request sent after the timeout took the late answer for its own: a full
// 128 MiB answer to a 384 MiB request read as "fewer pages than asked" and ended hot-add for
// the boot (e2e dm-balance, issue 15), and the range the guest did add went unrecorded.
void DynamicMemory::handle_hot_add_response(std::span<std::byte const> message)
{
    if (message.size() < sizeof(DmHotAddResponse)) {
        ++m_counters.malformed_packets;
        return;
    }
    auto response = wire_from<DmHotAddResponse>(message);
    bool const late = m_hot_add_late.has_value();
    bool const expected = !late && m_state == State::HotAddWaitReply && m_hot_add_in_flight;
    if (!expected && !late) {
        ++m_counters.unsolicited_messages;
        VMM_GUEST_WARN(COMPONENT, "hot-add response in state {}", state_name(m_state));
        return;
    }
    auto range = late ? *m_hot_add_late : *m_hot_add_in_flight;
    std::uint64_t added = response.page_count;
    if (added > range.count.raw()) {
        ++m_counters.hot_add_overreports;
        VMM_GUEST_WARN(COMPONENT, "hot-add response claims {} pages of {} requested", added, range.count.raw());
        added = range.count.raw();
    }
    if (added > 0) {
        // Cannot overlap: ranges strictly increase and each is recorded once.
        auto recorded = m_map.add_hot_added({ range.start, mem::PageCount { added } });
        VMM_ASSERT(recorded.has_value());
        m_counters.hot_added_pages_total += added;
        m_hot_add_cursor = std::max(m_hot_add_cursor.value_or(range.end()), range.end());
    }
    if (late) {
        m_hot_add_late.reset();
        log::info(COMPONENT, "late answer to the timed-out hot-add of {}: {} pages added", range, added);
        if (added == 0 && response.result != 1)
            m_hot_add_cursor = range.start; // Transient, and nothing was sent since: retry it.
    } else {
        m_hot_add_in_flight.reset();
    }
    // The guest's verdict on hot-add, whenever it came.
    if (added > 0 && added < range.count.raw()) {
        // "page_count less than requested: assume all further hot adds fail" (hv_balloon.c:355-358).
        m_hot_add_exhausted = true;
    } else if (added == 0 && response.result == 1) {
        // Success with 0 pages = permanent: hot-add is off in this guest (hv_balloon.c:1043-1056).
        m_hot_add_disabled = true;
    }
    if (late) {
        // An operation that waited for this answer (step()) goes on; none runs if it was
        // superseded by a shrink or finished meanwhile.
        if (m_state == State::Idle && operation_running()) {
            update_progress(OperationKind::HotAdd);
            step();
        }
        return;
    }
    update_progress(OperationKind::HotAdd);
    enter(State::Idle);
    if (added > 0 || response.result == 1) {
        step();
        return;
    }
    // Transient (e.g. no memory for the memmap): the same range may be retried by a new target.
    // A newer target that no longer needs to grow just carries on.
    if (operation_running() && m_map.current_pages() >= m_operation->target) {
        step();
        return;
    }
    finish_operation(OperationState::Failed, "the guest could not hot-add now (transient)");
}

mem::PageCount DynamicMemory::release_hot_add()
{
    mem::PageCount released = m_map.hot_added_pages();
    m_map.release_hot_added();
    if (m_memslots) {
        // Remove the slots first, then drop the backing, so nothing can fault it back in
        // (every mapped slot: a guest may have touched backed pages it never was given).
        std::vector<mem::PageRange> mapped;
        for (std::uint32_t index = 0; index < m_memslots->plan().slot_count; ++index) {
            if (m_memslots->slot_mapped(index))
                mapped.push_back(m_memslots->plan().slot_range(index));
        }
        auto removed = m_memslots->reset();
        if (!removed)
            log::error(COMPONENT, "removing hot-add memslots failed: {}", removed.error());
        for (auto range : mapped)
            discard(range);
    }
    m_hot_add_cursor.reset();
    m_hot_add_in_flight.reset();
    m_hot_add_late.reset();
    m_hot_add_exhausted = false;
    return released;
}

} // namespace vmm::hv_balloon

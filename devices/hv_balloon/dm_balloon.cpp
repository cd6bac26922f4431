// SPDX-License-Identifier: MIT
// DynamicMemory: balloon (the guest gives pages; each range validated, then discarded) and
// unballoon (the host returns pages it knows are ballooned, <= 4 KiB per message).
#include "devices/hv_balloon/dynamic_memory.hpp"

#include <algorithm>
#include <cstring>

#include "base/log.hpp"
#include "base/wire.hpp"

namespace vmm::hv_balloon {

namespace {
constexpr std::string_view COMPONENT = "hv_balloon";

DmHeader header(DmMessageType type, std::size_t size_bytes, std::uint32_t trans_id)
{
    return DmHeader { static_cast<std::uint16_t>(type), static_cast<std::uint16_t>(size_bytes), trans_id };
}
} // namespace

void DynamicMemory::send_balloon_request()
{
    DmBalloonRequest request {
        header(DmMessageType::DM_BALLOON_REQUEST, sizeof(DmBalloonRequest), next_trans_id()),
        static_cast<std::uint32_t>(m_balloon_requested.raw()),
        0,
    };
    switch (send(wire_bytes(request))) {
    case SendOutcome::Sent:
        ++m_counters.balloon_requests;
        enter(State::BalloonWaitReply, m_config.balloon_reply_timeout);
        return;
    case SendOutcome::Busy:
        enter(State::BalloonWaitRingSpace, m_config.ring_space_timeout);
        return;
    case SendOutcome::Failed:
        finish_operation(OperationState::Failed, "could not send the balloon request");
        enter(State::Idle);
        return;
    }
}

void DynamicMemory::discard(mem::PageRange range)
{
    ++m_counters.discard_calls;
    auto discarded = m_discard.discard(range);
    if (!discarded) {
        // The pages stay ballooned (the guest gave them up) but keep costing host memory.
        ++m_counters.discard_failures;
        VMM_GUEST_WARN(COMPONENT, "discard of {} failed: {}", range, discarded.error());
    }
}

void DynamicMemory::handle_balloon_response(std::span<std::byte const> message)
{
    if (message.size() < sizeof(DmBalloonResponse)) {
        ++m_counters.malformed_packets;
        return;
    }
    auto response = wire_from<DmBalloonResponse>(message);
    std::uint64_t range_count = response.range_count();
    if (range_count > (message.size() - sizeof(DmBalloonResponse)) / sizeof(DmPageRange)) {
        ++m_counters.malformed_packets;
        VMM_GUEST_WARN(COMPONENT, "balloon response claims {} ranges in {} bytes", range_count, message.size());
        return;
    }
    bool solicited = m_state == State::BalloonWaitReply;
    mem::PageCount accepted { 0 };
    std::uint32_t rejected = 0;
    std::optional<DmRejectedGuestRange> first_rejected;
    // Contiguous accepted ranges are discarded with one call (Linux sends 2 MiB or 4 KiB
    // pieces that are often adjacent).
    std::optional<mem::PageRange> run;
    auto ranges = message.subspan(sizeof(DmBalloonResponse));
    for (std::uint64_t i = 0; i < range_count; ++i) {
        auto range = wire_from<DmPageRange>(ranges.subspan(i * sizeof(DmPageRange)));
        std::expected<mem::PageRange, mem::RejectReason> verdict = std::unexpected(mem::RejectReason::Unsolicited);
        if (solicited) {
            mem::PageCount budget = m_balloon_requested - m_balloon_accepted - accepted;
            verdict = m_map.balloon(range.start(), range.count(), budget);
        } else {
            m_map.count_rejection(mem::RejectReason::Unsolicited);
        }
        if (!verdict) {
            if (rejected++ == 0)
                first_rejected = DmRejectedGuestRange { range.start(), range.count(), verdict.error(), 0 };
            continue;
        }
        accepted += verdict->count;
        if (run && run->end() == verdict->start) {
            run->count += verdict->count;
        } else {
            if (run)
                discard(*run);
            run = *verdict;
        }
    }
    if (run)
        discard(*run);
    if (first_rejected) {
        first_rejected->rejected_in_message = rejected;
        VMM_GUEST_WARN(COMPONENT, "refused {} balloon ranges, first [{:#x}, +{}): {}", rejected,
            first_rejected->start, first_rejected->count, mem::reject_reason_name(first_rejected->reason));
        emit(*first_rejected);
    }
    if (!solicited) {
        ++m_counters.unsolicited_messages;
        return;
    }
    m_balloon_accepted += accepted;
    m_counters.balloon_pages_total += accepted.raw();
    update_progress(OperationKind::Balloon);
    if (response.more_pages()) {
        enter(State::BalloonWaitReply, m_config.balloon_reply_timeout); // Progress restarts the clock.
        return;
    }
    enter(State::Idle);
    // (Only if the operation still wants to shrink: a newer target may want the opposite.)
    if (m_balloon_accepted < m_balloon_requested && operation_running()
        && m_map.current_pages() > m_operation->target) {
        // Linux stops at its balloon floor or when allocations fail (hv_balloon.c:1302-1310);
        // asking again would just return nothing, so the operation ends here.
        finish_operation(OperationState::Failed, "the guest gave fewer pages than requested (balloon floor)");
        return;
    }
    step();
}

void DynamicMemory::send_unballoon_request()
{
    VMM_ASSERT(operation_running());
    mem::PageCount current = m_map.current_pages();
    mem::PageCount target = m_operation->target;
    mem::PageCount wanted = target > current ? std::min(target - current, m_map.ballooned_pages()) : mem::PageCount { 0 };
    // Capped per round (DEFAULT_MAX_UNBALLOON_PAGES_PER_REQUEST: the guest frees them in softirq).
    wanted = std::min(wanted, std::max(m_config.max_unballoon_pages_per_request, mem::PageCount { 1 }));
    // One message <= 4096 bytes: 510 ranges; each range's count is 24 bits.
    std::array<DmPageRange, DM_MAX_UNBALLOON_RANGES> ranges;
    std::array<mem::PageRange, DM_MAX_UNBALLOON_RANGES> taken;
    std::size_t count = 0;
    mem::PageCount pages { 0 };
    while (count < ranges.size() && pages < wanted) {
        auto range = m_map.take_ballooned(std::min(wanted - pages, mem::PageCount { DmPageRange::MAX_COUNT }));
        if (!range)
            break;
        taken[count] = *range;
        ranges[count++] = DmPageRange::make(range->start.raw(), range->count.raw());
        pages += range->count;
    }
    if (count == 0) {
        enter(State::Idle);
        step();
        return;
    }
    std::array<std::byte, DM_MAX_HOST_MESSAGE_BYTES> buffer;
    std::size_t size_bytes = sizeof(DmUnballoonRequest) + count * sizeof(DmPageRange);
    // more_pages = 0 on every message: each is its own transaction with its own response, so
    // the host never has more than 4 KiB in flight and sees progress per message.
    DmUnballoonRequest request {
        header(DmMessageType::DM_UNBALLOON_REQUEST, size_bytes, next_trans_id()), 0, static_cast<std::uint32_t>(count)
    };
    std::memcpy(buffer.data(), &request, sizeof(request));
    std::memcpy(buffer.data() + sizeof(request), ranges.data(), count * sizeof(DmPageRange));
    auto outcome = send(std::span { buffer }.first(size_bytes));
    if (outcome != SendOutcome::Sent) {
        for (std::size_t i = 0; i < count; ++i)
            m_map.restore_ballooned(taken[i]);
        if (outcome == SendOutcome::Busy) {
            enter(State::UnballoonWaitRingSpace, m_config.ring_space_timeout);
        } else {
            finish_operation(OperationState::Failed, "could not send the unballoon request");
            enter(State::Idle);
        }
        return;
    }
    ++m_counters.unballoon_requests;
    m_unballoon_in_flight = pages;
    enter(State::UnballoonWaitReply, m_config.unballoon_reply_timeout);
}

void DynamicMemory::handle_unballoon_response(std::span<std::byte const> message)
{
    if (message.size() < sizeof(DmUnballoonResponse)) {
        ++m_counters.malformed_packets;
        return;
    }
    if (m_state != State::UnballoonWaitReply) {
        ++m_counters.unsolicited_messages;
        VMM_GUEST_WARN(COMPONENT, "unballoon response in state {}", state_name(m_state));
        return;
    }
    m_counters.unballoon_pages_total += m_unballoon_in_flight.raw();
    m_unballoon_in_flight = mem::PageCount { 0 };
    update_progress(OperationKind::Unballoon);
    enter(State::Idle);
    step();
}

} // namespace vmm::hv_balloon

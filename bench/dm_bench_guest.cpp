// SPDX-License-Identifier: MIT
// BenchDmGuest: Linux 6.1 hv_balloon.c message layouts, answering immediately.
#include "bench/dm_bench_guest.hpp"

#include <algorithm>
#include <cstring>

#include "base/wire.hpp"

namespace vmm::bench {

using namespace vmm::hv_balloon;

namespace {

// hv_balloon.c:1770-1796: balloon, hot-add, alignment 2^7 MiB.
constexpr std::uint64_t LINUX_CAPS = 0x1F;
// A balloon response is one 4 KiB message (hv_balloon.c:1250-1252 alloc_balloon_pages).
constexpr std::size_t MAX_RANGES_PER_RESPONSE = (4096 - sizeof(DmBalloonResponse)) / sizeof(DmPageRange);

DmHeader header(DmMessageType type, std::size_t size, std::uint32_t trans_id)
{
    return DmHeader { static_cast<std::uint16_t>(type), static_cast<std::uint16_t>(size), trans_id };
}

} // namespace

Result<void> BenchDmGuest::connect()
{
    VMM_TRY(m_transport.open(m_engine));
    DmVersionRequest version { header(DmMessageType::DM_VERSION_REQUEST, sizeof(DmVersionRequest), ++m_trans_id),
        DYNMEM_PROTOCOL_VERSION_3, 1 };
    m_transport.send(wire_bytes(version));
    run_until_quiet();
    DmCapabilities caps { header(DmMessageType::DM_CAPABILITIES_REPORT, sizeof(DmCapabilities), ++m_trans_id),
        LINUX_CAPS, 0, ~std::uint64_t { 0 } };
    m_transport.send(wire_bytes(caps));
    run_until_quiet();
    if (m_engine.state() != State::Idle)
        return fail(Errc::GuestProtocol, "DM handshake did not reach Idle", static_cast<std::uint64_t>(m_engine.state()));
    return {};
}

void BenchDmGuest::run_until_quiet()
{
    while (auto message = m_transport.receive())
        handle(*message);
}

void BenchDmGuest::handle(HostMessage const& message)
{
    std::span<std::byte const> bytes { message.bytes };
    if (bytes.size() < sizeof(DmHeader)) {
        ++unexpected_messages;
        return;
    }
    auto hdr = wire_from<DmHeader>(bytes);
    switch (static_cast<DmMessageType>(hdr.type)) {
    case DmMessageType::DM_VERSION_RESPONSE:
    case DmMessageType::DM_CAPABILITIES_RESPONSE:
    case DmMessageType::DM_INFO_MESSAGE:
        return;
    case DmMessageType::DM_BALLOON_REQUEST:
        ++balloon_requests;
        return answer_balloon(wire_from<DmBalloonRequest>(bytes).num_pages);
    case DmMessageType::DM_UNBALLOON_REQUEST: {
        // Linux frees the pages and answers once per request with more_pages = 0
        // (hv_balloon.c:1396-1430 balloon_down).
        auto request = wire_from<DmUnballoonRequest>(bytes);
        ++unballoon_requests;
        last_unballoon_at = message.at;
        unballoon_ranges += request.range_count;
        for (std::uint32_t i = 0; i < request.range_count; ++i)
            unballoon_pages += wire_from<DmPageRange>(bytes.subspan(sizeof(DmUnballoonRequest) + i * sizeof(DmPageRange))).count();
        DmUnballoonResponse response { header(DmMessageType::DM_UNBALLOON_RESPONSE, sizeof(DmUnballoonResponse), ++m_trans_id) };
        m_transport.send(wire_bytes(response));
        return;
    }
    case DmMessageType::DM_MEM_HOT_ADD_REQUEST: {
        auto request = wire_from<DmHotAddRequest>(bytes);
        if (hot_add_requests++ == 0)
            first_hot_add_at = message.at;
        hot_add_pages += request.range.count();
        DmHotAddResponse response { header(DmMessageType::DM_MEM_HOT_ADD_RESPONSE, sizeof(DmHotAddResponse), ++m_trans_id),
            static_cast<std::uint32_t>(request.range.count()), 1 };
        m_transport.send(wire_bytes(response));
        return;
    }
    default:
        ++unexpected_messages;
        return;
    }
}

void BenchDmGuest::answer_balloon(std::uint32_t num_pages)
{
    // balloon_up (hv_balloon.c:1283-1371): responses of <= 510 ranges until num_pages are given
    // or the guest has nothing more; the last one has more_pages = 0.
    std::uint64_t remaining = num_pages;
    std::array<std::byte, 4096> buffer;
    std::array<DmPageRange, MAX_RANGES_PER_RESPONSE> ranges;
    while (true) {
        std::size_t count = 0;
        while (count < ranges.size() && remaining > 0 && m_next < m_source.size()) {
            mem::PageRange const& source = m_source[m_next];
            std::uint64_t take = std::min(source.count.raw() - m_split, remaining);
            ranges[count++] = DmPageRange::make(source.start.raw() + m_split, take);
            remaining -= take;
            m_split += take;
            if (m_split == source.count.raw()) {
                ++m_next;
                m_split = 0;
            }
        }
        bool const more = remaining > 0 && m_next < m_source.size();
        std::size_t const size = sizeof(DmBalloonResponse) + count * sizeof(DmPageRange);
        DmBalloonResponse head { header(DmMessageType::DM_BALLOON_RESPONSE, size, ++m_trans_id), 0,
            static_cast<std::uint32_t>((count << 1) | (more ? 1 : 0)) };
        std::memcpy(buffer.data(), &head, sizeof(head));
        std::memcpy(buffer.data() + sizeof(head), ranges.data(), count * sizeof(DmPageRange));
        ++balloon_responses;
        m_transport.send(std::span { buffer }.first(size));
        if (!more)
            return;
    }
}

} // namespace vmm::bench

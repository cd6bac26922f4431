// SPDX-License-Identifier: MIT
// FakeLinuxGuest: Linux 6.1 hv_balloon.c behaviour, plus safety checks on every host message.
#include "tests/support/dm_fake_guest.hpp"

#include <cstring>

#include <fmt/format.h>

#include "base/wire.hpp"

namespace vmm::test {

using namespace vmm::hv_balloon;
using mem::Gpn;
using mem::PageCount;
using mem::PageRange;

namespace {

constexpr std::uint32_t PAGES_IN_2M = 512;      // hv_balloon.c:499
constexpr std::uint64_t HA_CHUNK = 32768;       // hv_balloon.c:500: 128 MiB in pages

template<Wire T>
std::vector<std::byte> bytes_of(T const& value)
{
    auto bytes = wire_bytes(value);
    return { bytes.begin(), bytes.end() };
}

DmHeader header(DmMessageType type, std::size_t size, std::uint32_t trans_id)
{
    return DmHeader { static_cast<std::uint16_t>(type), static_cast<std::uint16_t>(size), trans_id };
}

} // namespace

std::vector<std::byte> dm_version_request(std::uint32_t trans_id, std::uint32_t version, bool last)
{
    return bytes_of(DmVersionRequest { header(DmMessageType::DM_VERSION_REQUEST, 16, trans_id), version, last ? 1u : 0u });
}

std::vector<std::byte> dm_caps_report(std::uint32_t trans_id, std::uint64_t caps)
{
    // hv_balloon.c:1770-1796: min_page_cnt 0, max_page_number -1.
    return bytes_of(DmCapabilities { header(DmMessageType::DM_CAPABILITIES_REPORT, 32, trans_id), caps, 0, ~0ull });
}

std::vector<std::byte> dm_status_report(std::uint32_t trans_id, std::uint64_t avail, std::uint64_t committed)
{
    return bytes_of(DmStatusReport { header(DmMessageType::DM_STATUS_REPORT, 48, trans_id), avail, committed, 0, 0, 0, 0 });
}

std::vector<std::byte> dm_balloon_response(std::uint32_t trans_id, bool more, std::span<DmPageRange const> ranges)
{
    std::size_t size = sizeof(DmBalloonResponse) + ranges.size() * sizeof(DmPageRange);
    DmBalloonResponse head { header(DmMessageType::DM_BALLOON_RESPONSE, size, trans_id), 0,
        static_cast<std::uint32_t>((ranges.size() << 1) | (more ? 1 : 0)) };
    std::vector<std::byte> message(size);
    std::memcpy(message.data(), &head, sizeof(head));
    if (!ranges.empty())
        std::memcpy(message.data() + sizeof(head), ranges.data(), ranges.size() * sizeof(DmPageRange));
    return message;
}

std::vector<std::byte> dm_unballoon_response(std::uint32_t trans_id)
{
    return bytes_of(DmUnballoonResponse { header(DmMessageType::DM_UNBALLOON_RESPONSE, 8, trans_id) });
}

std::vector<std::byte> dm_hot_add_response(std::uint32_t trans_id, std::uint32_t page_count, std::uint32_t result)
{
    return bytes_of(DmHotAddResponse { header(DmMessageType::DM_MEM_HOT_ADD_RESPONSE, 16, trans_id), page_count, result });
}

FakeLinuxGuest::FakeLinuxGuest(DynamicMemory& engine, FakeChannelPort& port, FakeGuestOptions opts)
    : options(std::move(opts))
    , m_engine(engine)
    , m_port(port)
{
    for (auto range : options.free_ram)
        free.insert(range);
}

void FakeLinuxGuest::open_channel()
{
    m_engine.on_open(m_port);
    m_next_version = 0;
    auto first = options.versions.at(m_next_version++);
    outbox.push_back(dm_version_request(next_trans_id(), first, m_next_version == options.versions.size()));
    pump();
}

void FakeLinuxGuest::reboot()
{
    // The new kernel owns every page again; the host decides what exists (hot-add is gone).
    for (auto range : ballooned)
        free.insert(range);
    ballooned.clear();
    for (auto range : hot_added)
        free.remove(range);
    hot_added.clear();
    outbox.clear();
    version.reset();
    caps_accepted = false;
    m_port.sent.clear();
}

void FakeLinuxGuest::pump()
{
    for (int rounds = 0; rounds < 1'000'000; ++rounds) {
        if (!m_port.sent.empty()) {
            process_host();
            continue;
        }
        if (!deliver_one())
            return;
    }
    violation("pump did not settle");
}

void FakeLinuxGuest::process_host()
{
    while (!m_port.sent.empty()) {
        auto message = std::move(m_port.sent.front());
        m_port.sent.pop_front();
        handle(message);
    }
}

bool FakeLinuxGuest::deliver_one()
{
    if (outbox.empty())
        return false;
    auto message = std::move(outbox.front());
    outbox.pop_front();
    m_engine.on_packet(message);
    return true;
}

void FakeLinuxGuest::send_status(std::uint64_t avail, std::uint64_t committed)
{
    m_engine.on_packet(dm_status_report(next_trans_id(), avail, committed));
}

void FakeLinuxGuest::handle(std::span<std::byte const> message)
{
    // The guest receives into a 4 KiB buffer (hv_balloon.c:1528-1530).
    if (message.size() > 4096)
        return violation(fmt::format("host message of {} bytes exceeds the 4 KiB receive buffer", message.size()));
    if (message.size() < sizeof(DmHeader))
        return violation("host message shorter than a DM header");
    auto hdr = wire_from<DmHeader>(message);
    if (hdr.size != message.size())
        violation(fmt::format("hdr.size {} != packet {}", std::uint16_t { hdr.size }, message.size()));
    switch (static_cast<DmMessageType>(hdr.type)) {
    case DmMessageType::DM_VERSION_RESPONSE: return on_version_response(message);
    case DmMessageType::DM_CAPABILITIES_RESPONSE:
        if (!version)
            violation("capabilities response before version accepted");
        caps_accepted = wire_from<DmCapabilitiesResponse>(message).flags & 1;
        return;
    case DmMessageType::DM_BALLOON_REQUEST:
        if (!caps_accepted)
            violation("balloon request before the handshake finished");
        if (options.ignore_balloon)
            return;
        return on_balloon_request(wire_from<DmBalloonRequest>(message).num_pages);
    case DmMessageType::DM_UNBALLOON_REQUEST:
        if (options.ignore_balloon)
            return;
        return on_unballoon_request(message);
    case DmMessageType::DM_MEM_HOT_ADD_REQUEST: return on_hot_add_request(message);
    case DmMessageType::DM_INFO_MESSAGE:
        if (message.size() >= sizeof(DmInfoMaxPageCount)) {
            auto info = wire_from<DmInfoMaxPageCount>(message);
            if (info.info_type == INFO_TYPE_MAX_PAGE_CNT && info.data_size == 8)
                info_max_pages = std::uint64_t { info.max_page_count };
        }
        return;
    default:
        return violation(fmt::format("unexpected host message type {}", std::uint16_t { hdr.type }));
    }
}

void FakeLinuxGuest::on_version_response(std::span<std::byte const> message)
{
    bool accepted = wire_from<DmVersionResponse>(message).flags & 1;
    if (accepted) {
        if (version)
            violation("second version response");
        version = options.versions.at(m_next_version - 1);
        outbox.push_back(dm_caps_report(next_trans_id(), options.caps));
        return;
    }
    // hv_balloon.c:1436-1480: try the next older version; none left -> probe fails.
    if (m_next_version >= options.versions.size())
        return;
    auto next = options.versions[m_next_version++];
    outbox.push_back(dm_version_request(next_trans_id(), next, m_next_version == options.versions.size()));
}

std::uint32_t FakeLinuxGuest::allocate(std::uint32_t num_pages, std::uint32_t unit, std::vector<DmPageRange>& ranges)
{
    // alloc_balloon_pages (hv_balloon.c:1233-1281): stop when the 4 KiB message is full.
    std::uint32_t i = 0;
    for (; i < num_pages / unit; ++i) {
        if (sizeof(DmBalloonResponse) + (ranges.size() + 1) * sizeof(DmPageRange) > 4096)
            return i * unit;
        std::optional<PageRange> found;
        if (unit == 1) {
            found = free.pop_front(PageCount { 1 });
        } else {
            for (auto run : free) {
                std::uint64_t aligned = (run.start.raw() + unit - 1) / unit * unit;
                if (aligned + unit <= run.end().raw()) {
                    found = PageRange { Gpn { aligned }, PageCount { unit } };
                    break;
                }
            }
            if (found)
                free.remove(*found);
        }
        if (!found)
            return i * unit;
        ballooned.insert(*found);
        ranges.push_back(DmPageRange::make(found->start.raw(), unit));
    }
    return i * unit;
}

void FakeLinuxGuest::on_balloon_request(std::uint32_t requested)
{
    ++balloon_requests;
    balloon_request_pages.push_back(requested);
    // balloon_up (hv_balloon.c:1283-1371).
    std::uint64_t num_pages = requested;
    std::uint64_t avail = free.total().raw();
    std::uint64_t floor = options.floor.raw();
    if (avail < num_pages || avail - num_pages < floor)
        num_pages = avail > floor ? avail - floor : 0;
    std::uint32_t unit = options.try_2m ? PAGES_IN_2M : 1;
    std::uint32_t ballooned_now = 0;
    std::uint32_t remaining = static_cast<std::uint32_t>(num_pages);
    for (bool done = false; !done;) {
        std::vector<DmPageRange> ranges;
        remaining -= ballooned_now;
        ballooned_now = allocate(remaining, unit, ranges);
        if (unit != 1 && ballooned_now == 0) {
            unit = 1;
            continue;
        }
        bool more = true;
        if (ballooned_now == 0 || ballooned_now == remaining) {
            more = false;
            done = true;
        }
        outbox.push_back(dm_balloon_response(next_trans_id(), more, ranges));
    }
}

void FakeLinuxGuest::on_unballoon_request(std::span<std::byte const> message)
{
    ++unballoon_requests;
    auto request = wire_from<DmUnballoonRequest>(message);
    std::uint64_t count = request.range_count;
    if (sizeof(DmUnballoonRequest) + count * sizeof(DmPageRange) > message.size())
        return violation("unballoon range_count runs past the message (guest reads past its buffer)");
    unballoon_request_pages.push_back(0);
    for (std::uint64_t i = 0; i < count; ++i) {
        auto raw = wire_from<DmPageRange>(message.subspan(sizeof(DmUnballoonRequest) + i * sizeof(DmPageRange)));
        PageRange range { Gpn { raw.start() }, PageCount { raw.count() } };
        unballoon_request_pages.back() += raw.count();
        // free_balloon_pages() trusts the host blindly (hv_balloon.c:1213-1228): double free.
        if (range.empty() || !ballooned.contains_all(range)) {
            violation(fmt::format("unballoon of pages the guest has not ballooned: {}", range));
            continue;
        }
        ballooned.remove(range);
        free.insert(range);
    }
    if (request.more_pages & 1)
        return;
    outbox.push_back(dm_unballoon_response(next_trans_id()));
}

void FakeLinuxGuest::on_hot_add_request(std::span<std::byte const> message)
{
    ++hot_add_requests;
    hot_add_request_sizes.push_back(static_cast<std::uint16_t>(message.size()));
    if (message.size() < sizeof(DmHotAddRequest))
        return violation("short hot-add request");
    auto raw = wire_from<DmHotAddRequest>(message).range;
    PageRange range { Gpn { raw.start() }, PageCount { raw.count() } };
    // The safe pattern (docs/guest-interface.md §9.4).
    if (range.start.raw() % HA_CHUNK != 0 || range.count.raw() % HA_CHUNK != 0 || range.empty())
        violation(fmt::format("hot-add range {} not in whole 128 MiB blocks", range));
    if (hot_added.intersects(range))
        violation(fmt::format("hot-add range {} overlaps memory added before (double online)", range));
    if (options.is_backed && !options.is_backed(range))
        violation(fmt::format("hot-add range {} is not backed before the request", range));
    std::uint32_t added = 0;
    std::uint32_t result = 1;
    switch (options.hot_add) {
    case HotAddBehaviour::Full: added = static_cast<std::uint32_t>(range.count.raw()); break;
    case HotAddBehaviour::Partial: added = static_cast<std::uint32_t>(HA_CHUNK); break;
    case HotAddBehaviour::Transient: result = 0; break;
    case HotAddBehaviour::Permanent: break;
    case HotAddBehaviour::OverReport: added = static_cast<std::uint32_t>(range.count.raw()); break;
    case HotAddBehaviour::Ignore: return;
    }
    if (added > 0) {
        PageRange taken { range.start, PageCount { std::min<std::uint64_t>(added, range.count.raw()) } };
        hot_added.insert(taken);
        free.insert(taken);
    }
    std::uint32_t reported = options.hot_add == HotAddBehaviour::OverReport ? added + 1000 : added;
    outbox.push_back(dm_hot_add_response(next_trans_id(), reported, result));
}

} // namespace vmm::test

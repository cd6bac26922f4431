// SPDX-License-Identifier: MIT
// fuzz_hv_balloon driver: actions from bytes, invariants after each (B14/B18):
//  - no page counted twice: ballooned runs lie in usable RAM (boot ∪ hot-added), totals match;
//  - every discarded page was ballooned (or belonged to a window slot released by a reset);
//  - every hot-added page lies in a mapped slot; every hot-add request was backed when sent,
//    whole 128 MiB blocks, inside the window;
//  - every unballooned page had been given by the guest and not yet returned;
//  - host messages fit the guest's 4 KiB buffer and carry an exact hdr.size;
//  - at most one guest operation requested per action.
#include "tests/support/dm_fuzz_driver.hpp"

#include <array>
#include <cstring>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "base/mapping.hpp"
#include "devices/hv_balloon/dynamic_memory.hpp"
#include "tests/support/dm_fake_guest.hpp"
#include "tests/support/dm_fake_port.hpp"
#include "tests/support/mem_fakes.hpp"

namespace vmm::test {

using namespace vmm::hv_balloon;
using mem::Gpn;
using mem::PageCount;
using mem::PageRange;

namespace {

constexpr std::uint64_t MIB_PAGES_F = 256;
constexpr std::uint64_t BLOCK = 128 * MIB_PAGES_F;
// Boot RAM [0, 640 KiB) + [1 MiB, 64 MiB); window [256 MiB, 1280 MiB) in 256 MiB slots.
constexpr PageRange BOOT_LOW { Gpn { 0 }, PageCount { 160 } };
constexpr PageRange BOOT_MAIN { Gpn { 256 }, PageCount { 64 * MIB_PAGES_F - 256 } };
constexpr PageRange WINDOW { Gpn { 256 * MIB_PAGES_F }, PageCount { 1024 * MIB_PAGES_F } };

class Bytes {
public:
    Bytes(std::uint8_t const* data, std::size_t size)
        : m_data(data)
        , m_size(size)
    {
    }
    bool empty() const { return m_offset >= m_size; }
    std::uint64_t take(unsigned bytes)
    {
        std::uint64_t value = 0;
        for (unsigned i = 0; i < bytes; ++i)
            value |= std::uint64_t { empty() ? std::uint8_t { 0 } : m_data[m_offset++] } << (8 * i);
        return value;
    }
    std::uint64_t below(std::uint64_t bound) { return bound == 0 ? 0 : take(bound > 0xFFFFFF ? 8 : bound > 0xFFFF ? 3 : bound > 0xFF ? 2 : 1) % bound; }

private:
    std::uint8_t const* m_data;
    std::size_t m_size;
    std::size_t m_offset = 0;
};

// Checks each discard against the map at call time.
class CheckingDiscard final : public mem::DiscardBackend {
public:
    Result<void> discard(PageRange range) override
    {
        if (in_cold_discard) {
            // A free-page hint: pages the guest owns now (usable, not ballooned), each once per call.
            ++cold_discards;
            bool ok = map && map->is_usable(range) && !map->ballooned().intersects(range) && !cold_seen.intersects(range);
            if (!ok && failure.empty())
                failure = fmt::format("cold discard of {} the guest does not own, or named twice", range);
            cold_seen.insert(range);
            return {};
        }
        bool ok = map && (map->ballooned().contains_all(range) || (in_reset && WINDOW.contains(range)));
        if (!ok && failure.empty())
            failure = fmt::format("discarded {} which is not ballooned", range);
        // Outside resets, a discard is exactly a range the engine accepted from the guest: learn
        // it here, before the engine can hand the pages back in the same call.
        if (ok && !in_reset && given)
            given->insert(range);
        return {};
    }
    mem::GuestPhysicalMap const* map = nullptr;
    mem::PageRangeSet* given = nullptr;
    bool in_reset = false;
    bool in_cold_discard = false;
    std::uint32_t cold_discards = 0;
    mem::PageRangeSet cold_seen; // This hint call's discarded ranges.
    std::string failure;
};

struct Harness {
    Harness()
        : map(make_map())
        , host(Mapping::reserve(WINDOW.size_bytes()).value())
        , slots(mem::OnDemandMemslots::create(sink, mem::MemslotPlan::make(WINDOW, 4, 0).value(), host.bytes()).value())
        , engine(map, discard, &slots, config())
    {
        discard.map = &map;
        discard.given = &given;
    }
    static mem::GuestPhysicalMap make_map()
    {
        std::array boot { BOOT_LOW, BOOT_MAIN };
        return mem::GuestPhysicalMap::create(boot, WINDOW).value();
    }
    static DmConfig config()
    {
        DmConfig config;
        config.max_balloon_pages_per_request = PageCount { 20000 };
        config.max_hot_add_pages_per_request = PageCount { 2 * BLOCK };
        return config;
    }

    mem::GuestPhysicalMap map;
    Mapping host;
    FakeMemslots sink;
    mem::OnDemandMemslots slots;
    CheckingDiscard discard;
    DynamicMemory engine;
    FakeChannelPort port;
    mem::PageRangeSet given; // Pages the guest reported ballooned and has not got back.
    std::optional<PageRange> last_hot_add;
    // What the host last asked for, so a "cooperative guest" action can answer it properly and
    // the fuzzer reaches the states behind a completed operation.
    DmMessageType last_request = DmMessageType::DM_ERROR;
    std::uint64_t balloon_left = 0;
    Instant now {};
    std::string failure;

    void fail_with(std::string text)
    {
        if (failure.empty())
            failure = std::move(text);
    }
    PageRange pick_range(Bytes& in)
    {
        // Mostly plausible ranges (boot RAM, window, holes nearby), sometimes anything.
        switch (in.below(4)) {
        case 0: return { Gpn { in.below(64 * MIB_PAGES_F + 512) }, PageCount { 1 + in.below(1024) } };
        case 1: return { Gpn { in.below(64 * MIB_PAGES_F / 512) * 512 }, PageCount { 512 } };
        case 2: return { Gpn { WINDOW.start.raw() + in.below(4 * BLOCK) }, PageCount { 1 + in.below(2048) } };
        default: return { Gpn { in.take(5) }, PageCount { in.take(3) } };
        }
    }
    void guest_balloon_response(Bytes& in)
    {
        std::vector<DmPageRange> ranges;
        auto count = in.below(12);
        for (std::uint64_t i = 0; i < count; ++i) {
            auto range = pick_range(in);
            ranges.push_back(DmPageRange::make(range.start.raw(), range.count.raw()));
        }
        // Pages the guest claims to give count as given only if the engine accepts (and so
        // discards) them; CheckingDiscard learns them. A refused range is the guest's loss.
        engine.on_packet(dm_balloon_response(1, in.below(2) == 1, ranges));
    }
    // Answers the last host request the way Linux would (2 MiB or 4 KiB pieces of free RAM).
    void cooperate(Bytes& in)
    {
        switch (last_request) {
        case DmMessageType::DM_BALLOON_REQUEST: {
            std::uint64_t unit = in.below(2) ? 512 : 1;
            std::vector<DmPageRange> ranges;
            ranges.reserve(510); // hv_balloon.c's per-message maximum, filled below.
            mem::PageRangeSet free;
            for (auto run : map.boot_ram())
                free.insert(run);
            for (auto run : map.hot_added())
                free.insert(run);
            for (auto run : map.ballooned())
                free.remove(run);
            while (ranges.size() < 510 && balloon_left >= unit) {
                auto piece = free.pop_front(PageCount { unit });
                if (!piece)
                    break;
                if (piece->count.raw() < unit)
                    continue; // Too short for a 2 MiB piece.
                ranges.push_back(DmPageRange::make(piece->start.raw(), piece->count.raw()));
                balloon_left -= unit;
            }
            bool more = balloon_left > 0 && !ranges.empty() && in.below(4) != 0;
            if (!more)
                last_request = DmMessageType::DM_ERROR;
            engine.on_packet(dm_balloon_response(6, more, ranges));
            return;
        }
        case DmMessageType::DM_UNBALLOON_REQUEST:
            last_request = DmMessageType::DM_ERROR;
            return engine.on_packet(dm_unballoon_response(7));
        case DmMessageType::DM_MEM_HOT_ADD_REQUEST: {
            last_request = DmMessageType::DM_ERROR;
            auto pages = last_hot_add ? last_hot_add->count.raw() : 0;
            if (in.below(4) == 0)
                pages = in.below(pages + 1);
            return engine.on_packet(dm_hot_add_response(8, static_cast<std::uint32_t>(pages), pages ? 1 : in.below(2)));
        }
        default:
            // The handshake, as Linux sends it.
            engine.on_packet(dm_version_request(1, DYNMEM_PROTOCOL_VERSION_3, false));
            engine.on_packet(dm_caps_report(2, 0x1F));
            given.clear();
            return;
        }
    }
    void guest_message(Bytes& in)
    {
        switch (in.below(8)) {
        case 0: {
            static constexpr std::array versions { 0x00020000u, 0x00010000u, 0x00000003u, 0x00030000u, 0u };
            engine.on_packet(dm_version_request(1, versions[in.below(versions.size())], in.below(2)));
            given.clear(); // A version request resets the connection.
            return;
        }
        case 1: return engine.on_packet(dm_caps_report(2, in.take(1)));
        case 2: return engine.on_packet(dm_status_report(3, in.take(4), in.take(4)));
        case 3: return guest_balloon_response(in);
        case 4: return engine.on_packet(dm_unballoon_response(4));
        case 5: {
            std::uint32_t pages = in.below(2) ? (last_hot_add ? static_cast<std::uint32_t>(last_hot_add->count.raw()) : 0)
                                              : static_cast<std::uint32_t>(in.take(4));
            return engine.on_packet(dm_hot_add_response(5, pages, static_cast<std::uint32_t>(in.below(3))));
        }
        default: {
            auto length = in.take(1);
            if (length == 0xFE)
                return cold_discard(in);
            if (length == 0xFF) {
                // A verbatim packet of up to 4 KiB (a balloon response fills at most one page,
                // hv_balloon.c alloc_balloon_pages()): the form tests/fuzz/traffic_to_corpus.py writes a real
                // guest's recorded packets in.
                std::vector<std::byte> verbatim(in.take(2) % 4097);
                for (auto& byte : verbatim)
                    byte = std::byte { static_cast<std::uint8_t>(in.take(1)) };
                return engine.on_packet(verbatim);
            }
            std::vector<std::byte> raw(length % 64);
            for (auto& byte : raw)
                byte = std::byte { static_cast<std::uint8_t>(in.take(1)) };
            if (raw.size() >= 4) {
                raw[0] = std::byte { static_cast<std::uint8_t>(in.below(16)) };
                raw[1] = std::byte { 0 };
                if (in.below(2)) { // A consistent size field half of the time.
                    raw[2] = std::byte { static_cast<std::uint8_t>(raw.size()) };
                    raw[3] = std::byte { 0 };
                }
            }
            return engine.on_packet(raw);
        }
        }
    }
    // One HvExtCallMemoryHeatHint (free page reporting): up to 16 hv_gpa_page_range elements,
    // mostly Linux's 2 MiB form over boot RAM, some 4 KiB ranges, ballooned pages, raw words.
    void cold_discard(Bytes& in)
    {
        std::array<std::uint64_t, 16> elements {};
        auto const count = in.below(elements.size() + 1);
        for (std::uint64_t i = 0; i < count; ++i) {
            switch (in.below(4)) {
            case 0: // largepage = 1, page_size = 0 (2 MiB), additional_pages, base_large_pfn.
                elements[i] = in.below(40) << 21 | 1u << 11 | in.below(4);
                break;
            case 1: {
                auto range = pick_range(in);
                elements[i] = range.start.raw() << 12 | std::min<std::uint64_t>(range.count.raw() - 1, 0x7FF);
                break;
            }
            case 2: { // The start of a ballooned run, which the guest no longer owns.
                auto const& runs = map.ballooned();
                std::uint64_t start = runs.empty() ? 0 : runs.begin()->start.raw();
                elements[i] = start << 12 | in.below(8);
                break;
            }
            default: elements[i] = in.take(8); break;
            }
        }
        discard.in_cold_discard = true;
        discard.cold_discards = 0;
        discard.cold_seen.clear();
        auto const outcome = engine.on_cold_discard(std::span { elements }.first(count));
        discard.in_cold_discard = false;
        // Elements are processed in order up to the first refused one (a rep hypercall).
        if (outcome.accepted != discard.cold_discards)
            fail_with("cold discard accepted count differs from the discards made");
        if (outcome.refused ? outcome.accepted >= count : outcome.accepted != count)
            fail_with("cold discard outcome inconsistent with its element count");
    }
    // Reads what the host sent during one action.
    void check_host_messages()
    {
        int operations = 0;
        while (!port.sent.empty()) {
            auto message = std::move(port.sent.front());
            port.sent.pop_front();
            if (message.size() > 4096 || message.size() < sizeof(DmHeader))
                return fail_with(fmt::format("host message of {} bytes", message.size()));
            auto header = wire_from<DmHeader>(message);
            if (header.size != message.size())
                return fail_with("host hdr.size differs from the packet");
            switch (static_cast<DmMessageType>(header.type)) {
            case DmMessageType::DM_BALLOON_REQUEST:
                ++operations;
                last_request = DmMessageType::DM_BALLOON_REQUEST;
                balloon_left = wire_from<DmBalloonRequest>(message).num_pages;
                break;
            case DmMessageType::DM_UNBALLOON_REQUEST: {
                ++operations;
                last_request = DmMessageType::DM_UNBALLOON_REQUEST;
                auto request = wire_from<DmUnballoonRequest>(message);
                if (sizeof(DmUnballoonRequest) + std::uint64_t { request.range_count } * 8 != message.size())
                    return fail_with("unballoon range_count does not match the message");
                for (std::uint32_t i = 0; i < request.range_count; ++i) {
                    auto raw = wire_from<DmPageRange>(std::span { message }.subspan(16 + 8 * i));
                    PageRange range { Gpn { raw.start() }, PageCount { raw.count() } };
                    if (range.empty() || !given.contains_all(range))
                        return fail_with(fmt::format("unballoon of {} the guest never gave", range));
                    given.remove(range);
                }
                break;
            }
            case DmMessageType::DM_MEM_HOT_ADD_REQUEST: {
                ++operations;
                last_request = DmMessageType::DM_MEM_HOT_ADD_REQUEST;
                if (message.size() != sizeof(DmHotAddRequest))
                    return fail_with("hot-add request not in the range-only form");
                auto raw = wire_from<DmHotAddRequest>(message).range;
                PageRange range { Gpn { raw.start() }, PageCount { raw.count() } };
                if (!WINDOW.contains(range) || range.empty() || range.start.raw() % BLOCK || range.count.raw() % BLOCK)
                    return fail_with(fmt::format("hot-add range {} unaligned or outside the window", range));
                if (!sink.mapped_pages.contains_all(range))
                    return fail_with(fmt::format("hot-add range {} not backed when sent", range));
                if (map.hot_added().intersects(range))
                    return fail_with(fmt::format("hot-add range {} overlaps added memory", range));
                last_hot_add = range;
                break;
            }
            default: break;
            }
        }
        if (operations > 1)
            fail_with("more than one guest operation requested at once");
    }
    void check_invariants()
    {
        if (!discard.failure.empty())
            return fail_with(discard.failure);
        std::uint64_t total = 0;
        for (auto run : map.ballooned()) {
            if (!map.is_usable(run))
                return fail_with(fmt::format("ballooned {} is not usable RAM", run));
            total += run.count.raw();
        }
        if (total != map.ballooned_pages().raw())
            return fail_with("ballooned total mismatch");
        for (auto run : map.hot_added()) {
            if (!sink.mapped_pages.contains_all(run))
                return fail_with(fmt::format("hot-added {} outside a mapped slot", run));
        }
        auto status = engine.status();
        if (status.current != map.boot_pages() + map.hot_added_pages() - map.ballooned_pages())
            return fail_with("current size mismatch");
        if (status.operation && status.operation->done > status.operation->requested)
            return fail_with("operation progress above its request");
    }
    void act(Bytes& in)
    {
        switch (in.below(12)) {
        case 0: engine.on_open(port); given.clear(); break;
        case 10:
        case 11: cooperate(in); break;
        case 1: engine.on_close(); given.clear(); break;
        case 2:
            discard.in_reset = true;
            engine.on_machine_reset();
            discard.in_reset = false;
            given.clear();
            break;
        case 3: (void)engine.set_target(PageCount { in.below(map.max_pages().raw() + 16) }); break;
        case 4:
            now += std::chrono::milliseconds { in.below(70'000) };
            engine.on_tick(now);
            break;
        case 5:
            port.busy = in.below(2) == 1;
            if (!port.busy)
                engine.on_ring_space();
            break;
        default: guest_message(in); break;
        }
        check_host_messages();
        check_invariants();
    }
};

} // namespace

std::string run_dm_fuzz_input(std::uint8_t const* data, std::size_t size, DmStatus* final_status)
{
    Harness harness;
    Bytes in { data, size };
    for (int step = 0; step < 4096 && !in.empty() && harness.failure.empty(); ++step)
        harness.act(in);
    if (final_status)
        *final_status = harness.engine.status();
    return harness.failure;
}

} // namespace vmm::test

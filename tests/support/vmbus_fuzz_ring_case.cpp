// SPDX-License-Identifier: MIT
// Fuzz case (libFuzzer target and corpus replay): ring pages (scattered GPADL pages) filled with fuzz bytes, then (1) a
// RingReader reads every packet it accepts, and (2) a RingWriter writes fuzz-sized packets from a
// fuzz-chosen start index until the ring is full, after which a RingReader over the same ring
// must return exactly those payloads. No page outside the ring may change.
#include <cstring>
#include <set>

#include "devices/vmbus/ring.hpp"
#include "tests/support/vmbus_fakes.hpp"
#include "tests/support/vmbus_fuzz_input.hpp"
#include "tests/support/vmbus_test_guest.hpp"

using namespace vmm;
using namespace vmm::vmbus;

namespace {

// Set when an invariant fails; the case then returns false.
thread_local bool g_violated = false;

void check(bool condition)
{
    if (!condition)
        g_violated = true;
}

void read_everything(mem::GuestMemory const& memory, RingPages const& pages)
{
    RingReader reader { memory, pages };
    if (!reader.start())
        return;
    std::vector<std::byte> buffer;
    for (int i = 0; i < 4096; ++i) {
        auto packet = reader.next(buffer);
        if (!packet || !*packet)
            break;
        check((*packet)->payload.size() + 16 <= buffer.size());
        check(buffer.size() <= pages.data_bytes());
    }
    (void)reader.commit();
    (void)reader.set_interrupt_mask(false);
}

void round_trip(mem::GuestMemory const& memory, RingPages const& pages, vmm::test::FuzzInput& input)
{
    u32 start = input.ConsumeIntegralInRange<u32>(0, pages.data_bytes() / 8 - 1) * 8;
    (void)pages.store(memory, RING_READ_INDEX_OFFSET, start);
    (void)pages.store(memory, RING_WRITE_INDEX_OFFSET, start);
    (void)pages.store(memory, RING_INTERRUPT_MASK_OFFSET, input.ConsumeBool() ? 1 : 0);
    RingWriter writer { memory, pages };
    if (!writer.start()) {
        check(false); // Indices were just made valid.
        return;
    }
    std::vector<std::vector<std::byte>> sent;
    while (input.remaining_bytes() > 0) {
        std::size_t length = input.ConsumeIntegralInRange<std::size_t>(0, pages.data_bytes() + 64);
        std::vector<std::byte> payload(length, std::byte { static_cast<std::uint8_t>(sent.size() + 1) });
        auto space = writer.payload_space_bytes();
        if (!space) {
            check(false);
            return;
        }
        auto written = writer.write(VmPacketType::VM_PKT_DATA_INBAND, 0, sent.size(), payload);
        if (!written) {
                        check(written.error().code() == Errc::Busy || written.error().code() == Errc::InvalidArgument);
            // Whatever payload_space_bytes() promised must have fitted (0 also means "none").
            check(length > *space || *space == 0);
            if (written.error().code() == Errc::Busy)
                break;
            continue;
        }
        check(length <= *space);
        sent.push_back(std::move(payload));
    }
    RingReader reader { memory, pages };
    if (!reader.start()) {
        check(false);
        return;
    }
    std::vector<std::byte> buffer;
    for (auto const& expected : sent) {
        auto packet = reader.next(buffer);
        if (!packet || !*packet) {
            check(false);
            return;
        }
        auto const& got = **packet;
        check(got.payload.size() == ((expected.size() + 7) & ~std::size_t { 7 }));
        check(expected.empty() || std::memcmp(got.payload.data(), expected.data(), expected.size()) == 0);
    }
    auto end = reader.next(buffer);
    check(end.has_value() && !end->has_value());
}

} // namespace

bool vmm::test::vmbus_ring_case(std::span<std::uint8_t const> bytes)
{
    g_violated = false;
    vmm::test::FuzzInput input { bytes };
    // One memory for every input, put back to all-GUARD after each: a fresh 1 MiB per input
    // (allocate, fill, snapshot, compare) cost more than the ring code under test.
    static test::FakeGuestMemory memory = test::VmbusRam::make();
    auto page_list = test::TestVmbusGuest::scattered_pages(input.ConsumeIntegralInRange<std::size_t>(2, 6));
    std::set<std::uint64_t> ring_pages;
    for (auto page : page_list)
        ring_pages.insert(page.raw());

    // Header words and data from the input (the rest of each page keeps the guard pattern).
    for (auto page : page_list) {
        auto bytes = input.ConsumeBytes<std::byte>(input.ConsumeIntegralInRange<std::size_t>(0, 4096));
        (void)memory.memory().write(page.address(), bytes);
    }
    auto pages = RingPages::from_pages(page_list);
    if (pages) {
        read_everything(memory.memory(), *pages);
        round_trip(memory.memory(), *pages, input);
    } else {
        check(false);
    }
    auto changed = memory.touched_pages(); // Every page started as GUARD.
    for (auto page : changed)
        check(ring_pages.contains(page));
    memory.restore(changed);
    return !g_violated;
}

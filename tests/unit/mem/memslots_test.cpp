// SPDX-License-Identifier: MIT
#include "mem/memslots.hpp"

#include <gtest/gtest.h>

#include <sys/mman.h>

#include "base/mapping.hpp"
#include "tests/support/mem_fakes.hpp"

using namespace vmm;
using namespace vmm::mem;

namespace {

constexpr std::uint64_t MIB_PAGES = (1ull << 20) / PAGE_SIZE;
constexpr std::uint64_t GIB_PAGES = 1024 * MIB_PAGES;
PageRange range(std::uint64_t start, std::uint64_t count) { return { Gpn { start }, PageCount { count } }; }

struct Window {
    explicit Window(PageRange r, std::uint32_t max_slots = 32)
        : window(r)
        , host(Mapping::reserve(r.size_bytes()).value())
        , slots(OnDemandMemslots::create(sink, MemslotPlan::make(r, max_slots, 10).value(), host.bytes()).value())
    {
    }
    PageRange window;
    Mapping host; // Address space only.
    test::FakeMemslots sink;
    OnDemandMemslots slots;
};

} // namespace

TEST(MemslotPlan, SlotsArePowersOfTwoOfAtLeast128MiBWithinTheSlotBudget)
{
    auto small = MemslotPlan::make(range(8 * GIB_PAGES, 512 * MIB_PAGES), 32, 5).value();
    EXPECT_EQ(small.slot_bytes, 128ull << 20);
    EXPECT_EQ(small.slot_count, 4u);
    auto large = MemslotPlan::make(range(64 * GIB_PAGES, 1024 * GIB_PAGES), 32, 5).value();
    EXPECT_EQ(large.slot_bytes, 32ull << 30);
    EXPECT_EQ(large.slot_count, 32u);
    auto odd = MemslotPlan::make(range(8 * GIB_PAGES, 1000 * GIB_PAGES), 32, 5).value();
    EXPECT_EQ(odd.slot_bytes, 32ull << 30);
    EXPECT_EQ(odd.slot_count, 32u);
    EXPECT_EQ(odd.slot_range(31), range(8 * GIB_PAGES + 31 * 32 * GIB_PAGES, (1000 - 31 * 32) * GIB_PAGES));
    auto budget = MemslotPlan::make(range(8 * GIB_PAGES, 100 * GIB_PAGES), 3, 0).value();
    EXPECT_LE(budget.slot_count, 3u);
    EXPECT_EQ(budget.slot_bytes, 64ull << 30);
}

TEST(MemslotPlan, RejectsUnalignedWindowsAndEmptyBudgets)
{
    EXPECT_FALSE(MemslotPlan::make(range(8 * GIB_PAGES + 1, 32768), 32, 0));
    EXPECT_FALSE(MemslotPlan::make(range(8 * GIB_PAGES, 32768), 0, 0));
    EXPECT_FALSE(MemslotPlan::make(range(8 * GIB_PAGES, 0), 1, 0));
}

TEST(OnDemandMemslots, MapsOnlySlotsThatAHotAddTouches)
{
    Window w { range(8 * GIB_PAGES, 1 * GIB_PAGES) }; // 8 slots of 128 MiB
    EXPECT_EQ(w.slots.plan().slot_count, 8u);
    EXPECT_EQ(w.sink.adds, 0u);
    ASSERT_TRUE(w.slots.ensure_mapped(range(8 * GIB_PAGES, 32768)));
    EXPECT_EQ(w.sink.adds, 1u);
    EXPECT_TRUE(w.sink.slots.contains(10));
    EXPECT_EQ(w.sink.slots[10].gpa, Gpa { 8ull << 30 });
    EXPECT_EQ(w.sink.slots[10].host.data(), w.host.base());
    EXPECT_EQ(w.sink.slots[10].host.size(), 128ull << 20);
    // Again: nothing new. Across two slots: both (one already there).
    ASSERT_TRUE(w.slots.ensure_mapped(range(8 * GIB_PAGES + 100, 10)));
    ASSERT_TRUE(w.slots.ensure_mapped(range(8 * GIB_PAGES + 32760, 20)));
    EXPECT_EQ(w.sink.adds, 2u);
    EXPECT_EQ(w.sink.slots[11].host.data(), w.host.base() + (128ull << 20));
    EXPECT_TRUE(w.slots.is_mapped(range(8 * GIB_PAGES, 65536)));
    EXPECT_FALSE(w.slots.is_mapped(range(8 * GIB_PAGES, 65537)));
    EXPECT_EQ(w.slots.mapped_count(), 2u);
}

TEST(OnDemandMemslots, RefusesRangesOutsideTheWindow)
{
    Window w { range(8 * GIB_PAGES, 1 * GIB_PAGES) };
    EXPECT_EQ(w.slots.ensure_mapped(range(8 * GIB_PAGES - 1, 2)).error().code(), Errc::OutOfRange);
    EXPECT_EQ(w.slots.ensure_mapped(range(9 * GIB_PAGES, 1)).error().code(), Errc::OutOfRange);
    EXPECT_EQ(w.sink.adds, 0u);
}

TEST(OnDemandMemslots, SinkErrorLeavesEarlierSlotsMappedAndIsReturned)
{
    Window w { range(8 * GIB_PAGES, 1 * GIB_PAGES) };
    ASSERT_TRUE(w.slots.ensure_mapped(range(8 * GIB_PAGES, 32768)));
    w.sink.fail_next_add = true;
    EXPECT_FALSE(w.slots.ensure_mapped(range(8 * GIB_PAGES, 3 * 32768)));
    EXPECT_EQ(w.slots.mapped_count(), 1u);
    ASSERT_TRUE(w.slots.ensure_mapped(range(8 * GIB_PAGES, 3 * 32768)));
    EXPECT_EQ(w.slots.mapped_count(), 3u);
}

TEST(OnDemandMemslots, ResetRemovesEverySlotAndPlugsTheGuestMemoryViewAccordingly)
{
    PageRange window = range(8 * GIB_PAGES, 1 * GIB_PAGES);
    auto host = Mapping::reserve(window.size_bytes()).value();
    auto memory = GuestMemory::from_regions({ RamRegion { window.start_address(), host.bytes() } }).value();
    ASSERT_TRUE(memory.make_pluggable(0, 128ull << 20));
    test::FakeMemslots sink;
    auto slots = OnDemandMemslots::create(sink, MemslotPlan::make(window, 32, 0).value(), host.bytes(), &memory).value();
    EXPECT_FALSE(memory.is_ram(window.start_address(), PAGE_SIZE));
    ASSERT_TRUE(host.protect(0, 256ull << 20, PROT_READ | PROT_WRITE)); // What vmm/'s sink does.
    ASSERT_TRUE(slots.ensure_mapped(range(window.start.raw() + 32768, 32768)));
    EXPECT_TRUE(memory.is_ram(Gpa { (8ull << 30) + (128ull << 20) }, 128ull << 20));
    EXPECT_FALSE(memory.is_ram(window.start_address(), PAGE_SIZE));
    ASSERT_TRUE(slots.reset());
    EXPECT_EQ(sink.removes, 1u);
    EXPECT_TRUE(sink.slots.empty());
    EXPECT_EQ(slots.mapped_count(), 0u);
    EXPECT_FALSE(memory.is_ram(Gpa { (8ull << 30) + (128ull << 20) }, PAGE_SIZE));
}

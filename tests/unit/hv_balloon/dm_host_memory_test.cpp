// SPDX-License-Identifier: MIT
// The DM engine over real host memory: boot RAM in a memfd (mem::BootRam, as the Machine
// builds it from firmware::ram_ranges), the fake Linux guest on the other side. Issue 4's
// end-to-end scenario at its own scale, minus the KVM: the guest dirties ~200 MiB and frees
// it, the target drops to 256 MiB, and the host must get that memory back (the memfd's
// blocks fall) while every page the guest kept stays resident and intact.
#include "devices/hv_balloon/dynamic_memory.hpp"

#include <cstring>

#include <gtest/gtest.h>

#include "base/types.hpp"
#include "firmware/e820.hpp"
#include "mem/boot_ram.hpp"
#include "tests/support/dm_fake_guest.hpp"
#include "tests/support/dm_fake_port.hpp"

using namespace vmm;
using namespace vmm::hv_balloon;
using namespace vmm::test;
using mem::Gpn;
using mem::PageCount;
using mem::PageRange;

namespace {

constexpr std::uint64_t BOOT_BYTES = 512 * MIB;
constexpr std::uint64_t KEPT_BYTES = 48 * MIB;  // Kernel and the guest's live data: [0, 48 MiB).
constexpr std::uint64_t DIRTY_BYTES = 200 * MIB; // Dirtied then freed: [48 MiB, 248 MiB).

std::uint64_t pages_of(std::uint64_t bytes) { return bytes / mem::PAGE_SIZE; }

// mem::DiscardBackend over boot RAM only (the Machine's GuestRamDiscard adds the hot-add window).
class BootRamDiscard final : public mem::DiscardBackend {
public:
    explicit BootRamDiscard(mem::BootRam const& ram)
        : m_ram(ram)
    {
    }
    Result<void> discard(PageRange range) override { return m_ram.discard(range.start.address(), range.count.bytes()); }

private:
    mem::BootRam const& m_ram;
};

struct HostMemoryRig {
    static mem::BootRam make_ram()
    {
        std::vector<mem::BootRam::Range> ranges;
        for (auto const& range : firmware::ram_ranges(BOOT_BYTES))
            ranges.push_back({ range.start, range.size_bytes });
        return mem::BootRam::create(ranges).value();
    }
    static mem::GuestPhysicalMap make_map()
    {
        std::vector<PageRange> boot;
        for (auto const& range : firmware::ram_ranges(BOOT_BYTES))
            boot.push_back(PageRange { range.start.page(), PageCount::from_bytes_floor(range.size_bytes) });
        return mem::GuestPhysicalMap::create(boot, std::nullopt, firmware::firmware_reserved_pages(BOOT_BYTES)).value();
    }
    static FakeGuestOptions guest_options()
    {
        FakeGuestOptions options;
        options.caps = 0x1D; // Balloon and alignment, no hot-add (there is no window here).
        options.free_ram = { PageRange { Gpn { pages_of(KEPT_BYTES) }, PageCount { pages_of(BOOT_BYTES - KEPT_BYTES) } } };
        return options;
    }

    HostMemoryRig()
        : ram(make_ram())
        , map(make_map())
        , discard(ram)
        , engine(map, discard, nullptr, DmConfig::linux_profile())
        , guest(engine, port, guest_options())
    {
        engine.on_tick(Instant { std::chrono::seconds { 1000 } });
    }

    std::byte* host(std::uint64_t gpa) const { return ram.regions().front().host.data() + gpa; }
    void fill(std::uint64_t gpa, std::uint64_t bytes, std::uint8_t value) const { std::memset(host(gpa), value, bytes); }
    bool all_equal(std::uint64_t gpa, std::uint64_t bytes, std::uint8_t value) const
    {
        auto const* bytes_at = reinterpret_cast<std::uint8_t const*>(host(gpa));
        return std::all_of(bytes_at, bytes_at + bytes, [value](std::uint8_t b) { return b == value; });
    }
    std::uint64_t allocated() const { return ram.allocated_bytes().value(); }
    void target_mib(std::uint64_t mib)
    {
        ASSERT_TRUE(engine.set_target(PageCount { pages_of(mib * MIB) }));
        guest.pump();
    }

    mem::BootRam ram;
    mem::GuestPhysicalMap map;
    BootRamDiscard discard;
    DynamicMemory engine;
    FakeChannelPort port;
    FakeLinuxGuest guest;
};

} // namespace

TEST(DmHostMemory, BallooningDirtiedAndFreedMemoryGivesItBackToTheHost)
{
    ASSERT_EQ(firmware::ram_ranges(BOOT_BYTES).size(), 1u);
    HostMemoryRig rig;
    rig.guest.open_channel();
    ASSERT_EQ(rig.engine.state(), State::Idle);

    rig.fill(0, KEPT_BYTES, 0x4B);
    rig.fill(KEPT_BYTES, DIRTY_BYTES, 0xD1); // The guest dirties 200 MiB and frees it again.
    ASSERT_EQ(rig.allocated(), KEPT_BYTES + DIRTY_BYTES);

    rig.target_mib(256);
    auto status = rig.engine.status();
    EXPECT_EQ(status.current, PageCount { pages_of(256 * MIB) });
    EXPECT_EQ(status.ballooned, PageCount { pages_of(256 * MIB) });
    EXPECT_TRUE(rig.guest.violations.empty());
    // Linux's balloon takes the lowest free blocks here, i.e. all of the dirtied memory: the
    // host holds exactly what the guest kept, which is untouched.
    EXPECT_EQ(rig.allocated(), KEPT_BYTES);
    EXPECT_TRUE(rig.all_equal(0, KEPT_BYTES, 0x4B));

    // Back to the boot size: every ballooned page is the guest's again, and usable at once.
    rig.target_mib(512);
    EXPECT_EQ(rig.engine.status().current, PageCount { pages_of(BOOT_BYTES) });
    EXPECT_EQ(rig.map.ballooned_pages(), PageCount { 0 });
    EXPECT_TRUE(rig.guest.violations.empty());
    EXPECT_EQ(rig.allocated(), KEPT_BYTES) << "unballooning allocates nothing until the guest touches it";
    rig.fill(KEPT_BYTES, 256 * MIB, 0xE2);
    EXPECT_TRUE(rig.all_equal(KEPT_BYTES, 256 * MIB, 0xE2));
    EXPECT_EQ(rig.allocated(), KEPT_BYTES + 256 * MIB);
}

TEST(DmHostMemory, BadRangesInABalloonResponseDiscardNothingButTheValidOnes)
{
    HostMemoryRig rig;
    rig.guest.open_channel();
    rig.fill(0, BOOT_BYTES, 0x5C);
    ASSERT_EQ(rig.allocated(), BOOT_BYTES);

    rig.guest.options.ignore_balloon = true; // Answer by hand.
    ASSERT_TRUE(rig.engine.set_target(PageCount { pages_of(BOOT_BYTES - 64 * MIB) }));
    rig.guest.pump();
    ASSERT_EQ(rig.engine.state(), State::BalloonWaitReply);

    std::uint64_t const mib_pages = pages_of(MIB);
    std::vector<DmPageRange> ranges {
        DmPageRange::make(300 * mib_pages, mib_pages),      // Valid: 1 MiB.
        DmPageRange::make(300 * mib_pages, mib_pages),      // The same pages again.
        DmPageRange::make(300 * mib_pages + 1, 4),          // Overlapping them.
        DmPageRange::make(511 * mib_pages, 2 * mib_pages),  // Crossing the end of RAM.
        DmPageRange::make(4096 * mib_pages, mib_pages),     // Far outside RAM.
        DmPageRange::make(0x9F, 1),                         // EBDA / ACPI tables (e820-reserved).
    };
    rig.guest.send(dm_balloon_response(rig.guest.next_trans_id(), false, ranges));

    EXPECT_EQ(rig.map.ballooned_pages(), PageCount { mib_pages });
    EXPECT_EQ(rig.engine.status().counters.rejected_ranges[static_cast<std::size_t>(mem::RejectReason::OutsideRam)], 3u);
    EXPECT_EQ(rig.allocated(), BOOT_BYTES - MIB);
    EXPECT_TRUE(rig.all_equal(0, 300 * MIB, 0x5C));
    EXPECT_TRUE(rig.all_equal(301 * MIB, BOOT_BYTES - 301 * MIB, 0x5C));
}

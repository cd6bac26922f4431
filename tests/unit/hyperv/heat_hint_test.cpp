// SPDX-License-Identifier: MIT
// HvExtCallMemoryHeatHint (free page reporting) through the hypercall port: offered only with a
// MemoryHintSink, rep input copied once from one page, header checked, refusals reported as
// reps completed (drivers/hv/hv_balloon.c:1599 hv_free_page_report is the guest side).
#include "vmm/hyperv/partition.hpp" // Header under test first.

#include <gtest/gtest.h>

#include <vector>

#include "tests/unit/hyperv/hyperv_fakes.hpp"

namespace vmm::hyperv::test {
namespace {

constexpr std::uint64_t HEAT_HINT = 0x8003;
constexpr std::uint64_t QUERY = 0x8001;
constexpr std::uint64_t FAST = std::uint64_t { 1 } << 16;
constexpr std::uint64_t COLD_DISCARD = 2;
std::uint64_t reps(std::uint64_t count, std::uint64_t start = 0) { return (count << 32) | (start << 48); }

struct RecordingHints final : MemoryHintSink {
    std::uint32_t cold_discard(std::span<std::uint64_t const> ranges) override
    {
        calls.emplace_back(ranges.begin(), ranges.end());
        return std::min<std::uint32_t>(accept, static_cast<std::uint32_t>(ranges.size()));
    }
    std::vector<std::vector<std::uint64_t>> calls;
    std::uint32_t accept = 1000;
};

class HeatHintTest : public PartitionTest {
protected:
    void SetUp() override
    {
        enable_hypercalls();
        partition.set_memory_hint_sink(&hints);
    }
    void write_hint(std::uint64_t gpa, std::uint64_t header, std::vector<std::uint64_t> const& ranges)
    {
        ram.write<std::uint64_t>(gpa, header);
        for (std::size_t i = 0; i < ranges.size(); ++i)
            ram.write<std::uint64_t>(gpa + 8 * (i + 1), ranges[i]);
    }
    RecordingHints hints;
};

TEST_F(HeatHintTest, CapabilityBitFollowsTheSink)
{
    EXPECT_EQ(call(0, QUERY, 0, INPUT_PAGE_GPA + 8), 0u);
    EXPECT_EQ(ram.read<std::uint64_t>(INPUT_PAGE_GPA + 8), std::uint64_t { 1 } << 8);
    partition.set_memory_hint_sink(nullptr);
    EXPECT_EQ(call(0, QUERY, 0, INPUT_PAGE_GPA + 8), 0u);
    EXPECT_EQ(ram.read<std::uint64_t>(INPUT_PAGE_GPA + 8), 0u);
    write_hint(INPUT_PAGE_GPA, COLD_DISCARD, { 0x800 });
    EXPECT_EQ(call(0, HEAT_HINT | reps(1), INPUT_PAGE_GPA), 2u) << "not offered: unknown code";
    EXPECT_TRUE(hints.calls.empty());
}

TEST_F(HeatHintTest, RangesReachTheSinkAndEveryRepCompletes)
{
    write_hint(INPUT_PAGE_GPA, COLD_DISCARD, { 0x11, 0x22, 0x33 });
    EXPECT_EQ(call(0, HEAT_HINT | reps(3), INPUT_PAGE_GPA), reps(3));
    ASSERT_EQ(hints.calls.size(), 1u);
    EXPECT_EQ(hints.calls[0], (std::vector<std::uint64_t> { 0x11, 0x22, 0x33 }));
    // A restarted call (rep start 1) hands over the rest only.
    EXPECT_EQ(call(0, HEAT_HINT | reps(3, 1), INPUT_PAGE_GPA), reps(3));
    EXPECT_EQ(hints.calls[1], (std::vector<std::uint64_t> { 0x22, 0x33 }));
}

TEST_F(HeatHintTest, ARefusedRangeAnswersInvalidParameterWithTheRepsDone)
{
    hints.accept = 1;
    write_hint(INPUT_PAGE_GPA, COLD_DISCARD, { 0x11, 0x22, 0x33 });
    EXPECT_EQ(call(0, HEAT_HINT | reps(3), INPUT_PAGE_GPA), 5u | reps(1));
}

TEST_F(HeatHintTest, BadInputsNeverReachTheSink)
{
    write_hint(INPUT_PAGE_GPA, 1, { 0x11 }); // Not COLD_DISCARD.
    EXPECT_EQ(call(0, HEAT_HINT | reps(1), INPUT_PAGE_GPA), 5u);
    write_hint(INPUT_PAGE_GPA, COLD_DISCARD | (1ull << 40), { 0x11 }); // Reserved bits.
    EXPECT_EQ(call(0, HEAT_HINT | reps(1), INPUT_PAGE_GPA), 5u);
    write_hint(INPUT_PAGE_GPA, COLD_DISCARD, { 0x11 });
    EXPECT_EQ(call(0, HEAT_HINT, INPUT_PAGE_GPA), 3u);                      // No reps.
    EXPECT_EQ(call(0, HEAT_HINT | FAST | reps(1), INPUT_PAGE_GPA), 3u);     // Fast form.
    EXPECT_EQ(call(0, HEAT_HINT | reps(512), INPUT_PAGE_GPA), 3u);          // More than a page holds.
    EXPECT_EQ(call(0, HEAT_HINT | reps(2, 2), INPUT_PAGE_GPA), 3u);         // Start past the count.
    EXPECT_EQ(call(0, HEAT_HINT | (std::uint64_t { 1 } << 17) | reps(1), INPUT_PAGE_GPA), 3u); // Varhead.
    EXPECT_EQ(call(0, HEAT_HINT | reps(1), INPUT_PAGE_GPA + 4), 4u);        // Unaligned.
    EXPECT_EQ(call(0, HEAT_HINT | reps(2), INPUT_PAGE_GPA + 4096 - 16), 4u); // Crosses the page.
    EXPECT_EQ(call(0, HEAT_HINT | reps(1), HOLE_GPA), 4u);                  // Not RAM.
    EXPECT_TRUE(hints.calls.empty());
}

} // namespace
} // namespace vmm::hyperv::test

// SPDX-License-Identifier: MIT
// GpadlTable: header/body assembly and every validation rule of guest-interface §10.5.
#include "devices/vmbus/gpadl.hpp"

#include <gtest/gtest.h>

#include "tests/support/vmbus_fakes.hpp"

using namespace vmm;
using namespace vmm::vmbus;

namespace {

constexpr u32 RELID = 1;
constexpr u32 ID = 0xe1e10;

u64 range_head(u32 byte_count, u32 byte_offset) { return (u64 { byte_offset } << 32) | byte_count; }

// Range words of one page-aligned range over pages first..first+count-1.
std::vector<u64> one_range(u64 first, u64 count)
{
    std::vector<u64> words { range_head(static_cast<u32>(count * 4096), 0) };
    for (u64 i = 0; i < count; ++i)
        words.push_back(first + i);
    return words;
}

GpadlHeaderMessage header_with(std::vector<u64> const& all_words, std::size_t words_in_header, u16 rangecount = 1)
{
    return GpadlHeaderMessage { RELID, ID, static_cast<u16>(all_words.size() * 8), rangecount,
        { all_words.begin(), all_words.begin() + static_cast<std::ptrdiff_t>(words_in_header) } };
}

class GpadlTableTest : public ::testing::Test {
protected:
    test::FakeGuestMemory memory = test::VmbusRam::make();
    GpadlTable table { memory.memory() };
};

} // namespace

TEST_F(GpadlTableTest, SingleHeaderGpadlIsCreatedWithItsPages)
{
    auto words = one_range(16, 10);
    auto done = table.on_header(header_with(words, words.size()), true);
    ASSERT_TRUE(done.has_value());
    EXPECT_EQ(done->status, CHANNEL_STATUS_SUCCESS);
    EXPECT_EQ(done->child_relid, RELID);
    ASSERT_NE(table.find_created(ID), nullptr);
    EXPECT_EQ(table.find_created(ID)->ring_pages().size(), 10u);
    EXPECT_EQ(table.find_created(ID)->ring_pages()[9], mem::Gpn { 25 });
}

TEST_F(GpadlTableTest, HeaderAndTwoBodiesAssembleInOrder)
{
    auto words = one_range(10, 60); // 26 in the header, 28 + 6 in bodies (channel.c:311-446).
    EXPECT_FALSE(table.on_header(header_with(words, 27), true).has_value());
    EXPECT_EQ(table.in_progress_count(), 1u);
    EXPECT_FALSE(table.on_body(GpadlBodyMessage { 0, ID, { words.begin() + 27, words.begin() + 55 } }).has_value());
    auto done = table.on_body(GpadlBodyMessage { 0, ID, { words.begin() + 55, words.end() } });
    ASSERT_TRUE(done.has_value());
    EXPECT_EQ(done->status, CHANNEL_STATUS_SUCCESS);
    EXPECT_EQ(table.page_count(ID), 60u);
    EXPECT_EQ(table.find_created(ID)->ring_pages()[59], mem::Gpn { 69 });
    EXPECT_EQ(table.in_progress_count(), 0u);
}

TEST_F(GpadlTableTest, MultiRangeGpadlWithByteOffsetsIsValidated)
{
    std::vector<u64> words { range_head(100, 4000), 20, 21, range_head(4096, 0), 30 };
    auto done = table.on_header(header_with(words, words.size(), 2), true);
    ASSERT_TRUE(done.has_value());
    EXPECT_EQ(done->status, CHANNEL_STATUS_SUCCESS);
    auto const* gpadl = table.find_created(ID);
    ASSERT_EQ(gpadl->ranges.size(), 2u);
    EXPECT_EQ(gpadl->ranges[0].pages.size(), 2u); // 4000 + 100 crosses into a second page.
    EXPECT_TRUE(gpadl->ring_pages().empty());     // Not usable as a ring.
}

TEST_F(GpadlTableTest, EachMalformedRangeIsRefusedWithAFailureStatus)
{
    std::vector<std::vector<u64>> bad {
        { range_head(4096, 4096), 20 },          // byte_offset >= 4096
        { range_head(0, 0), 20 },                // byte_count 0
        { range_head(8192, 0), 20 },             // needs 2 PFNs, has 1
        { range_head(4096, 0), 20, 21 },         // range_buflen larger than the range
        { range_head(4096, 0), test::VmbusRam::HOLE_GPN }, // PFN in a hole
        { range_head(4096, 0), u64 { 1 } << 50 },                // PFN past 52 bits
    };
    u32 id = ID;
    for (auto const& words : bad) {
        GpadlHeaderMessage header { RELID, id++, static_cast<u16>(words.size() * 8), 1, words };
        auto done = table.on_header(header, true);
        ASSERT_TRUE(done.has_value());
        EXPECT_NE(done->status, CHANNEL_STATUS_SUCCESS) << words[0];
    }
    EXPECT_EQ(table.created_count(), 0u);
    EXPECT_EQ(table.in_progress_count(), 0u);
}

TEST_F(GpadlTableTest, BadHeaderFieldsAndUnofferedRelidAreRefused)
{
    auto words = one_range(16, 2);
    auto zero_ranges = header_with(words, words.size(), 0);
    EXPECT_NE(table.on_header(zero_ranges, true)->status, CHANNEL_STATUS_SUCCESS);
    auto odd_length = header_with(words, words.size());
    odd_length.range_buflen = 20;
    EXPECT_NE(table.on_header(odd_length, true)->status, CHANNEL_STATUS_SUCCESS);
    auto too_much = header_with(words, words.size());
    too_much.range_buflen = 16; // Header carries 24 bytes.
    EXPECT_NE(table.on_header(too_much, true)->status, CHANNEL_STATUS_SUCCESS);
    EXPECT_NE(table.on_header(header_with(words, words.size()), false)->status, CHANNEL_STATUS_SUCCESS);
    EXPECT_EQ(table.created_count(), 0u);
}

TEST_F(GpadlTableTest, DuplicateIdIsRefusedAndTheOriginalSurvives)
{
    auto words = one_range(16, 4);
    ASSERT_EQ(table.on_header(header_with(words, words.size()), true)->status, CHANNEL_STATUS_SUCCESS);
    auto other = one_range(40, 4);
    EXPECT_NE(table.on_header(header_with(other, other.size()), true)->status, CHANNEL_STATUS_SUCCESS);
    EXPECT_EQ(table.find_created(ID)->ring_pages()[0], mem::Gpn { 16 });
}

TEST_F(GpadlTableTest, BodiesForUnknownIdsAreDroppedAndOverlongBodiesFailTheGpadl)
{
    EXPECT_FALSE(table.on_body(GpadlBodyMessage { 0, 0x77, { 1, 2 } }).has_value());
    EXPECT_EQ(table.rejected(), 1u);
    auto words = one_range(10, 30);
    EXPECT_FALSE(table.on_header(header_with(words, 27), true).has_value());
    std::vector<u64> too_many(words.begin() + 27, words.end());
    too_many.push_back(99);
    auto done = table.on_body(GpadlBodyMessage { 0, ID, too_many });
    ASSERT_TRUE(done.has_value());
    EXPECT_NE(done->status, CHANNEL_STATUS_SUCCESS);
    EXPECT_EQ(table.in_progress_count(), 0u);
    EXPECT_EQ(table.created_count(), 0u);
}

TEST_F(GpadlTableTest, TableSizeIsBounded)
{
    auto words = one_range(16, 1);
    for (u32 i = 0; i < GpadlTable::MAX_GPADLS; ++i) {
        auto header = header_with(words, words.size());
        header.gpadl = i + 1;
        ASSERT_EQ(table.on_header(header, true)->status, CHANNEL_STATUS_SUCCESS);
    }
    EXPECT_NE(table.on_header(header_with(words, words.size()), true)->status, CHANNEL_STATUS_SUCCESS);
}

TEST_F(GpadlTableTest, TeardownOfAnInUseGpadlIsDeferredUntilRelease)
{
    auto words = one_range(16, 4);
    ASSERT_EQ(table.on_header(header_with(words, words.size()), true)->status, CHANNEL_STATUS_SUCCESS);
    table.set_in_use(ID, true);
    EXPECT_EQ(table.teardown(ID), Teardown::Deferred);
    EXPECT_NE(table.find_created(ID), nullptr);
    EXPECT_TRUE(table.release(ID));
    EXPECT_EQ(table.find_created(ID), nullptr);
    EXPECT_EQ(table.teardown(0x1234), Teardown::TornDown); // Unknown ids are answered too.
}

// SPDX-License-Identifier: MIT
#include "vmm/bus.hpp" // Header under test first.

#include <array>
#include <vector>

#include <gtest/gtest.h>

namespace vmm {
namespace {

// Records every access with the offset the bus computed.
class RecordingDevice final : public IoDevice {
public:
    std::string_view name() const override { return "recording"; }
    IoStatus read(u64 offset, std::span<std::byte> data) override
    {
        reads.push_back(offset);
        std::ranges::fill(data, std::byte { 0x5A });
        return IoStatus::Ok;
    }
    IoStatus write(u64 offset, std::span<std::byte const> data) override
    {
        writes.push_back({ offset, std::to_integer<u8>(data[0]) });
        return IoStatus::Ok;
    }
    std::vector<u64> reads;
    std::vector<std::pair<u64, u8>> writes;
};

TEST(Bus, AccessesReachTheDeviceWithRangeRelativeOffsets)
{
    Bus bus { "pio" };
    RecordingDevice device;
    ASSERT_TRUE(bus.attach({ 0x3F8, 8 }, device));
    std::array<std::byte, 1> byte { std::byte { 0x41 } };
    EXPECT_EQ(bus.write(0x3F8, byte), IoStatus::Ok);
    EXPECT_EQ(bus.read(0x3FD, byte), IoStatus::Ok);
    ASSERT_EQ(device.writes.size(), 1u);
    EXPECT_EQ(device.writes[0], (std::pair<u64, u8> { 0, 0x41 }));
    ASSERT_EQ(device.reads.size(), 1u);
    EXPECT_EQ(device.reads[0], 5u);
    EXPECT_EQ(byte[0], std::byte { 0x5A });
}

TEST(Bus, OverlappingAttachIsRefusedOnEitherSide)
{
    Bus bus { "pio" };
    RecordingDevice a, b;
    ASSERT_TRUE(bus.attach({ 0x100, 0x10 }, a));
    auto overlap_after = bus.attach({ 0x10F, 2 }, b);
    ASSERT_FALSE(overlap_after);
    EXPECT_EQ(overlap_after.error().code(), Errc::Overlap);
    auto overlap_before = bus.attach({ 0xF8, 0x9 }, b);
    ASSERT_FALSE(overlap_before);
    EXPECT_EQ(overlap_before.error().code(), Errc::Overlap);
    EXPECT_TRUE(bus.attach({ 0x110, 1 }, b)); // Adjacent is fine.
    EXPECT_TRUE(bus.attach({ 0xF0, 0x10 }, b));
}

TEST(Bus, EmptyAndWrappingRangesAreRefused)
{
    Bus bus { "mmio" };
    RecordingDevice device;
    EXPECT_FALSE(bus.attach({ 0x1000, 0 }, device));
    EXPECT_FALSE(bus.attach({ ~u64 { 0 } - 1, 4 }, device));
}

TEST(Bus, UnclaimedReadsReturnAllOnesAndWritesAreDropped)
{
    Bus bus { "pio" };
    RecordingDevice device;
    ASSERT_TRUE(bus.attach({ 0x60, 1 }, device));
    std::array<std::byte, 4> data {};
    EXPECT_EQ(bus.read(0x70, data), IoStatus::Unclaimed);
    for (auto byte : data)
        EXPECT_EQ(byte, std::byte { 0xFF });
    EXPECT_EQ(bus.write(0x70, data), IoStatus::Unclaimed);
    EXPECT_TRUE(device.writes.empty());
}

TEST(Bus, AccessStraddlingTheEndOfARangeIsUnclaimed)
{
    Bus bus { "pio" };
    RecordingDevice device;
    ASSERT_TRUE(bus.attach({ 0x60, 2 }, device));
    std::array<std::byte, 4> data {};
    EXPECT_EQ(bus.read(0x60, data), IoStatus::Unclaimed);
    EXPECT_TRUE(device.reads.empty());
}

} // namespace
} // namespace vmm

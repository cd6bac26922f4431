// SPDX-License-Identifier: MIT
// RingReader/RingWriter over scattered GPADL pages: wrap-around, space accounting, signalling
// decisions and validation of every guest-controlled header word and descriptor.
#include "devices/vmbus/ring.hpp"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/support/vmbus_fakes.hpp"
#include "tests/support/vmbus_test_guest.hpp"

using namespace vmm;
using namespace vmm::vmbus;

namespace {

class RingTest : public ::testing::Test {
protected:
    RingTest()
    {
        for (auto page : page_list)
            memory.fill_page(page, std::byte { 0 });
    }
    RingPages pages() const { return RingPages::from_pages(page_list).value(); }
    void set_word(u64 offset, u32 value) { (void)memory.memory().write_obj(mem::Gpa { page_list[0].address().raw() + offset }, value); }
    u32 word(u64 offset) const { return memory.memory().read_obj<u32>(mem::Gpa { page_list[0].address().raw() + offset }).value(); }
    // Writes raw bytes into the data area at `offset` (no wrap).
    void put(u32 offset, std::span<std::byte const> bytes)
    {
        (void)memory.memory().write(mem::Gpa { page_list[1 + offset / 4096].address().raw() + offset % 4096 }, bytes);
    }

    test::FakeGuestMemory memory = test::VmbusRam::make();
    std::vector<mem::Gpn> page_list = test::TestVmbusGuest::scattered_pages(5); // 16 KiB of data.
};

std::vector<std::byte> pattern(std::size_t size, u8 seed)
{
    std::vector<std::byte> bytes(size);
    for (std::size_t i = 0; i < size; ++i)
        bytes[i] = std::byte { static_cast<u8>(seed + i * 7) };
    return bytes;
}

} // namespace

TEST_F(RingTest, PacketsWrittenAcrossTheEndOfScatteredPagesReadBackIntact)
{
    u32 start = 4 * 4096 - 40; // Forces the third packet to wrap.
    set_word(RING_READ_INDEX_OFFSET, start);
    set_word(RING_WRITE_INDEX_OFFSET, start);
    RingWriter writer { memory.memory(), pages() };
    ASSERT_TRUE(writer.start().has_value());
    std::vector<std::vector<std::byte>> sent { pattern(5, 1), pattern(4100, 2), pattern(333, 3) };
    for (std::size_t i = 0; i < sent.size(); ++i)
        ASSERT_TRUE(writer.write(VmPacketType::VM_PKT_DATA_INBAND, 0, i, sent[i]).has_value());
    RingReader reader { memory.memory(), pages() };
    ASSERT_TRUE(reader.start().has_value());
    std::vector<std::byte> buffer;
    for (std::size_t i = 0; i < sent.size(); ++i) {
        auto packet = reader.next(buffer);
        ASSERT_TRUE(packet.has_value() && packet->has_value());
        EXPECT_EQ((*packet)->descriptor.trans_id, i);
        EXPECT_EQ((*packet)->descriptor.type, static_cast<u16>(VmPacketType::VM_PKT_DATA_INBAND));
        ASSERT_EQ((*packet)->payload.size(), (sent[i].size() + 7) / 8 * 8);
        EXPECT_EQ(std::memcmp((*packet)->payload.data(), sent[i].data(), sent[i].size()), 0);
    }
    EXPECT_FALSE(reader.next(buffer)->has_value());
    ASSERT_TRUE(reader.commit().has_value());
    EXPECT_EQ(word(RING_READ_INDEX_OFFSET), word(RING_WRITE_INDEX_OFFSET));
}

TEST_F(RingTest, WrittenPacketMatchesTheLinuxLayoutWithTrailer)
{
    RingWriter writer { memory.memory(), pages() };
    ASSERT_TRUE(writer.start().has_value());
    auto payload = pattern(12, 9);
    ASSERT_TRUE(writer.write(VmPacketType::VM_PKT_DATA_INBAND, 0, 0x55, payload).has_value());
    std::array<std::byte, 40> raw {};
    ASSERT_TRUE(pages().read(memory.memory(), 0, raw).has_value());
    PacketDescriptor descriptor;
    std::memcpy(&descriptor, raw.data(), 16);
    EXPECT_EQ(descriptor.offset8, 2);
    EXPECT_EQ(descriptor.len8, 4); // 16 + 16 (12 padded) bytes.
    EXPECT_EQ(raw[28], std::byte { 0 }); // Padding is zero.
    u64 trailer;
    std::memcpy(&trailer, raw.data() + 32, 8);
    EXPECT_EQ(trailer, 0u); // Packet started at write index 0.
    EXPECT_EQ(word(RING_WRITE_INDEX_OFFSET), 40u);
}

TEST_F(RingTest, WriterNeverFillsTheRingAndAsksForSpaceWithPendingSendSize)
{
    RingWriter writer { memory.memory(), pages() };
    ASSERT_TRUE(writer.start().has_value());
    auto payload = pattern(1000, 1);
    int written = 0;
    for (;;) {
        auto result = writer.write(VmPacketType::VM_PKT_DATA_INBAND, 0, 0, payload);
        if (!result) {
            EXPECT_EQ(result.error().code(), Errc::Busy);
            break;
        }
        ++written;
    }
    EXPECT_EQ(written, 15); // A 16th 1024-byte packet would fill 16384 exactly (ring_buffer.c:327).
    EXPECT_EQ(word(RING_WRITE_INDEX_OFFSET), 15u * 1024u);
    EXPECT_EQ(word(RING_PENDING_SEND_SZ_OFFSET), 1024u);
    EXPECT_TRUE(writer.waiting_for_space());
    EXPECT_FALSE(writer.space_freed().value());
    set_word(RING_READ_INDEX_OFFSET, 2048); // The guest consumed two packets.
    EXPECT_TRUE(writer.space_freed().value());
    EXPECT_EQ(word(RING_PENDING_SEND_SZ_OFFSET), 0u);
}

TEST_F(RingTest, WriterSignalsOnlyOnEmptyToNonEmptyWithTheMaskClear)
{
    RingWriter writer { memory.memory(), pages() };
    ASSERT_TRUE(writer.start().has_value());
    auto payload = pattern(8, 1);
    EXPECT_TRUE(writer.write(VmPacketType::VM_PKT_DATA_INBAND, 0, 0, payload).value());
    EXPECT_FALSE(writer.write(VmPacketType::VM_PKT_DATA_INBAND, 0, 0, payload).value()); // Not empty before.
    set_word(RING_READ_INDEX_OFFSET, word(RING_WRITE_INDEX_OFFSET)); // Guest drained it.
    set_word(RING_INTERRUPT_MASK_OFFSET, 1);
    EXPECT_FALSE(writer.write(VmPacketType::VM_PKT_DATA_INBAND, 0, 0, payload).value()); // Masked.
}

TEST_F(RingTest, WriterRefusesAPacketLargerThanTheRing)
{
    RingWriter writer { memory.memory(), pages() };
    ASSERT_TRUE(writer.start().has_value());
    auto result = writer.write(VmPacketType::VM_PKT_DATA_INBAND, 0, 0, pattern(16384, 1));
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().code(), Errc::InvalidArgument);
    EXPECT_EQ(word(RING_WRITE_INDEX_OFFSET), 0u);
}

TEST_F(RingTest, IndicesOutOfRangeOrUnalignedBreakTheRing)
{
    for (u32 bad : { 16384u, 0xffff'fff8u, 12u, 3u }) {
        set_word(RING_READ_INDEX_OFFSET, bad);
        set_word(RING_WRITE_INDEX_OFFSET, 0);
        RingReader reader { memory.memory(), pages() };
        EXPECT_FALSE(reader.start().has_value()) << bad;
        RingWriter writer { memory.memory(), pages() };
        EXPECT_FALSE(writer.start().has_value()) << bad;

        set_word(RING_READ_INDEX_OFFSET, 0);
        RingReader started { memory.memory(), pages() };
        ASSERT_TRUE(started.start().has_value());
        set_word(RING_WRITE_INDEX_OFFSET, bad);
        std::vector<std::byte> buffer;
        EXPECT_FALSE(started.next(buffer).has_value()) << bad;
    }
}

TEST_F(RingTest, DescriptorLiesAreRejected)
{
    struct Lie {
        u16 offset8;
        u16 len8;
    };
    // Offset below the descriptor, offset past the length, length past the published data.
    for (auto lie : { Lie { 1, 4 }, Lie { 5, 4 }, Lie { 2, 200 }, Lie { 0, 0 } }) {
        PacketDescriptor descriptor { 6, lie.offset8, lie.len8, 0, 0 };
        put(0, wire_bytes(descriptor));
        set_word(RING_READ_INDEX_OFFSET, 0);
        set_word(RING_WRITE_INDEX_OFFSET, 40); // One 32-byte packet + trailer published.
        RingReader reader { memory.memory(), pages() };
        ASSERT_TRUE(reader.start().has_value());
        std::vector<std::byte> buffer;
        auto packet = reader.next(buffer);
        ASSERT_FALSE(packet.has_value()) << lie.offset8 << "/" << lie.len8;
        EXPECT_EQ(packet.error().code(), Errc::GuestProtocol);
    }
    set_word(RING_WRITE_INDEX_OFFSET, 16); // Less than a descriptor and trailer.
    RingReader reader { memory.memory(), pages() };
    ASSERT_TRUE(reader.start().has_value());
    std::vector<std::byte> buffer;
    EXPECT_FALSE(reader.next(buffer).has_value());
}

TEST_F(RingTest, ReaderCommitSignalsAGuestWaitingOnPendingSendSizeOnlyOnTheTransition)
{
    RingWriter writer { memory.memory(), pages() };
    ASSERT_TRUE(writer.start().has_value());
    auto payload = pattern(1000, 1);
    while (writer.write(VmPacketType::VM_PKT_DATA_INBAND, 0, 0, payload).has_value()) { }
    // Now play the guest: it is the writer waiting for 3000 bytes (feature bit set).
    set_word(RING_FEATURE_BITS_OFFSET, RING_FEATURE_PENDING_SEND_SZ);
    set_word(RING_PENDING_SEND_SZ_OFFSET, 3000);
    RingReader reader { memory.memory(), pages() };
    ASSERT_TRUE(reader.start().has_value());
    std::vector<std::byte> buffer;
    ASSERT_TRUE(reader.next(buffer)->has_value());
    EXPECT_FALSE(reader.commit().value()); // 2048 free: still not enough.
    ASSERT_TRUE(reader.next(buffer)->has_value());
    ASSERT_TRUE(reader.next(buffer)->has_value());
    EXPECT_TRUE(reader.commit().value()); // 4096 free now: crossed 3000.
    ASSERT_TRUE(reader.next(buffer)->has_value());
    EXPECT_FALSE(reader.commit().value()); // Already had enough before.
}

TEST(RingPagesTest, NeedsAHeaderAndADataPage)
{
    std::vector<mem::Gpn> one { mem::Gpn { 5 } };
    EXPECT_FALSE(RingPages::from_pages(one).has_value());
    std::vector<mem::Gpn> two { mem::Gpn { 5 }, mem::Gpn { 9 } };
    EXPECT_EQ(RingPages::from_pages(two)->data_bytes(), 4096u);
}

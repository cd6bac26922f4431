// SPDX-License-Identifier: MIT
// Hypercalls through the hypercall port: control-word validation, HvPostMessage and
// HvSignalEvent forwarding with every bad input of guest-interface §3.4/§3.5/§10.5, and the IPI calls.
#include "vmm/hyperv/partition.hpp" // Header under test first.

#include <gtest/gtest.h>

#include "tests/unit/hyperv/hyperv_fakes.hpp"

namespace vmm::hyperv::test {
namespace {

constexpr std::uint64_t POST = 0x5C;
constexpr std::uint64_t FAST = std::uint64_t { 1 } << 16;

class HypercallTest : public PartitionTest {
protected:
    void SetUp() override { enable_hypercalls(); }
    // Writes an HvPostMessage input block at `gpa`.
    void write_post_input(std::uint64_t gpa, std::uint32_t connection_id, std::uint32_t type,
        std::vector<std::byte> const& payload, std::uint32_t declared_size, std::uint32_t reserved = 0)
    {
        ram.write(gpa, HvPostMessageInput { connection_id, reserved, type, declared_size });
        if (!payload.empty())
            ram.write_bytes(gpa + sizeof(HvPostMessageInput), payload);
    }
    void write_post_input(std::uint64_t gpa, std::vector<std::byte> const& payload)
    {
        write_post_input(gpa, 0x4, 1, payload, static_cast<std::uint32_t>(payload.size()));
    }
};

TEST_F(HypercallTest, OutWithoutAnEnabledHypercallPageLeavesRaxUntouched)
{
    partition.reset();
    EXPECT_EQ(call(0, 0x5D | FAST, 4), 0xDEADu);
    EXPECT_TRUE(sink.signals.empty());
    EXPECT_EQ(partition.stats().hypercalls, 0u);
}

TEST_F(HypercallTest, OutFromUserModeLeavesRaxUntouched)
{
    HypercallRegs regs { .rax = 7, .rcx = 0x5D | FAST, .rdx = 4, .r8 = 0, .cpl = 3 };
    partition.hypercall(0, regs);
    EXPECT_EQ(regs.rax, 7u);
    EXPECT_TRUE(sink.signals.empty());
}

TEST_F(HypercallTest, UnknownCodesAnswerInvalidHypercallCode)
{
    for (std::uint64_t code : { 0x0002, 0x0008, 0x0046, 0x8002, 0x8003, 0xFFFF })
        EXPECT_EQ(call(0, code, 0), 2u) << std::hex << code;
    EXPECT_EQ(partition.stats().hypercall_failures, 6u);
}

// HvExtCallQueryCapabilities (drivers/hv/hv_common.c:408-450): one u64 written to the output
// GPA, and no capability bit set, since no other extended call is implemented.
TEST_F(HypercallTest, ExtendedQueryCapabilitiesWritesZeroCapabilitiesToTheOutputPage)
{
    ram.write<std::uint64_t>(INPUT_PAGE_GPA + 8, 0xFFFF'FFFF'FFFF'FFFF);
    EXPECT_EQ(call(0, 0x8001, 0, INPUT_PAGE_GPA + 8), 0u);
    EXPECT_EQ(ram.read<std::uint64_t>(INPUT_PAGE_GPA + 8), 0u);
}

TEST_F(HypercallTest, ExtendedQueryCapabilitiesRefusesBadOutputAndFastOrRepForms)
{
    EXPECT_EQ(call(0, 0x8001, 0, INPUT_PAGE_GPA + 4), 4u);  // Unaligned: INVALID_ALIGNMENT.
    EXPECT_EQ(call(0, 0x8001, 0, HOLE_GPA), 4u);            // Not RAM.
    EXPECT_EQ(call(0, 0x8001, 0, RAM_HIGH + 0x1'0000), 4u); // Past the end of RAM.
    EXPECT_EQ(call(0, 0x8001 | FAST, 0, 0), 3u);            // INVALID_HYPERCALL_INPUT.
    EXPECT_EQ(call(0, 0x8001 | (std::uint64_t { 1 } << 32), 0, INPUT_PAGE_GPA), 3u); // Rep count.
}

TEST(HypercallConfig, ExtendedQueryIsAnUnknownCodeWhenNotOffered)
{
    FakeGuestMemory ram { { 0, 0x1'0000 } };
    RecordingInterrupts interrupts;
    PartitionConfig config { 1, TSC_HZ, APIC_HZ };
    config.enlightenments.extended_hypercalls = false;
    Partition partition { ram.memory(), interrupts, config };
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_GUEST_OS_ID, LINUX_GUEST_OS_ID));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_HYPERCALL, HYPERCALL_PAGE_GPA | 1));
    HypercallRegs regs { .rax = 0, .rcx = 0x8001, .rdx = 0, .r8 = INPUT_PAGE_GPA };
    partition.hypercall(0, regs);
    EXPECT_EQ(regs.rax, 2u);
    EXPECT_EQ(partition.cpuid_leaves()[3].ebx & (1u << 20), 0u);
}

TEST_F(HypercallTest, ReservedControlBitsAnswerInvalidInput)
{
    write_post_input(INPUT_PAGE_GPA, bytes_of({ 1 }));
    for (int bit : { 27, 31, 44, 47, 60, 63 })
        EXPECT_EQ(call(0, POST | (std::uint64_t { 1 } << bit), INPUT_PAGE_GPA), 3u) << bit;
    EXPECT_EQ(call(0, 0x1234 | (std::uint64_t { 1 } << 27), 0), 3u); // Before the code check.
    EXPECT_TRUE(sink.posts.empty());
}

TEST_F(HypercallTest, PostMessageForwardsVpConnectionTypeAndPayload)
{
    write_post_input(INPUT_PAGE_GPA, 0x0001'0004, 1, bytes_of({ 0x0E, 0, 0, 0, 0xAA }), 5);
    EXPECT_EQ(call(1, POST, INPUT_PAGE_GPA), 0u);
    ASSERT_EQ(sink.posts.size(), 1u);
    EXPECT_EQ(sink.posts[0].vp, 1u);
    EXPECT_EQ(sink.posts[0].connection_id, 0x0001'0004u);
    EXPECT_EQ(sink.posts[0].message_type, 1u);
    EXPECT_EQ(sink.posts[0].payload, bytes_of({ 0x0E, 0, 0, 0, 0xAA }));
}

TEST_F(HypercallTest, PostMessageReturnsTheSinkStatus)
{
    write_post_input(INPUT_PAGE_GPA, bytes_of({ 1, 2 }));
    sink.post_status = 19; // HV_STATUS_INSUFFICIENT_BUFFERS: back-pressure (guest-interface §3.4).
    EXPECT_EQ(call(0, POST, INPUT_PAGE_GPA), 19u);
}

TEST_F(HypercallTest, PostMessageWithFullPayloadAtPageStartIsAccepted)
{
    write_post_input(INPUT_PAGE_GPA, std::vector<std::byte>(240, std::byte { 0x77 }));
    EXPECT_EQ(call(0, POST, INPUT_PAGE_GPA), 0u);
    ASSERT_EQ(sink.posts.size(), 1u);
    EXPECT_EQ(sink.posts[0].payload.size(), 240u);
}

TEST_F(HypercallTest, PostMessageNearThePageEndIsAcceptedWhenTheDeclaredBlockFits)
{
    std::uint64_t const gpa = INPUT_PAGE_GPA + mem::PAGE_SIZE - 32; // 16-byte header + 16 bytes.
    write_post_input(gpa, std::vector<std::byte>(16, std::byte { 1 }));
    EXPECT_EQ(call(0, POST, gpa), 0u);
    EXPECT_EQ(sink.posts.size(), 1u);
}

TEST_F(HypercallTest, PostMessageCrossingAPageAnswersInvalidAlignment)
{
    std::uint64_t const gpa = INPUT_PAGE_GPA + mem::PAGE_SIZE - 24; // Header + 8 bytes fit; 9 do not.
    write_post_input(gpa, 0x4, 1, bytes_of({ 1, 2, 3, 4, 5, 6, 7, 8 }), 9);
    EXPECT_EQ(call(0, POST, gpa), 4u);
    std::uint64_t const header_crosses = INPUT_PAGE_GPA + mem::PAGE_SIZE - 8;
    EXPECT_EQ(call(0, POST, header_crosses), 4u);
    EXPECT_TRUE(sink.posts.empty());
}

TEST_F(HypercallTest, PostMessageWithUnalignedOrNonRamInputAnswersInvalidAlignment)
{
    write_post_input(INPUT_PAGE_GPA, bytes_of({ 1 }));
    EXPECT_EQ(call(0, POST, INPUT_PAGE_GPA + 4), 4u);
    EXPECT_EQ(call(0, POST, HOLE_GPA), 4u);
    EXPECT_EQ(call(0, POST, 0xFFFF'FFFF'FFFF'FF00), 4u);
    EXPECT_TRUE(sink.posts.empty());
}

TEST_F(HypercallTest, PostMessageWithOversizedPayloadAnswersInvalidParameter)
{
    write_post_input(INPUT_PAGE_GPA, 0x4, 1, std::vector<std::byte>(240), 241);
    EXPECT_EQ(call(0, POST, INPUT_PAGE_GPA), 5u);
    write_post_input(INPUT_PAGE_GPA, 0x4, 1, {}, 0xFFFF'FFFF);
    EXPECT_EQ(call(0, POST, INPUT_PAGE_GPA), 5u);
    EXPECT_TRUE(sink.posts.empty());
}

TEST_F(HypercallTest, PostMessageWithBadTypeOrReservedFieldAnswersInvalidParameter)
{
    write_post_input(INPUT_PAGE_GPA, 0x4, 0, bytes_of({ 1 }), 1);
    EXPECT_EQ(call(0, POST, INPUT_PAGE_GPA), 5u);
    write_post_input(INPUT_PAGE_GPA, 0x4, 0x8000'0001, bytes_of({ 1 }), 1);
    EXPECT_EQ(call(0, POST, INPUT_PAGE_GPA), 5u);
    write_post_input(INPUT_PAGE_GPA, 0x4, 1, bytes_of({ 1 }), 1, /*reserved=*/1);
    EXPECT_EQ(call(0, POST, INPUT_PAGE_GPA), 5u);
    EXPECT_TRUE(sink.posts.empty());
}

TEST_F(HypercallTest, PostMessageWithReservedConnectionIdBitsAnswersInvalidConnectionId)
{
    write_post_input(INPUT_PAGE_GPA, 0x0100'0004, 1, bytes_of({ 1 }), 1);
    EXPECT_EQ(call(0, POST, INPUT_PAGE_GPA), 18u);
    EXPECT_TRUE(sink.posts.empty());
}

TEST_F(HypercallTest, PostMessageRefusesFastRepAndVariableHeaderForms)
{
    write_post_input(INPUT_PAGE_GPA, bytes_of({ 1 }));
    EXPECT_EQ(call(0, POST | FAST, INPUT_PAGE_GPA), 3u);
    EXPECT_EQ(call(0, POST | (std::uint64_t { 1 } << 32), INPUT_PAGE_GPA), 3u);
    EXPECT_EQ(call(0, POST | (std::uint64_t { 1 } << 48), INPUT_PAGE_GPA), 3u);
    EXPECT_EQ(call(0, POST | (std::uint64_t { 1 } << 17), INPUT_PAGE_GPA), 3u);
    EXPECT_TRUE(sink.posts.empty());
}

TEST_F(HypercallTest, VmbusCallsWithoutASinkAnswerInvalidConnectionId)
{
    partition.set_hypercall_sink(nullptr);
    write_post_input(INPUT_PAGE_GPA, bytes_of({ 1 }));
    EXPECT_EQ(call(0, POST, INPUT_PAGE_GPA), 18u);
    EXPECT_EQ(call(0, 0x5D | FAST, 0x10001), 18u);
}

TEST_F(HypercallTest, FastSignalEventForwardsConnectionIdAndFlagNumber)
{
    EXPECT_EQ(call(1, 0x5D | FAST, 0x0000'0003'0001'0001), 0u);
    ASSERT_EQ(sink.signals.size(), 1u);
    EXPECT_EQ(sink.signals[0], (RecordingHypercalls::Signal { 1, 0x10001, 3 }));
}

TEST_F(HypercallTest, SignalEventReturnsTheSinkStatus)
{
    sink.signal_status = 18;
    EXPECT_EQ(call(0, 0x5D | FAST, 0x99), 18u);
}

TEST_F(HypercallTest, SlowSignalEventReadsItsInputFromGuestMemory)
{
    ram.write(INPUT_PAGE_GPA, HvSignalEventInput { 0x10001, 2, 0 });
    EXPECT_EQ(call(0, 0x5D, INPUT_PAGE_GPA), 0u);
    ASSERT_EQ(sink.signals.size(), 1u);
    EXPECT_EQ(sink.signals[0], (RecordingHypercalls::Signal { 0, 0x10001, 2 }));
    EXPECT_EQ(call(0, 0x5D, INPUT_PAGE_GPA + 4), 4u);
    EXPECT_EQ(call(0, 0x5D, HOLE_GPA), 4u);
}

TEST_F(HypercallTest, SignalEventRefusesReservedBitsAndRepForms)
{
    EXPECT_EQ(call(0, 0x5D | FAST, 0x0100'0001), 3u);                   // Connection id bits 24-31.
    EXPECT_EQ(call(0, 0x5D | FAST, 0x0001'0000'0000'0001), 3u);         // Bits 48-63.
    EXPECT_EQ(call(0, 0x5D | FAST | (std::uint64_t { 2 } << 32), 1), 3u); // Rep count.
    EXPECT_EQ(call(0, 0x5D | FAST | (std::uint64_t { 1 } << 17), 1), 3u); // Variable header.
    EXPECT_TRUE(sink.signals.empty());
}

} // namespace
} // namespace vmm::hyperv::test

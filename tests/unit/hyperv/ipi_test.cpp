// SPDX-License-Identifier: MIT
// HvCallSendSyntheticClusterIpi (0x0B) and its Ex form (0x15), used by guests when
// PartitionConfig::ipi_hypercalls advertises them (hints 10, 11). Layouts as Linux 6.1 sends
// them (arch/x86/hyperv/hv_apic.c:102-237).
#include "vmm/hyperv/partition.hpp" // Header under test first.

#include <gtest/gtest.h>

#include "tests/unit/hyperv/hyperv_fakes.hpp"

namespace vmm::hyperv::test {
namespace {

constexpr std::uint64_t SEND_IPI = 0x0B;
constexpr std::uint64_t SEND_IPI_EX = 0x15;
constexpr std::uint64_t FAST = std::uint64_t { 1 } << 16;
constexpr std::uint64_t varhead(std::uint64_t banks) { return banks << 17; }

// 130 VPs so that the Ex form can name banks 0, 1 and 2.
class IpiTest : public ::testing::Test {
protected:
    IpiTest() { enable(); }
    void enable()
    {
        EXPECT_TRUE(partition.write_msr(0, HV_X64_MSR_GUEST_OS_ID, LINUX_GUEST_OS_ID));
        EXPECT_TRUE(partition.write_msr(0, HV_X64_MSR_HYPERCALL, HYPERCALL_PAGE_GPA | 1));
    }
    std::uint64_t call(std::uint64_t control, std::uint64_t rdx, std::uint64_t r8 = 0)
    {
        HypercallRegs regs { .rax = 0xDEAD, .rcx = control, .rdx = rdx, .r8 = r8 };
        partition.hypercall(0, regs);
        return regs.rax;
    }
    void write_ex(std::uint32_t vector, std::uint64_t format, std::uint64_t valid_bank_mask,
        std::vector<std::uint64_t> const& banks, std::uint32_t reserved = 0)
    {
        ram.write(INPUT_PAGE_GPA, HvSendIpiExHeader { vector, reserved, format, valid_bank_mask });
        for (std::size_t i = 0; i < banks.size(); ++i)
            ram.write(INPUT_PAGE_GPA + sizeof(HvSendIpiExHeader) + i * 8, banks[i]);
    }

    FakeGuestMemory ram { { 0, 0x1'0000 } };
    RecordingInterrupts interrupts;
    Partition partition { ram.memory(), interrupts, PartitionConfig { 130, TSC_HZ, APIC_HZ } };
};

TEST_F(IpiTest, FastSendIpiInjectsTheVectorIntoEveryVpOfTheMask)
{
    EXPECT_EQ(call(SEND_IPI | FAST, 0xFD, 0b1011), 0u);
    EXPECT_EQ(interrupts.injected, (std::vector<Injection> { { 0, 0xFD }, { 1, 0xFD }, { 3, 0xFD } }));
    EXPECT_EQ(partition.stats().ipis_sent, 3u);
}

TEST_F(IpiTest, SlowSendIpiReadsTheMaskFromGuestMemory)
{
    ram.write(INPUT_PAGE_GPA, HvSendIpi { 0xFB, 0, std::uint64_t { 1 } << 63 });
    EXPECT_EQ(call(SEND_IPI, INPUT_PAGE_GPA), 0u);
    EXPECT_EQ(interrupts.injected, (std::vector<Injection> { { 63, 0xFB } }));
}

TEST_F(IpiTest, SendIpiWithEmptyMaskSucceedsWithoutInjecting)
{
    EXPECT_EQ(call(SEND_IPI | FAST, 0xFD, 0), 0u);
    EXPECT_TRUE(interrupts.injected.empty());
}

TEST_F(IpiTest, SendIpiRefusesExceptionVectorsReservedBitsAndVariableHeaders)
{
    EXPECT_EQ(call(SEND_IPI | FAST, 0x0F, 1), 3u);
    EXPECT_EQ(call(SEND_IPI | FAST, 0x100, 1), 3u);
    EXPECT_EQ(call(SEND_IPI | FAST, 0x1'0000'00FD, 1), 3u); // Reserved half of the first word.
    EXPECT_EQ(call(SEND_IPI | FAST | varhead(1), 0xFD, 1), 3u);
    EXPECT_EQ(call(SEND_IPI | FAST | (std::uint64_t { 1 } << 32), 0xFD, 1), 3u);
    EXPECT_EQ(call(SEND_IPI, INPUT_PAGE_GPA + 4), 4u);
    EXPECT_TRUE(interrupts.injected.empty());
}

TEST_F(IpiTest, ExSparseSetTargetsVpsByBank)
{
    // Banks 0 and 2 valid: bank 0 bit 1 = VP 1, bank 2 bit 1 = VP 129.
    write_ex(0xFC, HV_GENERIC_SET_SPARSE_4K, 0b101, { 0b10, 0b10 });
    EXPECT_EQ(call(SEND_IPI_EX | varhead(2), INPUT_PAGE_GPA), 0u);
    EXPECT_EQ(interrupts.injected, (std::vector<Injection> { { 1, 0xFC }, { 129, 0xFC } }));
}

TEST_F(IpiTest, ExIgnoresVpsBeyondThePartition)
{
    write_ex(0xFC, HV_GENERIC_SET_SPARSE_4K, 0b100, { std::uint64_t { 1 } << 2 | 1 }); // VPs 130, 128.
    EXPECT_EQ(call(SEND_IPI_EX | varhead(1), INPUT_PAGE_GPA), 0u);
    EXPECT_EQ(interrupts.injected, (std::vector<Injection> { { 128, 0xFC } }));
}

TEST_F(IpiTest, ExAllFormatTargetsEveryVp)
{
    write_ex(0xF0, HV_GENERIC_SET_ALL, 0, {});
    EXPECT_EQ(call(SEND_IPI_EX, INPUT_PAGE_GPA), 0u);
    EXPECT_EQ(interrupts.injected.size(), 130u);
    EXPECT_EQ(interrupts.injected.back(), (Injection { 129, 0xF0 }));
}

TEST_F(IpiTest, ExRefusesABankCountThatDisagreesWithTheValidMask)
{
    write_ex(0xFC, HV_GENERIC_SET_SPARSE_4K, 0b11, { 1, 1 });
    EXPECT_EQ(call(SEND_IPI_EX | varhead(1), INPUT_PAGE_GPA), 3u);
    EXPECT_EQ(call(SEND_IPI_EX | varhead(3), INPUT_PAGE_GPA), 3u);
    EXPECT_EQ(call(SEND_IPI_EX | varhead(65), INPUT_PAGE_GPA), 3u);
    EXPECT_TRUE(interrupts.injected.empty());
}

TEST_F(IpiTest, ExRefusesFastRepUnknownFormatReservedAndBadVectors)
{
    write_ex(0xFC, HV_GENERIC_SET_SPARSE_4K, 1, { 1 });
    EXPECT_EQ(call(SEND_IPI_EX | FAST | varhead(1), 0xFC, 0), 3u);
    EXPECT_EQ(call(SEND_IPI_EX | varhead(1) | (std::uint64_t { 1 } << 32), INPUT_PAGE_GPA), 3u);
    write_ex(0xFC, 7, 1, { 1 });
    EXPECT_EQ(call(SEND_IPI_EX | varhead(1), INPUT_PAGE_GPA), 5u);
    write_ex(0xFC, HV_GENERIC_SET_SPARSE_4K, 1, { 1 }, /*reserved=*/1);
    EXPECT_EQ(call(SEND_IPI_EX | varhead(1), INPUT_PAGE_GPA), 3u);
    write_ex(0x02, HV_GENERIC_SET_SPARSE_4K, 1, { 1 });
    EXPECT_EQ(call(SEND_IPI_EX | varhead(1), INPUT_PAGE_GPA), 3u);
    EXPECT_TRUE(interrupts.injected.empty());
}

TEST_F(IpiTest, ExInputCrossingAPageAnswersInvalidAlignment)
{
    // 24-byte header + 2 banks = 40 bytes starting 32 bytes before the page end.
    EXPECT_EQ(call(SEND_IPI_EX | varhead(2), INPUT_PAGE_GPA + mem::PAGE_SIZE - 32), 4u);
    EXPECT_TRUE(interrupts.injected.empty());
}

} // namespace
} // namespace vmm::hyperv::test

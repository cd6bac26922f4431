// SPDX-License-Identifier: MIT
// SynIC delivery through vmbus::SynicPort: message slots, msg_pending/EOM retry, masked and
// disabled SINTs, event flags, reset, and the lock-free slot protocol against a racing guest
// (guest-interface §4).
#include "vmm/hyperv/partition.hpp" // Header under test first.

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "tests/unit/hyperv/hyperv_fakes.hpp"

namespace vmm::hyperv::test {
namespace {

constexpr std::uint64_t SIMP_GPA = 0x5000;
constexpr std::uint64_t SIEFP_GPA = 0x6000;
constexpr std::uint64_t SLOT2 = SIMP_GPA + 2 * 256;
constexpr std::uint64_t FLAGS2 = SIEFP_GPA + 2 * 256;

class SynicTest : public PartitionTest {
protected:
    bool post(std::uint32_t vp, std::vector<std::byte> const& payload, std::uint32_t type = 1)
    {
        return partition.post_message(vp, 2, type, payload);
    }
    HvMessageHeader slot_header(std::uint64_t slot = SLOT2) { return ram.read<HvMessageHeader>(slot); }
    // What the guest does after handling a message (include/asm-generic/mshyperv.h:119-151).
    void guest_consume(std::uint32_t vp, std::uint64_t slot = SLOT2)
    {
        auto header = slot_header(slot);
        ram.write(slot, std::uint32_t { 0 });
        if ((header.message_flags & HV_MESSAGE_FLAG_PENDING) != 0) {
            ASSERT_TRUE(partition.write_msr(vp, HV_X64_MSR_EOM, 0));
        }
    }
};

TEST_F(SynicTest, PostedMessageLandsInTheSintSlotAndRaisesTheSintVector)
{
    enable_synic(1, SIMP_GPA, SIEFP_GPA);
    EXPECT_TRUE(post(1, bytes_of({ 0x0F, 0, 0, 0, 0x11 }), 1));
    auto const header = slot_header();
    EXPECT_EQ(header.message_type, 1u);
    EXPECT_EQ(header.payload_size, 5u);
    EXPECT_EQ(header.message_flags, 0u);
    EXPECT_EQ(ram.read_bytes(SLOT2 + 16, 5), bytes_of({ 0x0F, 0, 0, 0, 0x11 }));
    EXPECT_EQ(interrupts.injected, (std::vector<Injection> { { 1, 0xF3 } }));
    EXPECT_EQ(partition.stats().messages_delivered, 1u);
}

TEST_F(SynicTest, BusySlotGetsMsgPendingAndTheMessageIsRefused)
{
    enable_synic(0, SIMP_GPA, SIEFP_GPA);
    ASSERT_TRUE(post(0, bytes_of({ 1 })));
    EXPECT_FALSE(post(0, bytes_of({ 2, 2 })));
    auto const header = slot_header();
    EXPECT_EQ(header.payload_size, 1u); // First message untouched.
    EXPECT_EQ(header.message_flags & HV_MESSAGE_FLAG_PENDING, HV_MESSAGE_FLAG_PENDING);
    EXPECT_EQ(interrupts.injected.size(), 1u);
    EXPECT_EQ(partition.stats().messages_refused, 1u);
}

TEST_F(SynicTest, EomAfterABusySlotTellsTheSinkOnceAndTheRetrySucceeds)
{
    enable_synic(0, SIMP_GPA, SIEFP_GPA);
    ASSERT_TRUE(post(0, bytes_of({ 1 })));
    ASSERT_FALSE(post(0, bytes_of({ 2, 2 })));
    guest_consume(0);
    EXPECT_EQ(sink.freed, (std::vector<std::pair<std::uint32_t, std::uint8_t>> { { 0, 2 } }));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_EOM, 0));
    EXPECT_EQ(sink.freed.size(), 1u); // Nothing was waiting the second time.
    EXPECT_TRUE(post(0, bytes_of({ 2, 2 })));
    EXPECT_EQ(slot_header().payload_size, 2u);
    EXPECT_EQ(slot_header().message_flags, 0u);
    EXPECT_EQ(interrupts.injected.size(), 2u);
}

TEST_F(SynicTest, EomOnAnyVpRetriesWaitingSlotsOfEveryVp)
{
    enable_synic(1, SIMP_GPA, SIEFP_GPA);
    ASSERT_TRUE(post(1, bytes_of({ 1 })));
    ASSERT_FALSE(post(1, bytes_of({ 2 })));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_EOM, 0)); // Crash path: CPU 0 EOMs for CPU 1.
    EXPECT_EQ(sink.freed, (std::vector<std::pair<std::uint32_t, std::uint8_t>> { { 1, 2 } }));
}

TEST_F(SynicTest, MessageToAMaskedSintIsRefusedUntilTheGuestUnmasksIt)
{
    enable_synic(0, SIMP_GPA, SIEFP_GPA);
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_SINT0 + 2, 0x1'00F3));
    EXPECT_FALSE(post(0, bytes_of({ 1 })));
    EXPECT_EQ(slot_header().message_type, 0u);
    EXPECT_TRUE(sink.freed.empty());
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_SINT0 + 2, 0xF3));
    EXPECT_EQ(sink.freed, (std::vector<std::pair<std::uint32_t, std::uint8_t>> { { 0, 2 } }));
    EXPECT_TRUE(interrupts.injected.empty());
}

TEST_F(SynicTest, MessageBeforeTheSynicIsEnabledIsRefusedUntilScontrolIsSet)
{
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_SIMP, SIMP_GPA | 1));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_SINT0 + 2, 0xF3));
    EXPECT_FALSE(post(0, bytes_of({ 1 })));
    EXPECT_TRUE(sink.freed.empty());
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_SCONTROL, 1));
    EXPECT_EQ(sink.freed.size(), 1u);
    EXPECT_TRUE(post(0, bytes_of({ 1 })));
}

TEST_F(SynicTest, MessageWithTheMessagePageDisabledIsRefusedUntilItIsEnabled)
{
    enable_synic(0, SIMP_GPA, SIEFP_GPA);
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_SIMP, SIMP_GPA));
    EXPECT_FALSE(post(0, bytes_of({ 1 })));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_SIMP, SIMP_GPA | 1));
    EXPECT_EQ(sink.freed.size(), 1u);
}

TEST_F(SynicTest, MessageToANonexistentVpOrSintIsDroppedNotRefused)
{
    enable_synic(0, SIMP_GPA, SIEFP_GPA);
    EXPECT_TRUE(partition.post_message(7, 2, 1, bytes_of({ 1 })));
    EXPECT_TRUE(partition.post_message(0, 16, 1, bytes_of({ 1 })));
    EXPECT_TRUE(partition.post_message(0, 2, 1, std::vector<std::byte>(241)));
    EXPECT_TRUE(partition.post_message(0, 2, 0, bytes_of({ 1 })));
    EXPECT_EQ(slot_header().message_type, 0u);
    EXPECT_TRUE(interrupts.injected.empty());
}

TEST_F(SynicTest, PollingSintGetsTheMessageWithoutAnInterrupt)
{
    enable_synic(0, SIMP_GPA, SIEFP_GPA);
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_SINT0 + 2, 0x4'00F3));
    EXPECT_TRUE(post(0, bytes_of({ 1 })));
    EXPECT_EQ(slot_header().message_type, 1u);
    EXPECT_TRUE(interrupts.injected.empty());
}

TEST_F(SynicTest, EventFlagIsSetAtomicallyAndOnlyANewlySetFlagInterrupts)
{
    enable_synic(0, SIMP_GPA, SIEFP_GPA);
    partition.signal_event(0, 2, 1);
    partition.signal_event(0, 2, 1);
    partition.signal_event(0, 2, 130);
    EXPECT_EQ(ram.read<std::uint64_t>(FLAGS2), 0b10u);
    EXPECT_EQ(ram.read<std::uint64_t>(FLAGS2 + 16), 0b100u); // Bit 130 = word 2, bit 2.
    EXPECT_EQ(interrupts.injected, (std::vector<Injection> { { 0, 0xF3 }, { 0, 0xF3 } }));
    EXPECT_EQ(partition.stats().events_signalled, 2u);
}

TEST_F(SynicTest, EventOnAMaskedSintInterruptsOnceItIsUnmasked)
{
    enable_synic(0, SIMP_GPA, SIEFP_GPA);
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_SINT0 + 2, 0x1'00F3));
    partition.signal_event(0, 2, 5);
    EXPECT_EQ(ram.read<std::uint64_t>(FLAGS2), 0b10'0000u);
    EXPECT_TRUE(interrupts.injected.empty());
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_SINT0 + 2, 0xF3));
    EXPECT_EQ(interrupts.injected, (std::vector<Injection> { { 0, 0xF3 } }));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_SINT0 + 2, 0xF3));
    EXPECT_EQ(interrupts.injected.size(), 1u); // Delivered once.
}

TEST_F(SynicTest, EventWithoutAnEventPageOrOutOfRangeIsDropped)
{
    partition.signal_event(0, 2, 1); // SynIC never set up.
    enable_synic(0, SIMP_GPA, SIEFP_GPA);
    partition.signal_event(0, 2, 2048);
    partition.signal_event(0, 16, 1);
    partition.signal_event(9, 2, 1);
    EXPECT_EQ(ram.read<std::uint64_t>(FLAGS2), 0u);
    EXPECT_TRUE(interrupts.injected.empty());
}

TEST_F(SynicTest, KickReraisesOnlySintsWhoseSlotIsStillOccupied)
{
    enable_synic(0, SIMP_GPA, SIEFP_GPA);
    enable_synic(1, 0x8000, 0x9000);
    ASSERT_TRUE(post(1, bytes_of({ 1 })));
    interrupts.injected.clear();
    EXPECT_TRUE(partition.kick_pending_messages()); // Still occupied: worth another kick later.
    EXPECT_EQ(interrupts.injected, (std::vector<Injection> { { 1, 0xF3 } }));
    guest_consume(1, 0x8000 + 512);
    interrupts.injected.clear();
    EXPECT_FALSE(partition.kick_pending_messages()); // Nothing left: the VMM stops its timer.
    EXPECT_TRUE(interrupts.injected.empty());
}

TEST_F(SynicTest, KickLeavesMaskedSintsAlone)
{
    enable_synic(0, SIMP_GPA, SIEFP_GPA);
    ASSERT_TRUE(post(0, bytes_of({ 1 })));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_SINT0 + 2, 0x1'00F3));
    interrupts.injected.clear();
    partition.kick_pending_messages();
    EXPECT_TRUE(interrupts.injected.empty());
}

TEST_F(SynicTest, ResetForgetsTheSynicAndWaitingSlots)
{
    enable_synic(0, SIMP_GPA, SIEFP_GPA);
    ASSERT_TRUE(post(0, bytes_of({ 1 })));
    ASSERT_FALSE(post(0, bytes_of({ 2 })));
    partition.reset();
    EXPECT_FALSE(post(0, bytes_of({ 3 }))); // SynIC disabled after reset.
    EXPECT_EQ(partition.read_msr(0, HV_X64_MSR_SINT0 + 2), 0x10000u);
    sink.freed.clear();
    enable_synic(0, 0x8000, 0x9000);
    // Only the post made after the reset is waiting.
    EXPECT_EQ(sink.freed, (std::vector<std::pair<std::uint32_t, std::uint8_t>> { { 0, 2 } }));
    EXPECT_TRUE(post(0, bytes_of({ 3 })));
    EXPECT_EQ(ram.read<HvMessageHeader>(0x8000 + 512).message_type, 1u);
}

// A guest vCPU thread consumes messages while the host posts them from another thread, with
// the guest's order (clear type, then read msg_pending, then EOM). Every message must arrive,
// in order, with no lost wake-up.
TEST(SynicRace, EveryMessageArrivesInOrderWhileTheGuestConsumesConcurrently)
{
    FakeGuestMemory ram { { 0, 0x1'0000 } };
    std::mutex mutex;
    std::condition_variable freed_cv;
    bool freed = false;
    struct Sink final : HypercallSink {
        std::mutex& mutex;
        std::condition_variable& cv;
        bool& freed;
        Sink(std::mutex& m, std::condition_variable& c, bool& f) : mutex(m), cv(c), freed(f) { }
        std::uint16_t post_message(std::uint32_t, std::uint32_t, std::uint32_t, std::span<std::byte const>) override { return 0; }
        std::uint16_t signal_event(std::uint32_t, std::uint32_t, std::uint16_t) override { return 0; }
        void message_slot_freed(std::uint32_t, std::uint8_t) override
        {
            std::lock_guard lock { mutex };
            freed = true;
            cv.notify_one();
        }
    } sink { mutex, freed_cv, freed };
    struct NullInterrupts final : InterruptSink {
        void inject(std::uint32_t, std::uint8_t) override { }
    } interrupts;
    Partition partition { ram.memory(), interrupts, PartitionConfig { 1, TSC_HZ, APIC_HZ } };
    partition.set_hypercall_sink(&sink);
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_SIMP, SIMP_GPA | 1));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_SINT0 + 2, 0xF3));
    ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_SCONTROL, 1));

    constexpr std::uint32_t COUNT = 20'000;
    auto slot = ram.memory().contiguous(mem::Gpa { SLOT2 }, 256).value();
    std::atomic_ref<std::uint32_t> type { *reinterpret_cast<std::uint32_t*>(slot.data()) };
    std::atomic_ref<std::uint8_t> flags { *reinterpret_cast<std::uint8_t*>(slot.data() + 5) };
    std::atomic<bool> stop { false };
    std::thread guest([&] {
        for (std::uint32_t expected = 1; expected <= COUNT; ++expected) {
            while (type.load(std::memory_order_acquire) == 0) {
                if (stop.load(std::memory_order_relaxed))
                    return;
                std::this_thread::yield();
            }
            std::uint32_t value;
            std::memcpy(&value, slot.data() + 16, sizeof(value));
            EXPECT_EQ(value, expected);
            type.exchange(0, std::memory_order_seq_cst); // Linux: cmpxchg (full barrier).
            if ((flags.load(std::memory_order_seq_cst) & HV_MESSAGE_FLAG_PENDING) != 0)
                partition.write_msr(0, HV_X64_MSR_EOM, 0);
        }
    });
    for (std::uint32_t n = 1; n <= COUNT && !stop; ++n) {
        auto const payload = std::as_bytes(std::span { &n, 1 });
        while (!partition.post_message(0, 2, 1, payload)) {
            std::unique_lock lock { mutex };
            if (!freed_cv.wait_for(lock, std::chrono::seconds(10), [&] { return freed; })) {
                ADD_FAILURE() << "lost wake-up at message " << n;
                stop = true;
                break;
            }
            freed = false;
        }
    }
    guest.join();
    EXPECT_EQ(partition.stats().messages_delivered, COUNT);
}

} // namespace
} // namespace vmm::hyperv::test

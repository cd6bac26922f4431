// SPDX-License-Identifier: MIT
// Fakes for the Hyper-V partition tests: recording InterruptSink / HypercallSink implementations
// (guest RAM is the shared FakeGuestMemory).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "base/wire.hpp"
#include "mem/guest_memory.hpp"
#include "tests/support/fake_guest_memory.hpp"
#include "vmm/hyperv/hvdef.hpp"
#include "vmm/hyperv/partition.hpp"

namespace vmm::hyperv::test {

using vmm::test::FakeGuestMemory; // Guest RAM with holes: tests/support/fake_guest_memory.hpp.

struct Injection {
    std::uint32_t vp;
    std::uint8_t vector;
    bool operator==(Injection const&) const = default;
};

class RecordingInterrupts final : public InterruptSink {
public:
    void inject(std::uint32_t vp, std::uint8_t vector) override { injected.push_back(Injection { vp, vector }); }
    std::vector<Injection> injected;
};

class RecordingHypercalls final : public HypercallSink {
public:
    struct Post {
        std::uint32_t vp;
        std::uint32_t connection_id;
        std::uint32_t message_type;
        std::vector<std::byte> payload;
    };
    struct Signal {
        std::uint32_t vp;
        std::uint32_t connection_id;
        std::uint16_t flag_number;
        bool operator==(Signal const&) const = default;
    };
    std::uint16_t post_message(std::uint32_t vp, std::uint32_t connection_id, std::uint32_t message_type,
        std::span<std::byte const> payload) override
    {
        posts.push_back(Post { vp, connection_id, message_type, { payload.begin(), payload.end() } });
        return post_status;
    }
    std::uint16_t signal_event(std::uint32_t vp, std::uint32_t connection_id, std::uint16_t flag_number) override
    {
        signals.push_back(Signal { vp, connection_id, flag_number });
        return signal_status;
    }
    void message_slot_freed(std::uint32_t vp, std::uint8_t sint) override { freed.emplace_back(vp, sint); }

    std::uint16_t post_status = 0;
    std::uint16_t signal_status = 0;
    std::vector<Post> posts;
    std::vector<Signal> signals;
    std::vector<std::pair<std::uint32_t, std::uint8_t>> freed;
};

// Layout used by most tests: RAM [0, 64 KiB) and [128 KiB, 192 KiB), hole in between.
inline constexpr std::uint64_t RAM_LOW_END = 0x1'0000;
inline constexpr std::uint64_t HOLE_GPA = 0x1'8000;
inline constexpr std::uint64_t RAM_HIGH = 0x2'0000;
inline constexpr std::uint64_t HYPERCALL_PAGE_GPA = 0x3000;
inline constexpr std::uint64_t INPUT_PAGE_GPA = 0x4000;
inline constexpr std::uint64_t LINUX_GUEST_OS_ID = 0x8100'0006'01C0'0000; // Contract §1.4, 6.1.192.
inline constexpr std::uint64_t TSC_HZ = 2'599'998'000;
inline constexpr std::uint64_t APIC_HZ = 1'000'000'000;

// A guest TSC the test moves by hand (GuestTscReader of the partition's reference clock).
struct FakeTsc {
    std::atomic<std::uint64_t> value { 1'000'000'000'000 }; // Arbitrary non-zero start.
    GuestTscReader reader()
    {
        return [this] { return value.load(); };
    }
    // Advances by `ticks` reference-time units (100 ns) at TSC_HZ, rounded up.
    void advance_100ns(std::uint64_t ticks, std::uint64_t tsc_hz)
    {
        value += (static_cast<u128>(ticks) * tsc_hz + HV_CLOCK_HZ - 1) / HV_CLOCK_HZ;
    }
};

inline PartitionConfig default_config(std::uint32_t vcpus, std::uint64_t tsc_hz, std::uint64_t apic_hz, FakeTsc& tsc)
{
    PartitionConfig config { vcpus, tsc_hz, apic_hz };
    config.read_guest_tsc = tsc.reader();
    return config;
}

class PartitionTest : public ::testing::Test {
protected:
    PartitionTest()
        : partition(ram.memory(), interrupts, default_config(2, TSC_HZ, APIC_HZ, tsc))
    {
        partition.set_hypercall_sink(&sink);
    }
    void enable_hypercalls()
    {
        ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_GUEST_OS_ID, LINUX_GUEST_OS_ID));
        ASSERT_TRUE(partition.write_msr(0, HV_X64_MSR_HYPERCALL, HYPERCALL_PAGE_GPA | HV_X64_MSR_HYPERCALL_ENABLE));
    }
    std::uint64_t call(std::uint32_t vp, std::uint64_t control, std::uint64_t rdx, std::uint64_t r8 = 0)
    {
        HypercallRegs regs { .rax = 0xDEAD, .rcx = control, .rdx = rdx, .r8 = r8 };
        partition.hypercall(vp, regs);
        return regs.rax;
    }
    // Linux's per-CPU SynIC bring-up order (drivers/hv/hv.c:170-241): SIMP, SIEFP, SINT2, SCONTROL.
    void enable_synic(std::uint32_t vp, std::uint64_t simp, std::uint64_t siefp, std::uint8_t sint = 2,
        std::uint8_t vector = 0xF3)
    {
        ASSERT_TRUE(partition.write_msr(vp, HV_X64_MSR_SIMP, simp | HV_SYNIC_SIMP_ENABLE));
        ASSERT_TRUE(partition.write_msr(vp, HV_X64_MSR_SIEFP, siefp | HV_SYNIC_SIEFP_ENABLE));
        ASSERT_TRUE(partition.write_msr(vp, HV_X64_MSR_SINT0 + sint, vector));
        ASSERT_TRUE(partition.write_msr(vp, HV_X64_MSR_SCONTROL, HV_SYNIC_CONTROL_ENABLE));
    }

    FakeGuestMemory ram { { 0, RAM_LOW_END }, { RAM_HIGH, 0x1'0000 } };
    RecordingInterrupts interrupts;
    RecordingHypercalls sink;
    FakeTsc tsc;
    Partition partition;
};

inline std::vector<std::byte> bytes_of(std::initializer_list<int> values)
{
    std::vector<std::byte> bytes;
    for (int value : values)
        bytes.push_back(static_cast<std::byte>(value));
    return bytes;
}

} // namespace vmm::hyperv::test

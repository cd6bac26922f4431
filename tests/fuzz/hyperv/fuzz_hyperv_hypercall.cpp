// SPDX-License-Identifier: MIT
// Fuzzes the Hyper-V partition as a hostile guest sees it: random synthetic MSR writes/reads,
// hypercalls with random control words and input pages, scribbles over the SynIC pages, and
// host-side posts/events interleaved. The sinks call back into the partition (re-entrancy).
// Oracles: no crash/UB (ASan/UBSan); every status is one the TLFS defines; injected vectors are
// valid and target existing VPs; VP_INDEX and SVERSION never change.
#include "vmm/hyperv/partition.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <array>
#include <vector>

#include "base/log.hpp"
#include "tests/support/fake_guest_memory.hpp"
#include "vmm/hyperv/hvdef.hpp"

namespace {

using namespace vmm;
using namespace vmm::hyperv;

constexpr std::uint32_t VCPUS = 3;
constexpr std::uint64_t RAM_BYTES = 16 * mem::PAGE_SIZE; // RAM [0, 64 KiB), hole above.

struct Interrupts final : InterruptSink {
    void inject(std::uint32_t vp, std::uint8_t vector) override
    {
        if (vp >= VCPUS || vector < 16)
            __builtin_trap();
    }
};

struct Sink final : HypercallSink {
    Partition* partition = nullptr;
    std::uint16_t post_message(std::uint32_t vp, std::uint32_t, std::uint32_t message_type,
        std::span<std::byte const> payload) override
    {
        if (vp >= VCPUS || payload.size() > HV_MESSAGE_PAYLOAD_BYTE_COUNT || message_type == 0)
            __builtin_trap();
        return 0;
    }
    std::uint16_t signal_event(std::uint32_t vp, std::uint32_t connection_id, std::uint16_t) override
    {
        if (vp >= VCPUS || connection_id > HV_CONNECTION_ID_MASK)
            __builtin_trap();
        return HV_STATUS_INVALID_CONNECTION_ID;
    }
    void message_slot_freed(std::uint32_t vp, std::uint8_t sint) override
    {
        // Like the VMBus host: retry right away, from inside the partition's callback.
        std::array<std::byte, 8> payload {};
        partition->post_message(vp, sint, 1, payload);
    }
};

constexpr std::array<std::uint32_t, 16> INTERESTING_MSRS { HV_X64_MSR_GUEST_OS_ID, HV_X64_MSR_HYPERCALL,
    HV_X64_MSR_VP_INDEX, HV_X64_MSR_VP_ASSIST_PAGE, HV_X64_MSR_SCONTROL, HV_X64_MSR_SVERSION, HV_X64_MSR_SIEFP,
    HV_X64_MSR_SIMP, HV_X64_MSR_EOM, HV_X64_MSR_SINT0 + 2, HV_X64_MSR_SINT0 + 5, HV_X64_MSR_CRASH_CTL,
    HV_X64_MSR_CRASH_P0, HV_X64_MSR_TSC_INVARIANT_CONTROL, HV_X64_MSR_REFERENCE_TSC, HV_X64_MSR_TSC_FREQUENCY };
constexpr std::array<std::uint16_t, 6> CODES { HVCALL_POST_MESSAGE, HVCALL_SIGNAL_EVENT, HVCALL_SEND_IPI,
    HVCALL_SEND_IPI_EX, HVCALL_GET_PARTITION_ID, 0x8001 };

bool known_status(std::uint16_t status)
{
    switch (status) {
    case HV_STATUS_SUCCESS:
    case HV_STATUS_INVALID_HYPERCALL_CODE:
    case HV_STATUS_INVALID_HYPERCALL_INPUT:
    case HV_STATUS_INVALID_ALIGNMENT:
    case HV_STATUS_INVALID_PARAMETER:
    case HV_STATUS_INVALID_CONNECTION_ID:
        return true;
    default:
        return false;
    }
}

std::uint64_t guest_address(FuzzedDataProvider& input)
{
    // Mostly inside RAM (page-aligned or not), sometimes in the hole or anywhere.
    switch (input.ConsumeIntegralInRange<int>(0, 3)) {
    case 0:
        return input.ConsumeIntegralInRange<std::uint64_t>(0, RAM_BYTES / mem::PAGE_SIZE) * mem::PAGE_SIZE;
    case 1:
        return input.ConsumeIntegralInRange<std::uint64_t>(0, RAM_BYTES + mem::PAGE_SIZE);
    default:
        return input.ConsumeIntegral<std::uint64_t>();
    }
}

// A page address and its enable bit, read in that order (the operands of | may be evaluated in
// either order: g++, the corpus replay, and clang, the fuzzer, differ).
std::uint64_t enabled_address(FuzzedDataProvider& input)
{
    std::uint64_t const address = guest_address(input);
    return address | input.ConsumeIntegralInRange<std::uint64_t>(0, 1);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    static bool const quiet = (log::set_level(log::Level::Off), true); // Hostile MSRs warn on every run.
    (void)quiet;
    FuzzedDataProvider input { data, size };
    // One RAM for every input, put back to all-zero first (FakeGuestMemory::reset rewrites only
    // the pages the last input touched): a fresh allocation per input would dominate the run.
    static test::FakeGuestMemory ram { { 0, RAM_BYTES } };
    ram.reset();
    Interrupts interrupts;
    Sink sink;
    Partition partition { ram.memory(), interrupts, PartitionConfig { VCPUS, 2'000'000'000, 1'000'000'000 } };
    sink.partition = &partition;
    partition.set_hypercall_sink(&sink);

    while (input.remaining_bytes() > 0) {
        std::uint32_t const vp = input.ConsumeIntegralInRange<std::uint32_t>(0, VCPUS - 1);
        switch (input.ConsumeIntegralInRange<int>(0, 8)) {
        case 0: { // WRMSR
            std::uint32_t msr = input.ConsumeBool() ? input.PickValueInArray(INTERESTING_MSRS)
                                                    : input.ConsumeIntegralInRange<std::uint32_t>(0x4000'0000, 0x4000'0200);
            std::uint64_t value = input.ConsumeBool() ? enabled_address(input)
                                                      : input.ConsumeIntegral<std::uint64_t>();
            partition.write_msr(vp, msr, value);
            break;
        }
        case 1: { // RDMSR
            std::uint32_t msr = input.ConsumeIntegralInRange<std::uint32_t>(0x4000'0000, 0x4000'0200);
            auto value = partition.read_msr(vp, msr);
            if (msr == HV_X64_MSR_VP_INDEX && value != vp)
                __builtin_trap();
            if (msr == HV_X64_MSR_SVERSION && value != 1u)
                __builtin_trap();
            break;
        }
        case 2: { // Hypercall
            std::uint64_t control = input.ConsumeBool() ? input.PickValueInArray(CODES) : input.ConsumeIntegral<std::uint16_t>();
            if (input.ConsumeBool())
                control |= input.ConsumeIntegral<std::uint64_t>() & ~std::uint64_t { 0xFFFF };
            HypercallRegs regs { .rax = 0, .rcx = control, .rdx = guest_address(input), .r8 = input.ConsumeIntegral<std::uint64_t>() };
            bool const enabled = partition.hypercall_page_enabled();
            partition.hypercall(vp, regs);
            if (enabled && (!known_status(static_cast<std::uint16_t>(regs.rax)) || (regs.rax >> 16) != 0))
                __builtin_trap();
            break;
        }
        case 3: { // The guest scribbles over its own memory (input pages, SynIC pages).
            std::uint64_t offset = input.ConsumeIntegralInRange<std::uint64_t>(0, RAM_BYTES - 8);
            std::uint64_t value = input.ConsumeIntegral<std::uint64_t>();
            std::memcpy(ram.host(0).data() + offset, &value, sizeof(value));
            break;
        }
        case 4: { // Host posts a message.
            auto payload = input.ConsumeBytes<std::byte>(input.ConsumeIntegralInRange<std::size_t>(0, 241));
            std::uint32_t const target = input.ConsumeIntegralInRange<std::uint32_t>(0, VCPUS);
            std::uint8_t const sint = input.ConsumeIntegralInRange<std::uint8_t>(0, 16);
            partition.post_message(target, sint, input.ConsumeIntegral<std::uint32_t>(), payload);
            break;
        }
        case 5: { // Host signals an event.
            std::uint32_t const target = input.ConsumeIntegralInRange<std::uint32_t>(0, VCPUS);
            std::uint8_t const sint = input.ConsumeIntegralInRange<std::uint8_t>(0, 16);
            partition.signal_event(target, sint, input.ConsumeIntegralInRange<std::uint32_t>(0, 2100));
            break;
        }
        case 6:
            partition.write_msr(vp, HV_X64_MSR_EOM, 0);
            break;
        case 7:
            partition.kick_pending_messages();
            break;
        default:
            partition.reset();
            break;
        }
    }
    return 0;
}

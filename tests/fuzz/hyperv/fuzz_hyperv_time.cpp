// SPDX-License-Identifier: MIT
// Fuzzes the Hyper-V time engine as a hostile guest and a wayward host clock see it: random
// STIMER0-3 CONFIG/COUNT, REFERENCE_TSC, VP assist page, SynIC and EOM writes on three VPs, reads of every
// synthetic MSR, guest scribbles over the message slots, TSC jumps (tiny to years) and runs of
// the timer engine. Oracles (besides ASan/UBSan):
//  - nothing is written outside guest RAM: FakeGuestMemory's PROT_NONE guard pages around it
//    fault on a stray host access (the crash libFuzzer reports);
//  - injected vectors are >= 16 and target existing VPs;
//  - reference time never goes backwards, and an enabled TSC page read with the guest's
//    formula gives exactly TIME_REF_COUNT at the same TSC;
//  - STIMER CONFIG never reads back reserved bits; run_expired() never returns an expiration
//    that is already due (it would make the host thread spin).
#include "vmm/hyperv/partition.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <array>
#include <vector>

#include "base/log.hpp"
#include "vmm/hyperv/hvdef.hpp"
#include "vmm/hyperv/reference_time.hpp"
#include "vmm/hyperv/synthetic_timers.hpp"
#include "tests/support/fake_guest_memory.hpp"

namespace {

using namespace vmm;
using namespace vmm::hyperv;

constexpr std::uint32_t VCPUS = 3;
constexpr std::uint64_t RAM_BYTES = 16 * mem::PAGE_SIZE;
constexpr std::uint64_t TSC_HZ = 2'596'094'000;

struct Interrupts final : InterruptSink {
    void inject(std::uint32_t vp, std::uint8_t vector) override
    {
        if (vp >= VCPUS || vector < 16)
            __builtin_trap();
    }
};

constexpr std::array<std::uint32_t, 11> SYNIC_MSRS { HV_X64_MSR_SCONTROL, HV_X64_MSR_SIMP, HV_X64_MSR_SIEFP,
    HV_X64_MSR_EOM, HV_X64_MSR_SINT0, HV_X64_MSR_SINT0 + 2, HV_X64_MSR_SINT0 + 3, HV_X64_MSR_SINT0 + 15,
    HV_X64_MSR_REFERENCE_TSC, HV_X64_MSR_RESET, HV_X64_MSR_VP_ASSIST_PAGE };

std::uint64_t guest_address(FuzzedDataProvider& input)
{
    switch (input.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: return input.ConsumeIntegralInRange<std::uint64_t>(0, RAM_BYTES / mem::PAGE_SIZE) * mem::PAGE_SIZE;
    case 1: return input.ConsumeIntegralInRange<std::uint64_t>(0, RAM_BYTES + mem::PAGE_SIZE);
    default: return input.ConsumeIntegral<std::uint64_t>();
    }
}

// A page address and its enable bit, read in that order (the operands of | may be evaluated in
// either order: g++, the corpus replay, and clang, the fuzzer, differ).
std::uint64_t enabled_address(FuzzedDataProvider& input)
{
    std::uint64_t const address = guest_address(input);
    return address | input.ConsumeIntegralInRange<std::uint64_t>(0, 1);
}

std::uint64_t stimer_config(FuzzedDataProvider& input)
{
    if (input.ConsumeBool())
        return input.ConsumeIntegral<std::uint64_t>();
    std::uint64_t config = input.ConsumeIntegralInRange<std::uint64_t>(0, 0xF); // enable..auto_enable
    config |= std::uint64_t { input.ConsumeIntegral<std::uint8_t>() } << HV_STIMER_VECTOR_SHIFT;
    if (input.ConsumeBool())
        config |= HV_STIMER_DIRECT_MODE;
    config |= input.ConsumeIntegralInRange<std::uint64_t>(0, 15) << HV_STIMER_SINT_SHIFT;
    return config;
}

std::uint64_t stimer_count(FuzzedDataProvider& input, std::uint64_t now)
{
    switch (input.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: return now + input.ConsumeIntegralInRange<std::uint64_t>(0, 100'000);
    case 1: return input.ConsumeIntegralInRange<std::uint64_t>(0, 20'000); // Periods, tiny to 2 ms.
    default: return input.ConsumeIntegral<std::uint64_t>();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    static bool const quiet = (log::set_level(log::Level::Off), true); // Hostile MSR writes warn.
    (void)quiet;
    FuzzedDataProvider input { data, size };
    // One RAM for every input, reset to all-zero (only the pages the last input touched).
    static test::FakeGuestMemory ram { { 0, RAM_BYTES } };
    ram.reset();
    mem::GuestMemory const* memory = &ram.memory();
    std::uint64_t tsc = input.ConsumeIntegral<std::uint32_t>();
    Interrupts interrupts;
    PartitionConfig config { VCPUS, TSC_HZ, 1'000'000'000 };
    config.read_guest_tsc = [&tsc] { return tsc; };
    Partition partition { ram.memory(), interrupts, config };
    SyntheticTimers& timers = *partition.synthetic_timers();
    std::uint64_t last_ref = 0;

    while (input.remaining_bytes() > 0) {
        std::uint32_t const vp = input.ConsumeIntegralInRange<std::uint32_t>(0, VCPUS - 1);
        std::uint64_t const now = *partition.read_msr(vp, HV_X64_MSR_TIME_REF_COUNT);
        if (now < last_ref)
            __builtin_trap(); // Reference time went backwards.
        last_ref = now;
        switch (input.ConsumeIntegralInRange<int>(0, 7)) {
        case 0: { // STIMERn_CONFIG / COUNT
            std::uint32_t const timer = input.ConsumeIntegralInRange<std::uint32_t>(0, HV_SYNIC_STIMER_COUNT - 1);
            if (input.ConsumeBool())
                partition.write_msr(vp, HV_X64_MSR_STIMER0_CONFIG + 2 * timer, stimer_config(input));
            else
                partition.write_msr(vp, HV_X64_MSR_STIMER0_CONFIG + 2 * timer + 1, stimer_count(input, now));
            auto const read = partition.read_msr(vp, HV_X64_MSR_STIMER0_CONFIG + 2 * timer);
            if (!read || (*read & HV_STIMER_RESERVED_MASK) != 0)
                __builtin_trap();
            break;
        }
        case 1: { // SynIC, TSC page, VP assist page, reset
            std::uint32_t const msr = input.PickValueInArray(SYNIC_MSRS);
            std::uint64_t const value = input.ConsumeBool()
                ? enabled_address(input)
                : input.ConsumeIntegralInRange<std::uint64_t>(0, 0x3'00FF);
            partition.write_msr(vp, msr, value);
            break;
        }
        case 2: // Any synthetic MSR read.
            (void)partition.read_msr(vp, input.ConsumeIntegralInRange<std::uint32_t>(0x4000'0000, 0x4000'01FF));
            break;
        case 3: // The clock moves: a little, a lot, or years.
            tsc += input.ConsumeBool() ? input.ConsumeIntegralInRange<std::uint64_t>(0, TSC_HZ / 100)
                                       : input.ConsumeIntegralInRange<std::uint64_t>(0, TSC_HZ * 86'400 * 365);
            break;
        case 4: { // The host timer thread runs.
            auto const next = timers.run_expired(now);
            if (next && *next <= now)
                __builtin_trap(); // Would spin.
            break;
        }
        case 5: { // The guest consumes or scribbles over a message slot.
            std::uint64_t const slot = input.ConsumeIntegralInRange<std::uint64_t>(0, RAM_BYTES / 256 - 1) * 256;
            std::uint32_t const type = input.ConsumeBool() ? 0 : input.ConsumeIntegral<std::uint32_t>();
            (void)memory->write_obj(mem::Gpa { slot }, type);
            break;
        }
        case 6: { // The TSC page, if enabled in RAM, tells the MSR's time to the tick.
            std::uint64_t const msr = *partition.read_msr(vp, HV_X64_MSR_REFERENCE_TSC);
            std::uint64_t const gpa = msr & HV_PAGE_ADDRESS_MASK;
            if ((msr & 1) != 0 && gpa + mem::PAGE_SIZE <= RAM_BYTES) {
                auto const page = memory->read_obj<HvReferenceTscPage>(mem::Gpa { gpa });
                // The guest may have overwritten its own page; only a page we own is checked.
                if (page && page->tsc_sequence != 0 && page->tsc_scale == partition.reference_clock()->scale()
                    && page->tsc_offset == partition.reference_clock()->offset()
                    && reference_time_from_tsc(tsc, page->tsc_scale, page->tsc_offset)
                        != *partition.read_msr(vp, HV_X64_MSR_TIME_REF_COUNT))
                    __builtin_trap();
            }
            break;
        }
        default:
            partition.post_message(vp, input.ConsumeIntegralInRange<std::uint8_t>(0, 15), 1, {});
            break;
        }
    }
    return 0;
}

// SPDX-License-Identifier: MIT
// hyperv::TrafficTap: an observer of what the guest asks of the Hyper-V partition (synthetic MSR
// writes and hypercalls), for the opt-in guest traffic recorder (vmm/backends/
// traffic_recorder.hpp, README "Fuzzing": seeds from a real guest). Off (nullptr) by default:
// the partition then pays one atomic load per synthetic WRMSR and hypercall. Called on vCPU
// threads with no Partition lock held, before the partition acts on the input.
#pragma once

#include <cstdint>
#include <span>

namespace vmm::hyperv {

class TrafficTap {
public:
    virtual ~TrafficTap() = default;
    // A WRMSR in the synthetic range (0x40000000-0x400001FF), accepted or not.
    virtual void on_msr_write(std::uint32_t vp, std::uint32_t msr, std::uint64_t value) = 0;
    // A hypercall from CPL 0 with the hypercall page enabled: its registers and, for a memory
    // (non-fast) call, the start of its input page as the guest wrote it (empty if not in RAM).
    virtual void on_hypercall(std::uint32_t vp, std::uint64_t control, std::uint64_t input, std::uint64_t output,
        std::span<std::byte const> input_bytes) = 0;
};

} // namespace vmm::hyperv

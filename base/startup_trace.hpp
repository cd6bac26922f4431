// SPDX-License-Identifier: MIT
// Start-up phase recorder: monotonic timestamps of the steps from main() to the first KVM_RUN
// and the time spent inside KVM's own ioctls (the host's floor, which the VMM cannot shorten),
// so `make bench` can split start-up into "host KVM" and "the VMM's own work". A record is two
// clock_gettime(CLOCK_MONOTONIC) vDSO reads; nothing is allocated. Any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace vmm::startup {

enum class Phase : std::uint8_t {
    KvmOpened,      // /dev/kvm opened and checked.
    ConfigLoaded,   // Config parsed and validated (kernel head read).
    LoopReady,      // Event loop, API server (if any) up.
    VmCreated,      // KVM_CREATE_VM returned.
    PlatformReady,  // TSS, identity map, irqchip, PIT.
    MemoryReady,    // Boot RAM memfd mapped, memslots registered.
    DevicesReady,   // Port-I/O devices attached.
    VcpusReady,     // vCPUs created, CPUID set (and the Hyper-V partition).
    GuestLoaded,    // Kernel, initrd, ACPI, boot info in guest RAM; BSP registers set.
    MachineReady,   // Runner hooks done (DM device registered).
    FirstRun,       // vCPU 0 about to enter KVM_RUN for the first time.
    Count,
};

// Host time inside KVM ioctls, by what they do.
enum class KvmCall : std::uint8_t {
    CreateVm,   // KVM_CREATE_VM.
    Memslots,   // KVM_SET_USER_MEMORY_REGION.
    CreateVcpu, // KVM_CREATE_VCPU and the mmap of its kvm_run area.
    Other,      // Everything else before the first KVM_RUN (CPUID, irqchip, registers, ...).
    Count,
};

// Sets the origin (main() entry). Without it, marks count from the first mark.
void set_origin(std::chrono::steady_clock::time_point origin);
// First call per phase wins (a reboot's phases are not start-up).
void mark(Phase phase);

// Adds the lifetime of the scope to `call` (host time in that ioctl).
class KvmScope {
public:
    explicit KvmScope(KvmCall call);
    ~KvmScope();
    KvmScope(KvmScope const&) = delete;
    KvmScope& operator=(KvmScope const&) = delete;

private:
    KvmCall m_call;
    std::uint64_t m_start_ns;
};

// One JSON object: {"first_run_us":..., "kvm_us":{...}, "kvm_total_us":..., "vmm_own_us":...,
// "phases_us":{...}} (microseconds since main()). Meant for the debug log at the first KVM_RUN.
std::string report();

} // namespace vmm::startup

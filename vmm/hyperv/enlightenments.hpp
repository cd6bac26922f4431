// SPDX-License-Identifier: MIT
// Enlightenments: which Hyper-V interfaces a partition offers (the [hyperv] switches).
#pragma once

namespace vmm::hyperv {

// The enlightenments a partition offers, each one switchable from [hyperv] (configs/README.md).
// The defaults are the set Windows Server 2016-2022 wants for VMBus (QEMU's hv-time, hv-stimer,
// hv-stimer-direct, hv-runtime, hv-reset, hv-crash, hv-frequencies on top of hv-synic and
// hv-vpindex, which are always on here).
struct Enlightenments {
    bool reference_time = true;      // TIME_REF_COUNT + reference TSC page (needs a TSC reader)
    bool synthetic_timers = true;    // STIMER0-3 (needs reference_time)
    bool stimer_direct_mode = true;  // HV_STIMER_DIRECT_MODE_AVAILABLE (needs synthetic_timers)
    bool vp_runtime = true;          // HV_X64_MSR_VP_RUNTIME
    bool reset = true;               // HV_X64_MSR_RESET
    bool crash = true;               // CRASH_P0-P4 / CRASH_CTL
    bool frequencies = true;         // TSC_FREQUENCY / APIC_FREQUENCY (needs tsc_hz)
    // HV_ACCESS_TSC_INVARIANT: Linux then rates its raw TSC clocksource above the TSC page
    // (hyperv_timer.c:531-534) and never marks it unstable (mshyperv.c:510-511). Off by default:
    // with the TSC page the host may change the guest's TSC rate or offset (sequence protocol);
    // with raw TSC it may not.
    bool tsc_invariant = false;
    bool extended_hypercalls = true; // HV_ENABLE_EXTENDED_HYPERCALLS + HvExtCallQueryCapabilities
};

} // namespace vmm::hyperv

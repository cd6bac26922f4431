// SPDX-License-Identifier: MIT
// Host-wide arbitration (issue 15 item 2; docs/auto-memory.md "Host-wide arbitration"): how much
// memory each auto-mode VM on one host may have, given what each wants, its minimum, maximum and
// weight, and what the host can give. Sans-IO and stateless: `microvmm balance`
// (vmm/balance/) reads the VMs and the host, calls arbitrate() once per round and sends each VM
// its ceiling. All figures in MiB.
//
// The split (weighted water-filling):
//   1. every VM gets its minimum, even if the minimums exceed the supply (they are promises the
//      operator made; the host reserve absorbs the excess and `overcommitted` says so);
//   2. the rest is shared by weight, but no VM gets more than it wants: what a satisfied VM does
//      not need is shared again among the others by weight, until the supply or the wants run out
//      (weight-0 VMs take part only after every weighted VM is satisfied, equally among them);
//   3. what is still left after every want is met is shared the same way up to each VM's
//      maximum, as headroom: a VM can then grow between two rounds without waiting for the
//      arbiter, and the sum of the ceilings still stays within the supply.
// Everything is counted in granules of `granule_mib` (2 MiB by default: Linux's free page
// reporting and hot-add blocks are multiples of it): minimums round up, maxima and the supply
// down, so every ceiling is a whole number of granules.
// Inputs are hostile (a VM's socket answers what it likes): weights above 100 count as 100,
// want is clamped into [min, max], a min above max is taken as max = min, and every sum
// saturates, so no answer can make another VM fall below its own minimum.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace vmm::hv_balloon {

struct ArbiterVm {
    std::uint64_t want_mib = 0; // What its policy would target without a ceiling.
    std::uint64_t min_mib = 0;
    std::uint64_t max_mib = 0;
    std::uint32_t weight = 0;   // 0-100 ([dynamic_memory] weight).
};

struct ArbiterShare {
    std::uint64_t share_mib = 0;   // Its part of the wants (min <= share <= want).
    std::uint64_t ceiling_mib = 0; // share + headroom (<= max): what the VM is told.
};

struct ArbiterResult {
    std::vector<ArbiterShare> vms;  // In input order.
    std::uint64_t minimums_mib = 0; // Sum of the (rounded) minimums.
    std::uint64_t wanted_mib = 0;   // Sum of the (clamped, rounded) wants.
    std::uint64_t granted_mib = 0;  // Sum of the ceilings.
    bool contended = false;         // Wants exceed the supply: someone got less than it wants.
    bool overcommitted = false;     // Minimums alone exceed the supply.
};

inline constexpr std::uint64_t DEFAULT_GRANULE_MIB = 2;
inline constexpr std::uint32_t ARBITER_MAX_WEIGHT = 100;

// `supply_mib`: what all these VMs together may hold. `granule_mib` 0 counts as 1.
ArbiterResult arbitrate(std::span<ArbiterVm const> vms, std::uint64_t supply_mib,
    std::uint64_t granule_mib = DEFAULT_GRANULE_MIB);

} // namespace vmm::hv_balloon

// SPDX-License-Identifier: MIT
// arbitrate(): weighted water-filling of the host's supply over the VMs' wants (dm_arbiter.hpp).
#include "devices/hv_balloon/dm_arbiter.hpp"

#include <algorithm>
#include <numeric>

namespace vmm::hv_balloon {

namespace {

// Sizes above this (2^40 MiB = 1 EiB) are lies; keeping below it lets granules * weight fit u64.
constexpr std::uint64_t MAX_MIB = 1ull << 40;

std::uint64_t sat_sub(std::uint64_t a, std::uint64_t b) { return a > b ? a - b : 0; }

// One pass of weighted water-filling in granules: raises alloc[i] towards cap[i], sharing `left`
// by weight among the VMs in `members`, redistributing what a capped VM does not take. Returns
// what is left. Integer shares are floored; the granules the floors leave go one each to the
// VMs with the largest remainders (then lowest index), so the result is deterministic.
std::uint64_t fill(std::vector<std::uint64_t>& alloc, std::vector<std::uint64_t> const& cap,
    std::vector<std::uint64_t> const& weight, std::vector<std::size_t> members, std::uint64_t left)
{
    while (left > 0 && !members.empty()) {
        std::erase_if(members, [&](std::size_t i) { return alloc[i] >= cap[i]; });
        if (members.empty())
            break;
        std::uint64_t const total = std::accumulate(members.begin(), members.end(), std::uint64_t { 0 },
            [&](std::uint64_t sum, std::size_t i) { return sum + weight[i]; });
        // Would any VM reach its cap with its full share? Then give those their caps and share
        // again (the classic water-filling step); otherwise give everyone its share and stop.
        bool capped = false;
        for (std::size_t i : members) {
            // left < 2^41 granules and w <= 100: the product fits 64 bits.
            std::uint64_t const share = left * weight[i] / total;
            if (alloc[i] + share >= cap[i]) {
                std::uint64_t const give = std::min(cap[i] - alloc[i], left);
                alloc[i] += give;
                left -= give;
                capped = true;
            }
        }
        if (capped)
            continue;
        struct Rest { std::uint64_t remainder; std::size_t index; };
        std::vector<Rest> rests;
        std::uint64_t given = 0;
        for (std::size_t i : members) {
            std::uint64_t const product = left * weight[i];
            std::uint64_t const share = product / total;
            alloc[i] += share;
            given += share;
            rests.push_back({ product % total, i });
        }
        left -= given;
        std::stable_sort(rests.begin(), rests.end(), [](Rest const& a, Rest const& b) { return a.remainder > b.remainder; });
        for (auto const& rest : rests) {
            if (left == 0)
                break;
            if (alloc[rest.index] < cap[rest.index]) {
                ++alloc[rest.index];
                --left;
            }
        }
        // Every member is below its cap here (none reached it with its share), and the floors
        // left fewer granules than members: all handed out.
        break;
    }
    return left;
}

} // namespace

ArbiterResult arbitrate(std::span<ArbiterVm const> vms, std::uint64_t supply_mib, std::uint64_t granule_mib)
{
    std::uint64_t const g = std::clamp<std::uint64_t>(granule_mib, 1, MAX_MIB);
    auto granules_up = [&](std::uint64_t mib) { return (std::min(mib, MAX_MIB) + g - 1) / g; };
    std::size_t const n = vms.size();
    std::vector<std::uint64_t> min(n), want(n), max(n), weight(n), alloc(n);
    std::vector<std::size_t> weighted, unweighted;
    ArbiterResult result;
    result.vms.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        auto const& vm = vms[i];
        std::uint64_t const max_mib = std::max(std::min(vm.max_mib, MAX_MIB), std::min(vm.min_mib, MAX_MIB));
        min[i] = granules_up(vm.min_mib);
        max[i] = std::max(min[i], max_mib / g); // A ceiling never exceeds max (rounded down)...
        want[i] = std::clamp(granules_up(vm.want_mib), min[i], max[i]); // ...nor falls below min.
        weight[i] = std::min(vm.weight, ARBITER_MAX_WEIGHT);
        alloc[i] = min[i];
        result.minimums_mib += min[i] * g;
        result.wanted_mib += want[i] * g;
        (weight[i] > 0 ? weighted : unweighted).push_back(i);
    }
    std::uint64_t const supply = std::min(supply_mib, MAX_MIB * 2) / g;
    std::uint64_t const minimums = result.minimums_mib / g;
    result.overcommitted = minimums > supply;
    result.contended = result.wanted_mib / g > supply;
    std::uint64_t left = sat_sub(supply, minimums);

    // Weight-0 VMs share equally, after the weighted ones.
    std::vector<std::uint64_t> equal(n, 1);
    left = fill(alloc, want, weight, weighted, left);
    left = fill(alloc, want, equal, unweighted, left);
    for (std::size_t i = 0; i < n; ++i)
        result.vms[i].share_mib = alloc[i] * g;
    // Headroom up to max, by the same rules.
    left = fill(alloc, max, weight, weighted, left);
    fill(alloc, max, equal, unweighted, left);
    for (std::size_t i = 0; i < n; ++i) {
        // The real max may lie between two granules: never above it, never below min.
        std::uint64_t const max_mib = std::max(std::min(vms[i].max_mib, MAX_MIB), min[i] * g);
        result.vms[i].ceiling_mib = std::min(alloc[i] * g, max_mib);
        result.vms[i].share_mib = std::min(result.vms[i].share_mib, result.vms[i].ceiling_mib);
        result.granted_mib += result.vms[i].ceiling_mib;
    }
    return result;
}

} // namespace vmm::hv_balloon

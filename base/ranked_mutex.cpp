// SPDX-License-Identifier: MIT
#include "base/ranked_mutex.hpp"

#include <cstdio>
#include <cstdlib>

namespace vmm {

namespace {
// Bit r set = this thread holds a lock of rank r.
thread_local std::uint32_t t_held = 0;

std::uint32_t bit(LockRank rank) { return std::uint32_t { 1 } << static_cast<unsigned>(rank); }
} // namespace

std::string_view lock_rank_name(LockRank rank)
{
    switch (rank) {
    case LockRank::BusDevice: return "BusDevice";
    case LockRank::PciRoot: return "PciRoot";
    case LockRank::DiskMetrics: return "DiskMetrics";
    case LockRank::NvmeController: return "NvmeController";
    case LockRank::DmBackend: return "DmBackend";
    case LockRank::HostMemory: return "HostMemory";
    case LockRank::IcServices: return "IcServices";
    case LockRank::NetDevices: return "NetDevices";
    case LockRank::VmbusGlue: return "VmbusGlue";
    case LockRank::MemslotSink: return "MemslotSink";
    case LockRank::DmOperations: return "DmOperations";
    case LockRank::EventHub: return "EventHub";
    case LockRank::EventHubClient: return "EventHubClient";
    case LockRank::SyntheticTimers: return "SyntheticTimers";
    case LockRank::Synic: return "Synic";
    case LockRank::Partition: return "Partition";
    case LockRank::PciMsix: return "PciMsix";
    case LockRank::VcpuThread: return "VcpuThread";
    case LockRank::EventLoopQueue: return "EventLoopQueue";
    case LockRank::Count: break;
    }
    return "?";
}

namespace lock_order {

void acquiring(LockRank rank)
{
    // Every held rank must be strictly lower: bits at or above `rank` must be clear.
    std::uint32_t const conflicting = t_held & ~(bit(rank) - 1);
    if (conflicting != 0) [[unlikely]] {
        unsigned highest = 31 - static_cast<unsigned>(__builtin_clz(conflicting));
        auto const held = lock_rank_name(static_cast<LockRank>(highest));
        auto const taking = lock_rank_name(rank);
        std::fprintf(stderr, "microvmm: lock order violated: taking %.*s while holding %.*s (ARCHITECTURE.md)\n",
            static_cast<int>(taking.size()), taking.data(), static_cast<int>(held.size()), held.data());
        std::abort();
    }
    t_held |= bit(rank);
}

void released(LockRank rank) { t_held &= ~bit(rank); }

} // namespace lock_order
} // namespace vmm

// SPDX-License-Identifier: MIT
// RankedMutex: a std::mutex with a place in the VMM's one lock order (ARCHITECTURE.md "Threads
// and locks"). A thread may only take a lock whose rank is higher than every lock it already
// holds; taking a lower or equal rank (an inversion, or re-entry) is a host bug and aborts with
// both names at the first attempt, on any interleaving, instead of deadlocking one day.
#pragma once

#include <cstdint>
#include <mutex>
#include <string_view>

namespace vmm {

// Outermost first. Keep in step with the table in ARCHITECTURE.md.
enum class LockRank : std::uint8_t {
    BusDevice,       // vmm/bus: one port/MMIO device's state (vCPU threads).
    PciRoot,         // devices/pci/pci_root: config space, BAR placement, dispatch to PciFunctions.
    DiskMetrics,     // vmm/disk_metrics: this boot's disks and the counters of earlier boots (API thread, loop).
    NvmeController,  // vmm/devices/nvme_disk: one disk's NVMe engine (vCPUs, its nvme-io thread).
    DmBackend,       // vmm/dm_api_backend: the published DmDevice, boot count, last status.
    HostMemory,      // vmm/dm_api_backend: the booted Machine for /proc reads; nests nothing.
    IcServices,      // vmm/ic_integration: the per-boot integration services, shutdown state.
    NetDevices,      // vmm/backends/net_backend: the per-boot netvsc devices and their VMBus glue.
    VmbusGlue,       // vmm/vmbus_glue: the VmbusHost and every device on it (DM engine).
    MemslotSink,     // vmm/guest_ram_backends: hot-add KVM slots (called by the DM engine).
    DmOperations,    // vmm/dm_api_backend: operation history (DM events under the glue lock).
    EventHub,        // vmm/api/event_hub: subscriber list.
    EventHubClient,  // vmm/api/event_hub: one subscriber's queue.
    SyntheticTimers, // vmm/hyperv/synthetic_timers: STIMER0-3 of every VP (delivers into Synic).
    Synic,           // vmm/hyperv/synic: SynIC registers and message slots.
    Partition,       // vmm/hyperv/partition: partition-wide and per-VP registers.
    PciMsix,         // devices/pci/msix_vectors: one function's MSI-X table and PBA (raise() from any thread).
    VcpuThread,      // vmm/vcpu_thread: a vCPU thread's handle while it may be signalled.
    EventLoopQueue,  // vmm/event_loop: the cross-thread task queue.
    Count,
};
static_assert(static_cast<unsigned>(LockRank::Count) <= 32, "held ranks are a 32-bit mask");

std::string_view lock_rank_name(LockRank);

namespace lock_order {
// Called by RankedMutex; the checks cost one thread_local mask test per lock.
void acquiring(LockRank);
void released(LockRank);
} // namespace lock_order

template<LockRank Rank>
class RankedMutex {
public:
    static constexpr LockRank rank = Rank;

    void lock()
    {
        lock_order::acquiring(Rank);
        m_mutex.lock();
    }
    bool try_lock()
    {
        lock_order::acquiring(Rank);
        if (m_mutex.try_lock())
            return true;
        lock_order::released(Rank);
        return false;
    }
    void unlock()
    {
        m_mutex.unlock();
        lock_order::released(Rank);
    }

private:
    std::mutex m_mutex;
};

} // namespace vmm

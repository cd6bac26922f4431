// SPDX-License-Identifier: MIT
// DiskMetrics: the REST decorator that adds each [[disk]]'s counters to GET /metrics
// (vmm/api/API.md): NVMe read/write commands and bytes, flushes, back-end I/O errors and
// refused guest commands, summed over every boot (each boot builds new controllers).
//
// Threads and locks: attach/detach on the loop thread (per boot), extra_metrics on the API
// thread; m_lock (rank DiskMetrics, before NvmeController: reading a live disk's counters
// takes its controller lock) guards the live disks and the folded totals.
#pragma once

#include <vector>

#include "base/ranked_mutex.hpp"
#include "devices/nvme/nvme_controller.hpp"
#include "vmm/api/api_backend.hpp"
#include "vmm/config.hpp"
#include "vmm/machine.hpp"

namespace vmm {

class DiskMetrics final : public api::ForwardingApiBackend {
public:
    DiskMetrics(std::vector<DiskSection> const& disks, api::ApiBackend& inner);
    // Loop thread: a boot's controllers appear (after the Machine is built) and go (before it is).
    void attach(Machine&);
    void detach(Machine&);

    std::string extra_metrics() override;

private:
    struct Disk {
        std::string serial;
        NvmePciFunction* live { nullptr };
        nvme::NvmeStats earlier {}; // Sum over the boots that ended.
    };
    RankedMutex<LockRank::DiskMetrics> m_lock;
    std::vector<Disk> m_disks;
};

} // namespace vmm

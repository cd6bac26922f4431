// SPDX-License-Identifier: MIT
// NvmeDisk: one [[disk]] as the VMM runs it: the sans-IO nvme::NvmeController over an
// ImageFileBackend, behind the one lock that serialises the engine (ARCHITECTURE.md
// "NvmeController"). This is the object a PCI function wires up: BAR0 accesses go to
// mmio_read/mmio_write, value-less ioeventfd doorbells to doorbell_kick, and the engine's
// interrupts leave through the NvmeInterrupts the wiring passes in (MSI-X delivery).
//
// Threads: mmio_*/doorbell_kick on vCPU threads (or whoever handles ioeventfds), completions on
// the disk's nvme-io thread; each takes the lock, so the engine never runs twice at once. The
// interrupt sink is called under the lock and must not call back into this object.
// Destruction first stops the back-end, which completes every request in flight (their
// completions still reach the engine), so no I/O outlives the controller or guest RAM.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "base/ranked_mutex.hpp"
#include "devices/nvme/nvme_controller.hpp"
#include "mem/guest_memory.hpp"
#include "vmm/backends/image_file_backend.hpp"
#include "vmm/config.hpp"

namespace vmm {

class NvmeDisk {
public:
    // Opens and locks the image (one-line errors naming the file), builds the controller and
    // starts the back-end. `io_queues` is the number of I/O queue pairs offered (one per vCPU
    // is what Linux and stornvme ask for); `msix_vectors` the function's MSI-X table size.
    static Result<std::unique_ptr<NvmeDisk>> create(DiskSection const&, mem::GuestMemory const&, nvme::NvmeInterrupts&,
        u16 io_queues, u16 msix_vectors);
    // Over an image the VMM opened at start (shared by every boot), with the controller's whole
    // configuration; each signal of kick_fds[i] becomes doorbell_kick(kick_offsets[i]) on the
    // disk's nvme-io thread (the fds stay owned by the caller and open while the disk lives).
    struct Kicks {
        std::vector<int> fds;
        std::vector<u64> offsets;
    };
    static Result<std::unique_ptr<NvmeDisk>> create(std::shared_ptr<ImageFile const>, nvme::NvmeControllerConfig,
        mem::GuestMemory const&, nvme::NvmeInterrupts&, Kicks);
    ~NvmeDisk();
    NvmeDisk(NvmeDisk const&) = delete;
    NvmeDisk& operator=(NvmeDisk const&) = delete;

    static constexpr u64 BAR0_BYTES = nvme::NvmeController::BAR0_BYTES;
    void mmio_read(u64 offset, std::span<std::byte> data);
    void mmio_write(u64 offset, std::span<std::byte const> data);
    void doorbell_kick(u64 offset);
    nvme::NvmeStats stats();

private:
    NvmeDisk(std::unique_ptr<ImageFileBackend>, nvme::NvmeControllerConfig, mem::GuestMemory const&, nvme::NvmeInterrupts&);
    void on_completions(std::span<nvme::BlockCompletion const>);

    RankedMutex<LockRank::NvmeController> m_lock;
    std::unique_ptr<ImageFileBackend> m_backend_owner; // Referenced by m_controller.
    nvme::NvmeController m_controller;
};

} // namespace vmm

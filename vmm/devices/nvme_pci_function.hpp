// SPDX-License-Identifier: MIT
// NvmePciFunction: one [[disk]] as a PCI function (devices/pci/pci_function.hpp) around its
// NvmeDisk. One controller per disk (not one namespace each): every disk is then its own NVMe
// subsystem with its own queues, interrupts and I/O thread, one slow image never stalls
// another's queue, and the guest's hot paths stay per-device (ARCHITECTURE.md "Storage").
//
//   Config space   class 01/08/02 (mass storage, NVM, NVM Express: PCI Code and ID Assignment
//                  spec §1.2), IDs from NvmeControllerConfig.
//   BAR 0          64-bit memory, NvmeDisk::BAR0_BYTES: the controller's registers and doorbells.
//   BAR 4          32-bit memory: the MSI-X table (offset 0) and PBA (second half), one vector
//                  per I/O queue (one per vCPU) + the admin queue's vector 0.
//   Doorbells      while the guest keeps shadow doorbells (Doorbell Buffer Config, which Linux
//                  uses when OACS bit 8 is set: drivers/nvme/host/pci.c nvme_dbbuf_dma_alloc),
//                  each I/O submission queue's tail doorbell is a KVM_IOEVENTFD whose kicks the
//                  disk's nvme-io thread turns into NvmeDisk::doorbell_kick; otherwise, and for
//                  the admin queue and CQ heads always, doorbells exit to bar_write with their value.
//
// Threads: bar_* on vCPUs under the PciRoot lock; raise() under the disk's NvmeController lock
// (vCPUs and nvme-io) into MsixVectors (PciMsix rank); shadow_doorbells() only under a bar_write.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "devices/nvme/interrupt_sink.hpp"
#include "devices/pci/pci_function.hpp"
#include "mem/guest_memory.hpp"
#include "vmm/backends/image_file.hpp"
#include "vmm/config.hpp"
#include "vmm/devices/nvme_disk.hpp"

namespace vmm {

class NvmePciFunction final : public pci::PciFunction, private nvme::NvmeInterrupts {
public:
    static constexpr u8 REGISTERS_BAR = 0;
    static constexpr u8 MSIX_BAR = 4;
    // I/O queue pairs offered: one per vCPU (Linux and stornvme ask for that many), at most
    // MAX_IO_QUEUES: each has a doorbell eventfd on the disk's I/O thread.
    static constexpr u16 MAX_IO_QUEUES = ImageFileBackend::MAX_KICK_FDS;

    // `index` names it ("nvme<index>") in logs.
    static Result<std::unique_ptr<NvmePciFunction>> create(std::shared_ptr<ImageFile const>, DiskSection const&,
        mem::GuestMemory const&, u32 vcpus, std::size_t index);
    ~NvmePciFunction() override;

    std::string_view name() const override { return m_name; }
    pci::PciIdentity identity() const override;
    pci::BarLayouts bars() const override;
    std::optional<pci::MsixLayout> msix() const override;
    std::vector<pci::IoEventRegion> ioevents() const override;
    u64 ioevents_generation() const override { return m_ioevents_generation.load(std::memory_order_acquire); }
    void bar_read(u8 bar, u64 offset, std::span<std::byte> data) override;
    void bar_write(u8 bar, u64 offset, std::span<std::byte const> data) override;
    void attach_interrupts(pci::MsixVectors* vectors) override { m_msix.store(vectors, std::memory_order_release); }

    u16 io_queues() const { return m_io_queues; }
    u16 msix_vectors() const { return static_cast<u16>(m_io_queues + 1); }
    std::filesystem::path const& image_path() const { return m_image_path; }
    nvme::NvmeStats stats() { return m_disk->stats(); }
    // Finishes every request in flight and ends the I/O thread; nothing is raised afterwards.
    // Called before the PCI root (and its MSI-X tables) goes away.
    void stop() { m_disk.reset(); }

private:
    NvmePciFunction(std::string name, nvme::NvmeControllerConfig, u16 io_queues, std::vector<Fd> kick_fds,
        std::filesystem::path image_path);
    static u64 sq_tail_doorbell(u16 qid) { return nvme::REG_DOORBELL_BASE + 2u * qid * nvme::DOORBELL_STRIDE; }
    u64 msix_bar_bytes() const;

    // nvme::NvmeInterrupts.
    void raise(u16 vector) override;
    void shadow_doorbells(bool on) override;

    std::string const m_name;
    nvme::NvmeControllerConfig const m_ids;
    u16 const m_io_queues;
    std::filesystem::path const m_image_path;
    std::vector<Fd> m_kick_fds; // Index qid - 1: the SQ tail doorbell eventfd of I/O queue qid.
    std::atomic<pci::MsixVectors*> m_msix { nullptr };
    std::atomic<bool> m_kicks { false };
    std::atomic<u64> m_ioevents_generation { 0 };
    std::unique_ptr<NvmeDisk> m_disk; // Last: its I/O thread (which reads m_kick_fds) ends first.
};

} // namespace vmm

// SPDX-License-Identifier: MIT
#include "vmm/devices/nvme_disk.hpp"

#include <mutex>

#include "vmm/backends/traffic_recorder.hpp"

namespace vmm {

Result<std::unique_ptr<NvmeDisk>> NvmeDisk::create(DiskSection const& disk, mem::GuestMemory const& memory,
    nvme::NvmeInterrupts& interrupts, u16 io_queues, u16 msix_vectors)
{
    VMM_ASSERT(io_queues >= 1 && msix_vectors >= 1);
    auto image = VMM_TRY(ImageFile::open(disk.path, disk.read_only));
    nvme::NvmeControllerConfig config;
    config.serial = disk.serial;
    config.max_io_queues = io_queues;
    config.msix_vectors = msix_vectors;
    return create(std::move(image), std::move(config), memory, interrupts, {});
}

Result<std::unique_ptr<NvmeDisk>> NvmeDisk::create(std::shared_ptr<ImageFile const> image, nvme::NvmeControllerConfig config,
    mem::GuestMemory const& memory, nvme::NvmeInterrupts& interrupts, Kicks kicks)
{
    VMM_ASSERT(config.max_io_queues >= 1 && config.msix_vectors >= 1 && kicks.fds.size() == kicks.offsets.size());
    std::string const path = image->path().string();
    auto backend = std::make_unique<ImageFileBackend>(std::move(image));
    auto* raw = backend.get();
    std::unique_ptr<NvmeDisk> device(new NvmeDisk(std::move(backend), std::move(config), memory, interrupts));
    auto* disk = device.get();
    VMM_TRY(raw->start([disk](std::span<nvme::BlockCompletion const> batch) { disk->on_completions(batch); }, kicks.fds,
                   [disk, offsets = std::move(kicks.offsets)](std::size_t index) { disk->doorbell_kick(offsets[index]); })
                .context("starting the I/O thread of disk image {}", path));
    return device;
}

NvmeDisk::NvmeDisk(std::unique_ptr<ImageFileBackend> backend, nvme::NvmeControllerConfig config, mem::GuestMemory const& memory,
    nvme::NvmeInterrupts& interrupts)
    : m_backend_owner(std::move(backend))
    , m_controller(std::move(config), memory, *m_backend_owner, interrupts)
{
    // MICROVMM_RECORD_GUEST_TRAFFIC: the guest's NVMe commands become fuzz seeds (README "Fuzzing").
    if (auto* recorder = backends::TrafficRecorder::instance())
        m_controller.set_command_tap(recorder);
}

NvmeDisk::~NvmeDisk()
{
    // Joins nvme-io after every submitted request completed (through on_completions, into the
    // still-alive controller); then the controller goes.
    m_backend_owner.reset();
}

void NvmeDisk::mmio_read(u64 offset, std::span<std::byte> data)
{
    std::lock_guard guard(m_lock);
    m_controller.mmio_read(offset, data);
}

void NvmeDisk::mmio_write(u64 offset, std::span<std::byte const> data)
{
    std::lock_guard guard(m_lock);
    m_controller.mmio_write(offset, data);
}

void NvmeDisk::doorbell_kick(u64 offset)
{
    std::lock_guard guard(m_lock);
    m_controller.doorbell_kick(offset);
}

nvme::NvmeStats NvmeDisk::stats()
{
    std::lock_guard guard(m_lock);
    return m_controller.stats();
}

void NvmeDisk::on_completions(std::span<nvme::BlockCompletion const> batch)
{
    std::lock_guard guard(m_lock);
    m_controller.on_io_complete(batch);
}

} // namespace vmm

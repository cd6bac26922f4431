// SPDX-License-Identifier: MIT
#include "vmm/devices/nvme_pci_function.hpp"

#include <sys/eventfd.h>

#include <algorithm>
#include <bit>

#include <fmt/format.h>

#include "base/log.hpp"
#include "devices/pci/msix_vectors.hpp"

namespace vmm {

namespace {

// PCI Code and ID Assignment spec 1.11 §1.2: base class 01h mass storage, subclass 08h
// non-volatile memory controller, programming interface 02h NVM Express.
constexpr u8 CLASS_MASS_STORAGE = 0x01;
constexpr u8 SUBCLASS_NVM = 0x08;
constexpr u8 PROG_IF_NVME = 0x02;
constexpr u64 MIN_MSIX_BAR_BYTES = 4096; // One page: the table is never in a page with other registers.

} // namespace

Result<std::unique_ptr<NvmePciFunction>> NvmePciFunction::create(std::shared_ptr<ImageFile const> image, DiskSection const& disk,
    mem::GuestMemory const& memory, u32 vcpus, std::size_t index)
{
    VMM_ASSERT(image != nullptr && vcpus >= 1);
    u16 const io_queues = static_cast<u16>(std::min<u32>(vcpus, MAX_IO_QUEUES));
    std::vector<Fd> kick_fds;
    NvmeDisk::Kicks kicks;
    for (u16 qid = 1; qid <= io_queues; ++qid) {
        Fd fd { ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) };
        if (!fd.is_open())
            return fail_errno(fmt::format("eventfd for doorbell {} of disk {}", qid, disk.path.string()));
        kicks.fds.push_back(fd.get());
        kicks.offsets.push_back(sq_tail_doorbell(qid));
        kick_fds.push_back(std::move(fd));
    }
    nvme::NvmeControllerConfig config;
    config.serial = disk.serial;
    config.max_io_queues = io_queues;
    config.msix_vectors = static_cast<u16>(io_queues + 1);
    std::unique_ptr<NvmePciFunction> function(
        new NvmePciFunction(fmt::format("nvme{}", index), config, io_queues, std::move(kick_fds), image->path()));
    function->m_disk = VMM_TRY(NvmeDisk::create(std::move(image), std::move(config), memory, *function, std::move(kicks)));
    return function;
}

NvmePciFunction::NvmePciFunction(std::string name, nvme::NvmeControllerConfig ids, u16 io_queues, std::vector<Fd> kick_fds,
    std::filesystem::path image_path)
    : m_name(std::move(name))
    , m_ids(std::move(ids))
    , m_io_queues(io_queues)
    , m_image_path(std::move(image_path))
    , m_kick_fds(std::move(kick_fds))
{
}

NvmePciFunction::~NvmePciFunction() { stop(); }

pci::PciIdentity NvmePciFunction::identity() const
{
    return pci::PciIdentity { .vendor_id = m_ids.pci_vendor_id,
        .device_id = m_ids.pci_device_id,
        .revision = 0,
        .class_code = CLASS_MASS_STORAGE,
        .subclass = SUBCLASS_NVM,
        .prog_if = PROG_IF_NVME,
        .subsystem_vendor_id = m_ids.pci_subsystem_vendor_id,
        .subsystem_id = m_ids.pci_subsystem_id };
}

u64 NvmePciFunction::msix_bar_bytes() const
{
    // Table in the first half, PBA (1 bit per vector: far smaller) in the second.
    u64 const table = u64 { msix_vectors() } * 16;
    return std::max(MIN_MSIX_BAR_BYTES, std::bit_ceil(2 * table));
}

pci::BarLayouts NvmePciFunction::bars() const
{
    pci::BarLayouts bars {};
    bars[REGISTERS_BAR] = pci::BarLayout { pci::BarKind::Memory64, NvmeDisk::BAR0_BYTES, false };
    bars[MSIX_BAR] = pci::BarLayout { pci::BarKind::Memory32, msix_bar_bytes(), false };
    return bars;
}

std::optional<pci::MsixLayout> NvmePciFunction::msix() const
{
    return pci::MsixLayout { .vectors = msix_vectors(), .bar = MSIX_BAR, .table_offset = 0, .pba_offset = msix_bar_bytes() / 2 };
}

std::vector<pci::IoEventRegion> NvmePciFunction::ioevents() const
{
    std::vector<pci::IoEventRegion> regions;
    if (!m_kicks.load(std::memory_order_acquire))
        return regions;
    for (u16 qid = 1; qid <= m_io_queues; ++qid)
        regions.push_back(pci::IoEventRegion { REGISTERS_BAR, sq_tail_doorbell(qid), 4, m_kick_fds[qid - 1].get() });
    return regions;
}

void NvmePciFunction::bar_read(u8 bar, u64 offset, std::span<std::byte> data)
{
    if (bar == REGISTERS_BAR && m_disk)
        m_disk->mmio_read(offset, data);
}

void NvmePciFunction::bar_write(u8 bar, u64 offset, std::span<std::byte const> data)
{
    if (bar == REGISTERS_BAR && m_disk)
        m_disk->mmio_write(offset, data);
}

void NvmePciFunction::raise(u16 vector)
{
    if (auto* vectors = m_msix.load(std::memory_order_acquire))
        vectors->raise(vector); // Masked: pending bit, sent on unmask (MsixVectors).
}

void NvmePciFunction::shadow_doorbells(bool on)
{
    // The value-less kicks are right only while the engine can read the tail from the shadow
    // page; the root re-registers after the bar_write that got us here returns.
    if (m_kicks.exchange(on, std::memory_order_acq_rel) != on)
        m_ioevents_generation.fetch_add(1, std::memory_order_acq_rel);
}

} // namespace vmm

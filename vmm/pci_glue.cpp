// SPDX-License-Identifier: MIT
#include "vmm/pci_glue.hpp"

#include <cstring>

#include "base/log.hpp"
#include "firmware/layout.hpp"

namespace vmm {

namespace {

// A bus face: which PciRoot entry point an access through one bus slot goes to.
enum class Face : u8 { Ecam, ConfigPorts, Mmio32, Io };

class PciFace final : public IoDevice {
public:
    PciFace(pci::PciRoot& root, Face face, u64 base)
        : m_root(root)
        , m_face(face)
        , m_base(base)
    {
    }
    std::string_view name() const override
    {
        switch (m_face) {
        case Face::Ecam: return "pci-ecam";
        case Face::ConfigPorts: return "pci-cf8";
        case Face::Mmio32: return "pci-mmio";
        case Face::Io: return "pci-io";
        }
        return "pci";
    }
    IoStatus read(u64 offset, std::span<std::byte> data) override
    {
        switch (m_face) {
        case Face::Ecam: m_root.ecam_read(offset, data); return IoStatus::Ok;
        case Face::ConfigPorts: m_root.config_port_read(offset, data); return IoStatus::Ok;
        case Face::Mmio32:
            if (!m_root.mmio_read(m_base + offset, data))
                return unclaimed(data);
            return IoStatus::Ok;
        case Face::Io:
            if (!m_root.io_read(m_base + offset, data))
                return unclaimed(data);
            return IoStatus::Ok;
        }
        return IoStatus::Unclaimed;
    }
    IoStatus write(u64 offset, std::span<std::byte const> data) override
    {
        switch (m_face) {
        case Face::Ecam: m_root.ecam_write(offset, data); return IoStatus::Ok;
        case Face::ConfigPorts: m_root.config_port_write(offset, data); return IoStatus::Ok;
        case Face::Mmio32: return m_root.mmio_write(m_base + offset, data) ? IoStatus::Ok : IoStatus::Unclaimed;
        case Face::Io: return m_root.io_write(m_base + offset, data) ? IoStatus::Ok : IoStatus::Unclaimed;
        }
        return IoStatus::Unclaimed;
    }

private:
    // Window space no BAR decodes: reads all-ones like a master abort; the bus logs it.
    static IoStatus unclaimed(std::span<std::byte> data)
    {
        std::memset(data.data(), 0xFF, data.size());
        return IoStatus::Unclaimed;
    }

    pci::PciRoot& m_root;
    Face const m_face;
    u64 const m_base;
};

} // namespace

void KvmMsiSink::deliver(u64 address, u32 data)
{
    if (auto sent = m_vm.signal_msi(address, data); !sent)
        VMM_GUEST_WARN("pci", "MSI-X message {:#x} to {:#x} lost: {}", data, address, sent.error());
}

pci::PciWindows PciGlue::windows()
{
    return pci::PciWindows {
        .ecam_base = firmware::PCI_ECAM_BASE,
        .mmio32_base = firmware::PCI_MMIO32_BASE,
        .mmio32_size = firmware::PCI_MMIO32_SIZE,
        .mmio64_base = 0,
        .mmio64_size = 0,
        .io_base = firmware::PCI_IO_BASE,
        .io_size = firmware::PCI_IO_SIZE,
    };
}

PciGlue::PciGlue(kvm::KvmVm& vm)
    : m_msi(vm)
    , m_ioevents(vm)
    , m_root(std::make_unique<pci::PciRoot>(windows(), m_msi, &m_ioevents))
{
}

PciGlue::~PciGlue()
{
    // Every disk finishes its I/O (raising its last interrupts into the MSI-X tables the root
    // owns) before the root goes; the root then unregisters doorbells whose fds still exist.
    for (auto* disk : m_disks)
        disk->stop();
}

Result<void> PciGlue::create(Config const& config, DiskImages const& images, mem::GuestMemory const& memory, Bus& pio, Bus& mmio)
{
    static_assert(pci::ECAM_BUS_BYTES == firmware::PCI_ECAM_SIZE);
    for (auto& disk : VMM_TRY(make_disk_functions(config, images, memory))) {
        m_disks.push_back(disk.get());
        m_functions.push_back(std::move(disk));
    }
    for (auto& function : m_functions) {
        u8 const device = VMM_TRY(m_root->add(*function));
        log::info("pci", "{} at 0000:00:{:02x}.0", function->name(), device);
    }
    auto const w = windows();
    auto face = [&](Face kind, u64 base) -> IoDevice& {
        return *m_faces.emplace_back(std::make_unique<PciFace>(*m_root, kind, base));
    };
    VMM_TRY(mmio.attach({ w.ecam_base, firmware::PCI_ECAM_SIZE }, face(Face::Ecam, w.ecam_base)).context("attaching the PCI ECAM"));
    VMM_TRY(mmio.attach({ w.mmio32_base, w.mmio32_size }, face(Face::Mmio32, w.mmio32_base)).context("attaching the PCI MMIO window"));
    VMM_TRY(pio.attach({ firmware::PCI_CONFIG_PORT, firmware::PCI_CONFIG_PORT_COUNT }, face(Face::ConfigPorts, 0))
            .context("attaching the PCI config ports"));
    VMM_TRY(pio.attach({ w.io_base, w.io_size }, face(Face::Io, w.io_base)).context("attaching the PCI I/O window"));
    return {};
}

Result<std::vector<std::unique_ptr<NvmePciFunction>>> make_disk_functions(Config const& config, DiskImages const& images,
    mem::GuestMemory const& memory)
{
    DiskImages opened;
    DiskImages const* use = &images;
    if (images.size() != config.disks.size()) {
        // Tests and tools that build a Machine directly; microvmm itself opens them in main().
        VMM_ASSERT(images.empty());
        opened = VMM_TRY(open_disk_images(config.disks));
        use = &opened;
    }
    std::vector<std::unique_ptr<NvmePciFunction>> functions;
    for (std::size_t i = 0; i < config.disks.size(); ++i)
        functions.push_back(VMM_TRY(NvmePciFunction::create((*use)[i], config.disks[i], memory, config.machine.vcpus, i)
                                        .context("disk[{}] ({})", i, config.disks[i].path.string())));
    return functions;
}

} // namespace vmm

// SPDX-License-Identifier: MIT
// Connects the sans-IO PCI core (devices/pci/) to the machine: one bus slot each for the ECAM
// region, the 0xCF8/0xCFC ports, the 32-bit MMIO BAR window and the I/O BAR window (the Bus
// is frozen after construction, BARs move at run time, so PciRoot decodes inside its windows);
// MSI-X messages go out as KVM_SIGNAL_MSI and doorbells become KVM_IOEVENTFDs. Functions:
// one NVMe controller per [[disk]].
#pragma once

#include <memory>
#include <vector>

#include "base/error.hpp"
#include "devices/pci/pci_root.hpp"
#include "vmm/bus.hpp"
#include "vmm/backends/image_file.hpp"
#include "vmm/config.hpp"
#include "vmm/devices/nvme_pci_function.hpp"
#include "vmm/io_device.hpp"
#include "vmm/kvm/kvm_vm.hpp"

namespace vmm {

// MSI-X messages to the in-kernel LAPICs; KVM_SIGNAL_MSI works from any thread.
class KvmMsiSink final : public pci::MsiSink {
public:
    explicit KvmMsiSink(kvm::KvmVm& vm)
        : m_vm(vm)
    {
    }
    void deliver(u64 address, u32 data) override;

private:
    kvm::KvmVm& m_vm;
};

class KvmIoEventSink final : public pci::IoEventSink {
public:
    explicit KvmIoEventSink(kvm::KvmVm& vm)
        : m_vm(vm)
    {
    }
    Result<void> add(bool io_space, u64 address, u32 length, int eventfd) override
    {
        return m_vm.add_ioeventfd(io_space, address, length, eventfd);
    }
    Result<void> remove(bool io_space, u64 address, u32 length, int eventfd) override
    {
        return m_vm.remove_ioeventfd(io_space, address, length, eventfd);
    }

private:
    kvm::KvmVm& m_vm;
};

// The PCI root of one Machine and its four bus faces. Devices come from the config
// (make_pci_functions); the root itself (host bridge) exists whenever [pci] is enabled.
class PciGlue {
public:
    // The windows from firmware/layout.hpp.
    static pci::PciWindows windows();

    PciGlue(kvm::KvmVm&);
    PciGlue(PciGlue const&) = delete;
    PciGlue& operator=(PciGlue const&) = delete;
    ~PciGlue();

    // Adds every PCI device the config asks for, then attaches the four faces to the buses.
    // `images` holds each [[disk]]'s open image (main opens them once); empty: opened here.
    Result<void> create(Config const&, DiskImages const& images, mem::GuestMemory const&, Bus& pio, Bus& mmio);
    pci::PciRoot& root() { return *m_root; }
    // The [[disk]] controllers in config order (metrics).
    std::vector<NvmePciFunction*> const& disks() const { return m_disks; }

private:
    KvmMsiSink m_msi;
    KvmIoEventSink m_ioevents;
    // Declared before the root: the root unregisters their doorbells while they still exist.
    std::vector<std::unique_ptr<pci::PciFunction>> m_functions;
    std::vector<NvmePciFunction*> m_disks; // Within m_functions.
    std::unique_ptr<pci::PciRoot> m_root;
    std::vector<std::unique_ptr<IoDevice>> m_faces;
};

// The PCI functions a config asks for, in bus order (device 1, 2, ...): one NVMe controller
// per [[disk]] (vmm/devices/nvme_pci_function.hpp), over images[i].
Result<std::vector<std::unique_ptr<NvmePciFunction>>> make_disk_functions(Config const&, DiskImages const& images,
    mem::GuestMemory const&);

} // namespace vmm

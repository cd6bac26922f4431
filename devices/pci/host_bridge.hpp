// SPDX-License-Identifier: MIT
// HostBridge: device 0:0.0, a host bridge header (class 06/00/00) with no BARs. Linux's type-1
// probe (arch/x86/pci/direct.c pci_sanity_check) looks for a host bridge or VGA class on bus 0
// before trusting 0xCF8/0xCFC, and sizes its extended config space through ECAM
// (drivers/pci/probe.c pci_cfg_space_size: host bridges are always probed for 4 KiB).
//
// Identity: Red Hat's 1b36:0008 "PCIe host bridge", the id Red Hat assigned for virtual host
// bridges (QEMU docs/specs/pci-ids.rst); Linux and Windows bind nothing special to it.
#pragma once

#include "devices/pci/pci_function.hpp"
#include "devices/pci/pci_regs.hpp"

namespace vmm::pci {

inline constexpr u16 REDHAT_VENDOR_ID = 0x1B36;
inline constexpr u16 HOST_BRIDGE_DEVICE_ID = 0x0008;

class HostBridge final : public PciFunction {
public:
    std::string_view name() const override { return "host-bridge"; }
    PciIdentity identity() const override
    {
        return PciIdentity { REDHAT_VENDOR_ID, HOST_BRIDGE_DEVICE_ID, 0, CLASS_BRIDGE, SUBCLASS_HOST_BRIDGE, 0,
            0, 0 }; // No subsystem ids (optional for a host bridge, §6.2.4).
    }
    void bar_read(u8, u64, std::span<std::byte>) override { } // No BARs: never called.
    void bar_write(u8, u64, std::span<std::byte const>) override { }
};

} // namespace vmm::pci

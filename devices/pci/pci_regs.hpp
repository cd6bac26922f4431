// SPDX-License-Identifier: MIT
// PCI configuration-space register offsets and bits used by the PCI core.
//
// Spec: PCI Local Bus Specification 3.0 §6.1-§6.2 (type 0 header), §6.2.5 (BARs), §6.7
//       (capability list), §6.8.2 (MSI-X); PCI Express Base 4.0 §7.2.2 (ECAM), §7.5.1.
//       Linux include/uapi/linux/pci_regs.h uses the same names.
#pragma once

#include "base/types.hpp"

namespace vmm::pci {

inline constexpr u64 CONFIG_SPACE_BYTES = 4096;      // PCIe extended config space per function.
inline constexpr u64 LEGACY_CONFIG_BYTES = 256;      // What 0xCF8/0xCFC reaches.
inline constexpr u8 DEVICES_PER_BUS = 32;
inline constexpr u8 FUNCTIONS_PER_DEVICE = 8;
inline constexpr u8 BAR_COUNT = 6;

inline constexpr u16 VENDOR_ID = 0x00;
inline constexpr u16 DEVICE_ID = 0x02;
inline constexpr u16 COMMAND = 0x04;
inline constexpr u16 STATUS = 0x06;
inline constexpr u16 REVISION_ID = 0x08;
inline constexpr u16 PROG_IF = 0x09;
inline constexpr u16 SUBCLASS = 0x0A;
inline constexpr u16 CLASS_CODE = 0x0B;
inline constexpr u16 CACHE_LINE_SIZE = 0x0C;
inline constexpr u16 HEADER_TYPE = 0x0E;
inline constexpr u16 BAR0 = 0x10;
inline constexpr u16 SUBSYSTEM_VENDOR_ID = 0x2C;
inline constexpr u16 SUBSYSTEM_ID = 0x2E;
inline constexpr u16 EXPANSION_ROM = 0x30;
inline constexpr u16 CAPABILITIES_POINTER = 0x34;
inline constexpr u16 INTERRUPT_LINE = 0x3C;
inline constexpr u16 INTERRUPT_PIN = 0x3D;
inline constexpr u16 FIRST_CAPABILITY = 0x40;         // Capabilities live after the header.

// Command register bits (§6.2.2).
inline constexpr u16 COMMAND_IO = 1u << 0;
inline constexpr u16 COMMAND_MEMORY = 1u << 1;
inline constexpr u16 COMMAND_BUS_MASTER = 1u << 2;
inline constexpr u16 COMMAND_PARITY = 1u << 6;
inline constexpr u16 COMMAND_SERR = 1u << 8;
inline constexpr u16 COMMAND_INTX_DISABLE = 1u << 10;
inline constexpr u16 COMMAND_WRITABLE = COMMAND_IO | COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_PARITY
    | COMMAND_SERR | COMMAND_INTX_DISABLE;

// Status register (§6.2.3): capability list present (RO); error bits are write-1-to-clear.
inline constexpr u16 STATUS_CAPABILITIES = 1u << 4;
inline constexpr u16 STATUS_W1C = 0xF900;

// BAR low bits (§6.2.5.1).
inline constexpr u32 BAR_IO_SPACE = 0x1;
inline constexpr u32 BAR_MEMORY_64 = 0x4;
inline constexpr u32 BAR_PREFETCHABLE = 0x8;

// Capability ids (PCI Code and ID Assignment Specification 1.11 §2).
inline constexpr u8 CAP_ID_MSIX = 0x11;

// MSI-X capability layout (§6.8.2.1-6.8.2.5) and table entry (§6.8.2.6-6.8.2.9).
inline constexpr u8 MSIX_CAP_BYTES = 12;
inline constexpr u16 MSIX_CONTROL_TABLE_SIZE = 0x07FF; // N - 1.
inline constexpr u16 MSIX_CONTROL_FUNCTION_MASK = 1u << 14;
inline constexpr u16 MSIX_CONTROL_ENABLE = 1u << 15;
inline constexpr u32 MSIX_BIR_MASK = 0x7;
inline constexpr u64 MSIX_ENTRY_BYTES = 16;
inline constexpr u64 MSIX_ENTRY_ADDRESS_LO = 0;
inline constexpr u64 MSIX_ENTRY_ADDRESS_HI = 4;
inline constexpr u64 MSIX_ENTRY_DATA = 8;
inline constexpr u64 MSIX_ENTRY_VECTOR_CONTROL = 12;
inline constexpr u32 MSIX_VECTOR_MASKED = 1u << 0;
inline constexpr u16 MSIX_MAX_VECTORS = 2048;

// Class codes (PCI Code and ID Assignment Specification 1.11 §1.7): bridge / host bridge.
inline constexpr u8 CLASS_BRIDGE = 0x06;
inline constexpr u8 SUBCLASS_HOST_BRIDGE = 0x00;

} // namespace vmm::pci

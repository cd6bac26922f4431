// SPDX-License-Identifier: MIT
// PciFunction: the one seam between the PCI core (PciRoot, devices/pci/) and a PCI device
// such as NVMe. A device describes itself (identity, BARs, MSI-X, extra capabilities,
// doorbells that should be eventfds) and handles accesses to its BARs; the core owns config
// space, BAR placement and decoding, MSI-X tables and PBA, and never calls KVM.
//
// Threads: bar_read/bar_write/bus_master_changed run on vCPU threads under the PciRoot lock
// (ARCHITECTURE.md). MsixVectors::raise() may be called from any thread.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "base/types.hpp"

namespace vmm::pci {

class MsixVectors;

struct PciIdentity {
    u16 vendor_id;
    u16 device_id;
    u8 revision;
    u8 class_code; // Base class, subclass, programming interface (PCI Code and ID spec §1).
    u8 subclass;
    u8 prog_if;
    u16 subsystem_vendor_id;
    u16 subsystem_id;
};

enum class BarKind : u8 { Io, Memory32, Memory64 };

// A BAR the device implements. size_bytes is a power of two, at least 16 for memory and 4 for
// I/O (PCI 3.0 §6.2.5.1), at most 2 GiB for Memory32 and 256 for Io. A Memory64 BAR at index i
// also takes index i + 1, which must then be empty.
struct BarLayout {
    BarKind kind;
    u64 size_bytes;
    bool prefetchable { false };
};
using BarLayouts = std::array<std::optional<BarLayout>, 6>;

// MSI-X table and PBA inside one of the device's memory BARs (PCI 3.0 §6.8.2). The core
// serves those ranges itself; bar_read/bar_write never see them. Offsets 8-byte aligned.
struct MsixLayout {
    u16 vectors;        // 1..2048.
    u8 bar;
    u64 table_offset;   // 16 bytes per vector.
    u64 pba_offset;     // One bit per vector, in 64-bit words.
};

// A capability the device adds to its list (after MSI-X): its id and the bytes after the
// id/next header; `writable` (same length or empty = read-only) masks guest writes.
struct PciCapability {
    u8 id;
    std::vector<u8> body;
    std::vector<u8> writable;
};

// A doorbell register that the host should turn into an eventfd (KVM_IOEVENTFD): while the
// BAR decodes, guest writes of exactly `length` bytes at bar base + offset signal `eventfd`
// in the kernel and never reach bar_write. The device owns the fd.
struct IoEventRegion {
    u8 bar;
    u64 offset;
    u32 length; // 1, 2, 4 or 8.
    int eventfd;
};

class PciFunction {
public:
    virtual ~PciFunction() = default;
    virtual std::string_view name() const = 0;
    virtual PciIdentity identity() const = 0;
    virtual BarLayouts bars() const { return {}; }
    virtual std::optional<MsixLayout> msix() const { return std::nullopt; }
    virtual std::vector<PciCapability> capabilities() const { return {}; }
    // The doorbells that should be eventfds now. A device whose set changes at run time (NVMe
    // turns its doorbells into value-less kicks only while the guest keeps shadow copies) bumps
    // ioevents_generation(); the root asks ioevents() again after any bar_write that changed it,
    // before the vCPU returns to the guest. Both may be called from any thread under the root lock.
    virtual std::vector<IoEventRegion> ioevents() const { return {}; }
    virtual u64 ioevents_generation() const { return 0; }

    // A guest access inside BAR `bar` (offset + data.size() inside the BAR, data.size() 1, 2, 4
    // or 8), only while that BAR's decode (command register) is enabled. The guest is hostile:
    // any offset and width may arrive. Reads not filled in return zeros.
    virtual void bar_read(u8 bar, u64 offset, std::span<std::byte> data) = 0;
    virtual void bar_write(u8 bar, u64 offset, std::span<std::byte const> data) = 0;

    // Bus master enable (command bit 2) changed: a device must not touch guest memory while
    // it is clear (PCI 3.0 §6.2.2).
    virtual void bus_master_changed(bool) { }

    // Called once when the function is added, before the guest runs: the handle through which
    // it raises its MSI-X vectors (from any thread). Null if msix() is empty.
    virtual void attach_interrupts(MsixVectors*) { }
};

} // namespace vmm::pci

// SPDX-License-Identifier: MIT
// PciRoot: segment 0, bus 0 behind one host bridge. Owns every function's config space
// (PciEndpoint), serves the two config mechanisms (ECAM, PCIe 4.0 §7.2.2; and the 0xCF8/0xCFC
// configuration mechanism #1, PCI 3.0 §3.2.2.3.2), places BARs in its windows like firmware
// would, decodes guest accesses inside the windows to the BAR they hit, and keeps doorbell
// eventfds registered where their BARs decode.
//
// Sans-IO: the host attaches ecam_*/config_port_*/mmio_*/io_* to one bus range each and
// gives it an MsiSink and an IoEventSink. One PciRoot-rank mutex serialises all of it
// (vCPU threads arrive through different bus slots).
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "base/ranked_mutex.hpp"
#include "devices/pci/host_bridge.hpp"
#include "devices/pci/pci_endpoint.hpp"

namespace vmm::pci {

// Where the host registers doorbell eventfds (KVM_IOEVENTFD in vmm/). Errors are logged by
// the root and the doorbell then simply reaches bar_write.
class IoEventSink {
public:
    virtual ~IoEventSink() = default;
    virtual Result<void> add(bool io_space, u64 address, u32 length, int eventfd) = 0;
    virtual Result<void> remove(bool io_space, u64 address, u32 length, int eventfd) = 0;
};

struct PciWindows {
    u64 ecam_base;      // ECAM for bus 0 only: 1 MiB (32 devices x 8 functions x 4 KiB).
    u64 mmio32_base;    // BARs live in [base, base + size); 64-bit BARs too when no mmio64.
    u64 mmio32_size;
    u64 mmio64_base { 0 };
    u64 mmio64_size { 0 };
    u16 io_base { 0 };  // I/O BARs; size 0 = none.
    u32 io_size { 0 };
};
inline constexpr u64 ECAM_BUS_BYTES = u64 { DEVICES_PER_BUS } * FUNCTIONS_PER_DEVICE * CONFIG_SPACE_BYTES;

class PciRoot {
public:
    PciRoot(PciWindows const&, MsiSink&, IoEventSink*);
    PciRoot(PciRoot const&) = delete;
    PciRoot& operator=(PciRoot const&) = delete;
    ~PciRoot();

    // Before the guest runs: puts `function` at the next free device number (function 0) and
    // assigns its BARs from the windows. Fails when the bus is full or a window has no room.
    Result<u8> add(PciFunction&);

    PciWindows const& windows() const { return m_windows; }

    // Offsets relative to the attached ranges; data.size() is 1, 2, 4 or 8.
    void ecam_read(u64 offset, std::span<std::byte> data);
    void ecam_write(u64 offset, std::span<std::byte const> data);
    void config_port_read(u64 offset, std::span<std::byte> data);        // Ports 0xCF8..0xCFF.
    void config_port_write(u64 offset, std::span<std::byte const> data);
    // Absolute guest-physical addresses / ports; false if no decoding BAR claims the access.
    bool mmio_read(u64 address, std::span<std::byte> data);
    bool mmio_write(u64 address, std::span<std::byte const> data);
    bool io_read(u64 port, std::span<std::byte> data);
    bool io_write(u64 port, std::span<std::byte const> data);

    // Counters (metrics, tests): config accesses per mechanism and refused guest accesses.
    struct Counters {
        u64 ecam_accesses;
        u64 config_port_accesses;
        u64 refused;
    };
    Counters counters() const;

private:
    struct Slot {
        std::unique_ptr<PciEndpoint> endpoint;
        std::vector<IoEventRegion> ioevents;
        u64 ioevents_generation { 0 };
        std::vector<std::pair<IoEventRegion, u64>> registered; // Region, address it is registered at.
    };
    PciEndpoint* endpoint(u64 bus, u64 device, u64 function);
    void config_read(PciEndpoint*, u64 reg, std::span<std::byte> data);
    void config_write(Slot*, u64 reg, std::span<std::byte const> data);
    bool inside_window(BarKind, u64 base, u64 size) const;
    bool dispatch(bool io_space, u64 address, std::span<std::byte> read, std::span<std::byte const> write);
    void sync_ioevents(Slot&);
    void refresh_ioevents(Slot&);
    Result<u64> allocate(BarLayout const&);

    PciWindows const m_windows;
    MsiSink& m_msi;
    IoEventSink* m_ioevents;
    HostBridge m_host_bridge;
    mutable RankedMutex<LockRank::PciRoot> m_lock;
    std::array<std::optional<Slot>, DEVICES_PER_BUS> m_slots;
    u32 m_config_address { 0 }; // 0xCF8 latch.
    u64 m_next_mmio32;
    u64 m_next_mmio64;
    u64 m_next_io;
    Counters m_counters {};
};

} // namespace vmm::pci

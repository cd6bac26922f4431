// SPDX-License-Identifier: MIT
// Test doubles for the PCI core: a recording MSI sink and doorbell sink, a device with a 64-bit
// BAR holding MSI-X, a 32-bit BAR and an I/O BAR, and helpers that speak ECAM and 0xCF8/0xCFC.
#pragma once

#include <cstring>
#include <vector>

#include "devices/pci/pci_root.hpp"

namespace vmm::pci::testing {

struct RecordingMsi final : MsiSink {
    struct Message {
        u64 address;
        u32 data;
        bool operator==(Message const&) const = default;
    };
    std::vector<Message> messages;
    void deliver(u64 address, u32 data) override { messages.push_back({ address, data }); }
};

struct RecordingIoEvents final : IoEventSink {
    struct Entry {
        bool io;
        u64 address;
        u32 length;
        int fd;
        bool operator==(Entry const&) const = default;
    };
    std::vector<Entry> live;
    int adds { 0 };
    int removes { 0 };
    Result<void> add(bool io, u64 address, u32 length, int fd) override
    {
        ++adds;
        live.push_back({ io, address, length, fd });
        return {};
    }
    Result<void> remove(bool io, u64 address, u32 length, int fd) override
    {
        ++removes;
        std::erase(live, Entry { io, address, length, fd });
        return {};
    }
};

// BAR 0: 64-bit 16 KiB memory (registers at 0, MSI-X table at 0x2000, PBA at 0x3000);
// BAR 2: 32-bit 4 KiB memory; BAR 3: 32-byte I/O. Doorbell eventfd 77 at BAR 0 offset 0x1000.
class FakeFunction final : public PciFunction {
public:
    static constexpr u16 VECTORS = 70; // More than 64: two PBA words.
    std::string_view name() const override { return "fake"; }
    PciIdentity identity() const override { return { 0x1234, 0x5678, 2, 0x01, 0x08, 0x02, 0x1AF4, 0x0042 }; }
    BarLayouts bars() const override
    {
        BarLayouts bars {};
        bars[0] = BarLayout { BarKind::Memory64, 16 * 1024, false };
        bars[2] = BarLayout { BarKind::Memory32, 4096, true };
        bars[3] = BarLayout { BarKind::Io, 32, false };
        return bars;
    }
    std::optional<MsixLayout> msix() const override { return MsixLayout { VECTORS, 0, 0x2000, 0x3000 }; }
    std::vector<PciCapability> capabilities() const override
    {
        // A vendor-specific capability (id 9) with one writable byte.
        return { PciCapability { 0x09, { 4, 0xAA, 0xBB }, { 0, 0xFF, 0 } } };
    }
    std::vector<IoEventRegion> ioevents() const override { return { IoEventRegion { 0, 0x1000, 4, 77 } }; }
    void bar_read(u8 bar, u64 offset, std::span<std::byte> data) override
    {
        reads.push_back({ bar, offset, data.size() });
        std::memset(data.data(), 0x5A, data.size());
    }
    void bar_write(u8 bar, u64 offset, std::span<std::byte const> data) override
    {
        u64 value = 0;
        std::memcpy(&value, data.data(), data.size());
        writes.push_back({ bar, offset, data.size(), value });
    }
    void bus_master_changed(bool enabled) override { bus_master.push_back(enabled); }
    void attach_interrupts(MsixVectors* vectors) override { interrupts = vectors; }

    struct Access {
        u8 bar;
        u64 offset;
        std::size_t size;
        u64 value { 0 };
        bool operator==(Access const&) const = default;
    };
    std::vector<Access> reads;
    std::vector<Access> writes;
    std::vector<bool> bus_master;
    MsixVectors* interrupts { nullptr };
};

inline PciWindows test_windows()
{
    return PciWindows { .ecam_base = 0xE000'0000, .mmio32_base = 0xC000'0000, .mmio32_size = 0x2000'0000,
        .mmio64_base = 0x10'0000'0000, .mmio64_size = 0x10'0000'0000, .io_base = 0xC000, .io_size = 0x4000 };
}

// Config accessors through ECAM (bus 0) and through 0xCF8/0xCFC.
inline u64 ecam_offset(u8 device, u16 reg) { return (u64 { device } << 15) | reg; }

inline u32 ecam_read(PciRoot& root, u8 device, u16 reg, std::size_t size = 4)
{
    u32 value = 0;
    root.ecam_read(ecam_offset(device, reg), std::as_writable_bytes(std::span { &value, 1 }).first(size));
    return value;
}

inline void ecam_write(PciRoot& root, u8 device, u16 reg, u32 value, std::size_t size = 4)
{
    root.ecam_write(ecam_offset(device, reg), std::as_bytes(std::span { &value, 1 }).first(size));
}

inline void select(PciRoot& root, u8 device, u16 reg)
{
    u32 const address = 0x8000'0000u | (u32 { device } << 11) | (reg & 0xFCu);
    root.config_port_write(0, std::as_bytes(std::span { &address, 1 }));
}

inline u32 cf8_read(PciRoot& root, u8 device, u16 reg, std::size_t size = 4)
{
    select(root, device, reg);
    u32 value = 0;
    root.config_port_read(4 + reg % 4, std::as_writable_bytes(std::span { &value, 1 }).first(size));
    return value;
}

inline void cf8_write(PciRoot& root, u8 device, u16 reg, u32 value, std::size_t size = 4)
{
    select(root, device, reg);
    root.config_port_write(4 + reg % 4, std::as_bytes(std::span { &value, 1 }).first(size));
}

template<typename T = u32>
T mmio_read(PciRoot& root, u64 address, bool* claimed = nullptr)
{
    T value {};
    bool const ok = root.mmio_read(address, std::as_writable_bytes(std::span { &value, 1 }));
    if (claimed)
        *claimed = ok;
    return value;
}

template<typename T = u32>
bool mmio_write(PciRoot& root, u64 address, T value)
{
    return root.mmio_write(address, std::as_bytes(std::span { &value, 1 }));
}

} // namespace vmm::pci::testing

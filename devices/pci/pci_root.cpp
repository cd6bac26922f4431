// SPDX-License-Identifier: MIT
#include "devices/pci/pci_root.hpp"

#include <algorithm>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

#include "base/log.hpp"

namespace vmm::pci {

namespace {

// 0xCF8 (CONFIG_ADDRESS, PCI 3.0 §3.2.2.3.2): bit 31 enable, 23:16 bus, 15:11 device,
// 10:8 function, 7:2 register. 0xCFC..0xCFF is CONFIG_DATA.
constexpr u32 CONFIG_ADDRESS_ENABLE = 1u << 31;
constexpr u64 CONFIG_DATA_OFFSET = 4;
// ECAM offset bits (PCIe 4.0 §7.2.2 Table 7-1): 27:20 bus, 19:15 device, 14:12 function,
// 11:0 register.
constexpr unsigned ECAM_BUS_SHIFT = 20;
constexpr unsigned ECAM_DEVICE_SHIFT = 15;
constexpr unsigned ECAM_FUNCTION_SHIFT = 12;
// Memory BARs are placed on page boundaries at least, so a BAR never shares a page with
// another (the host could then map or trap each on its own).
constexpr u64 MIN_MEMORY_BAR_ALIGNMENT = 4096;

void fill_ones(std::span<std::byte> data) { std::memset(data.data(), 0xFF, data.size()); }

// A config access must stay inside one dword (PCIe 4.0 §7.2.2: ECAM accesses do not cross a
// DWORD; CONFIG_DATA is one dword wide).
bool within_dword(u64 reg, std::size_t size) { return size <= 4 && reg % 4 + size <= 4; }

} // namespace

PciRoot::PciRoot(PciWindows const& windows, MsiSink& msi, IoEventSink* ioevents)
    : m_windows(windows)
    , m_msi(msi)
    , m_ioevents(ioevents)
    , m_next_mmio32(windows.mmio32_base)
    , m_next_mmio64(windows.mmio64_base)
    , m_next_io(windows.io_base)
{
    m_slots[0] = Slot { std::make_unique<PciEndpoint>(m_host_bridge, m_msi, std::array<u64, BAR_COUNT> {}), {}, {} };
}

PciRoot::~PciRoot()
{
    // Leave no eventfd registered for a BAR whose function may be gone.
    std::lock_guard guard { m_lock };
    if (!m_ioevents)
        return;
    for (auto& slot : m_slots) {
        if (!slot)
            continue;
        for (auto const& [region, address] : slot->registered) {
            bool const io = slot->endpoint->bars()[region.bar]->kind == BarKind::Io;
            if (auto removed = m_ioevents->remove(io, address, region.length, region.eventfd); !removed)
                log::warn("pci", "removing the doorbell eventfd at {:#x}: {}", address, removed.error());
        }
    }
}

Result<u64> PciRoot::allocate(BarLayout const& bar)
{
    u64* next = &m_next_mmio32;
    u64 end = m_windows.mmio32_base + m_windows.mmio32_size;
    u64 alignment = std::max(bar.size_bytes, MIN_MEMORY_BAR_ALIGNMENT);
    if (bar.kind == BarKind::Io) {
        next = &m_next_io;
        end = u64 { m_windows.io_base } + m_windows.io_size;
        alignment = bar.size_bytes;
    } else if (bar.kind == BarKind::Memory64 && m_windows.mmio64_size > 0) {
        next = &m_next_mmio64;
        end = m_windows.mmio64_base + m_windows.mmio64_size;
    }
    u64 const base = (*next + alignment - 1) / alignment * alignment;
    if (base < *next || base > end || bar.size_bytes > end - base)
        return fail(Errc::OutOfRange, "PCI: no room for a BAR in its window", bar.size_bytes);
    *next = base + bar.size_bytes;
    return base;
}

Result<u8> PciRoot::add(PciFunction& function)
{
    std::lock_guard guard { m_lock };
    auto free = std::ranges::find_if(m_slots, [](auto const& slot) { return !slot.has_value(); });
    if (free == m_slots.end())
        return fail(Errc::OutOfRange, fmt::format("PCI bus 0 is full (32 devices): no room for {}", function.name()));
    std::array<u64, BAR_COUNT> addresses {};
    auto const bars = function.bars();
    for (u8 i = 0; i < BAR_COUNT; ++i)
        if (bars[i])
            addresses[i] = VMM_TRY(allocate(*bars[i]).context("placing BAR {} of {}", i, function.name()));
    auto& slot = free->emplace(Slot {
        std::make_unique<PciEndpoint>(function, m_msi, addresses), function.ioevents(), function.ioevents_generation(), {} });
    for (auto const& region : slot.ioevents) {
        auto const& bar = bars[region.bar < BAR_COUNT ? region.bar : 0];
        VMM_ASSERT(region.bar < BAR_COUNT && bar && region.offset + region.length <= bar->size_bytes);
    }
    return static_cast<u8>(free - m_slots.begin());
}

PciEndpoint* PciRoot::endpoint(u64 bus, u64 device, u64 function)
{
    if (bus != 0 || device >= DEVICES_PER_BUS || function != 0 || !m_slots[device])
        return nullptr;
    return m_slots[device]->endpoint.get();
}

void PciRoot::config_read(PciEndpoint* endpoint, u64 reg, std::span<std::byte> data)
{
    if (!within_dword(reg, data.size()) || reg >= CONFIG_SPACE_BYTES) {
        ++m_counters.refused;
        VMM_GUEST_WARN("pci", "config read of {} bytes at register {:#x} crosses a dword: refused", data.size(), reg);
        fill_ones(data);
        return;
    }
    if (!endpoint) {
        fill_ones(data); // No function there: master abort reads all-ones (how scans find nothing).
        return;
    }
    endpoint->read(static_cast<u16>(reg), data);
}

void PciRoot::config_write(Slot* slot, u64 reg, std::span<std::byte const> data)
{
    if (!within_dword(reg, data.size()) || reg >= CONFIG_SPACE_BYTES) {
        ++m_counters.refused;
        VMM_GUEST_WARN("pci", "config write of {} bytes at register {:#x} crosses a dword: refused", data.size(), reg);
        return;
    }
    if (!slot)
        return;
    slot->endpoint->write(static_cast<u16>(reg), data);
    if (reg < BAR0 + 4 * BAR_COUNT)
        sync_ioevents(*slot); // The command register or a BAR may have moved a doorbell.
}

void PciRoot::ecam_read(u64 offset, std::span<std::byte> data)
{
    std::lock_guard guard { m_lock };
    ++m_counters.ecam_accesses;
    config_read(endpoint(offset >> ECAM_BUS_SHIFT, (offset >> ECAM_DEVICE_SHIFT) & 31, (offset >> ECAM_FUNCTION_SHIFT) & 7),
        offset & (CONFIG_SPACE_BYTES - 1), data);
}

void PciRoot::ecam_write(u64 offset, std::span<std::byte const> data)
{
    std::lock_guard guard { m_lock };
    ++m_counters.ecam_accesses;
    u64 const device = (offset >> ECAM_DEVICE_SHIFT) & 31;
    bool const present = endpoint(offset >> ECAM_BUS_SHIFT, device, (offset >> ECAM_FUNCTION_SHIFT) & 7) != nullptr;
    config_write(present ? &*m_slots[device] : nullptr, offset & (CONFIG_SPACE_BYTES - 1), data);
}

void PciRoot::config_port_read(u64 offset, std::span<std::byte> data)
{
    std::lock_guard guard { m_lock };
    if (offset < CONFIG_DATA_OFFSET) {
        // CONFIG_ADDRESS is a dword register; narrower accesses to 0xCF8..0xCFB are other
        // chipset registers on real PCs (0xCF9 reset control), absent here.
        if (offset == 0 && data.size() == 4)
            std::memcpy(data.data(), &m_config_address, 4);
        else
            fill_ones(data);
        return;
    }
    ++m_counters.config_port_accesses;
    u32 const address = m_config_address;
    if ((address & CONFIG_ADDRESS_ENABLE) == 0) {
        fill_ones(data);
        return;
    }
    u64 const reg = (address & 0xFC) + (offset - CONFIG_DATA_OFFSET);
    config_read(endpoint((address >> 16) & 0xFF, (address >> 11) & 31, (address >> 8) & 7), reg, data);
}

void PciRoot::config_port_write(u64 offset, std::span<std::byte const> data)
{
    std::lock_guard guard { m_lock };
    if (offset < CONFIG_DATA_OFFSET) {
        if (offset == 0 && data.size() == 4) {
            u32 value;
            std::memcpy(&value, data.data(), 4);
            m_config_address = value & 0x80FF'FFFC; // Bits 30:24 reserved, 1:0 read as 0.
        }
        return;
    }
    ++m_counters.config_port_accesses;
    u32 const address = m_config_address;
    if ((address & CONFIG_ADDRESS_ENABLE) == 0)
        return;
    u64 const reg = (address & 0xFC) + (offset - CONFIG_DATA_OFFSET);
    u64 const device = (address >> 11) & 31;
    bool const present = endpoint((address >> 16) & 0xFF, device, (address >> 8) & 7) != nullptr;
    config_write(present ? &*m_slots[device] : nullptr, reg, data);
}

bool PciRoot::inside_window(BarKind kind, u64 base, u64 size) const
{
    auto inside = [&](u64 window_base, u64 window_size) {
        return window_size > 0 && base >= window_base && base - window_base <= window_size
            && size <= window_size - (base - window_base);
    };
    if (kind == BarKind::Io)
        return inside(m_windows.io_base, m_windows.io_size);
    return inside(m_windows.mmio32_base, m_windows.mmio32_size) || inside(m_windows.mmio64_base, m_windows.mmio64_size);
}

bool PciRoot::dispatch(bool io_space, u64 address, std::span<std::byte> read, std::span<std::byte const> write)
{
    std::size_t const size = read.empty() ? write.size() : read.size();
    for (auto& slot : m_slots) {
        if (!slot)
            continue;
        auto& endpoint = *slot->endpoint;
        for (u8 bar = 0; bar < BAR_COUNT; ++bar) {
            auto const decode = endpoint.decode(bar);
            // A BAR decodes only where the host bridge forwards: inside its windows.
            if (!decode || (decode->kind == BarKind::Io) != io_space || !inside_window(decode->kind, decode->base, decode->size))
                continue;
            if (address < decode->base || address - decode->base >= decode->size)
                continue;
            u64 const offset = address - decode->base;
            if (size > decode->size - offset) {
                ++m_counters.refused;
                VMM_GUEST_WARN("pci", "{}: access of {} bytes at BAR {} offset {:#x} runs past the BAR: refused",
                    endpoint.function().name(), size, bar, offset);
                return false;
            }
            auto const& msix = endpoint.msix_layout();
            if (msix && msix->bar == bar) {
                auto* vectors = endpoint.msix();
                auto in = [&](u64 start, u64 bytes) { return offset >= start && offset - start < bytes; };
                if (in(msix->table_offset, vectors->table_bytes())) {
                    if (write.empty())
                        vectors->table_read(offset - msix->table_offset, read);
                    else
                        vectors->table_write(offset - msix->table_offset, write);
                    return true;
                }
                if (in(msix->pba_offset, vectors->pba_bytes())) {
                    if (write.empty())
                        vectors->pba_read(offset - msix->pba_offset, read);
                    // The PBA is read-only (§6.8.2.10): writes are ignored.
                    return true;
                }
            }
            if (write.empty()) {
                std::memset(read.data(), 0, read.size());
                endpoint.function().bar_read(bar, offset, read);
            } else {
                endpoint.function().bar_write(bar, offset, write);
                refresh_ioevents(*slot);
            }
            return true;
        }
    }
    return false;
}

bool PciRoot::mmio_read(u64 address, std::span<std::byte> data)
{
    std::lock_guard guard { m_lock };
    return dispatch(false, address, data, {});
}

bool PciRoot::mmio_write(u64 address, std::span<std::byte const> data)
{
    std::lock_guard guard { m_lock };
    return !data.empty() && dispatch(false, address, {}, data);
}

bool PciRoot::io_read(u64 port, std::span<std::byte> data)
{
    std::lock_guard guard { m_lock };
    return dispatch(true, port, data, {});
}

bool PciRoot::io_write(u64 port, std::span<std::byte const> data)
{
    std::lock_guard guard { m_lock };
    return !data.empty() && dispatch(true, port, {}, data);
}

void PciRoot::refresh_ioevents(Slot& slot)
{
    auto& function = slot.endpoint->function();
    u64 const generation = function.ioevents_generation();
    if (generation == slot.ioevents_generation)
        return;
    slot.ioevents_generation = generation;
    slot.ioevents = function.ioevents();
    auto const bars = slot.endpoint->bars();
    for (auto const& region : slot.ioevents) {
        auto const& bar = bars[region.bar < BAR_COUNT ? region.bar : 0];
        VMM_ASSERT(region.bar < BAR_COUNT && bar && region.offset + region.length <= bar->size_bytes);
    }
    sync_ioevents(slot);
}

void PciRoot::sync_ioevents(Slot& slot)
{
    if (!m_ioevents || (slot.ioevents.empty() && slot.registered.empty()))
        return;
    auto& endpoint = *slot.endpoint;
    // Where each doorbell should be registered now (nothing while its BAR does not decode).
    std::vector<std::pair<IoEventRegion, u64>> wanted;
    for (auto const& region : slot.ioevents) {
        auto const decode = endpoint.decode(region.bar);
        if (decode && inside_window(decode->kind, decode->base, decode->size))
            wanted.emplace_back(region, decode->base + region.offset);
    }
    auto same = [](std::pair<IoEventRegion, u64> const& a, std::pair<IoEventRegion, u64> const& b) {
        return a.second == b.second && a.first.eventfd == b.first.eventfd && a.first.length == b.first.length;
    };
    auto io = [&](IoEventRegion const& region) { return endpoint.bars()[region.bar]->kind == BarKind::Io; };
    std::vector<std::pair<IoEventRegion, u64>> kept;
    for (auto const& entry : slot.registered) {
        if (std::ranges::any_of(wanted, [&](auto const& w) { return same(w, entry); })) {
            kept.push_back(entry);
            continue;
        }
        if (auto removed = m_ioevents->remove(io(entry.first), entry.second, entry.first.length, entry.first.eventfd); !removed)
            VMM_GUEST_WARN("pci", "{}: removing doorbell eventfd at {:#x}: {}", endpoint.function().name(), entry.second,
                removed.error());
    }
    for (auto const& entry : wanted) {
        if (std::ranges::any_of(kept, [&](auto const& k) { return same(k, entry); }))
            continue;
        // Failure (e.g. a guest put two BARs on one address) leaves the doorbell on bar_write.
        if (auto added = m_ioevents->add(io(entry.first), entry.second, entry.first.length, entry.first.eventfd); added)
            kept.push_back(entry);
        else
            VMM_GUEST_WARN("pci", "{}: doorbell eventfd at {:#x} not registered ({}): it exits to user space",
                endpoint.function().name(), entry.second, added.error());
    }
    slot.registered = std::move(kept);
}

PciRoot::Counters PciRoot::counters() const
{
    std::lock_guard guard { m_lock };
    return m_counters;
}

} // namespace vmm::pci

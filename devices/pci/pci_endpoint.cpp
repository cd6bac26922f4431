// SPDX-License-Identifier: MIT
#include "devices/pci/pci_endpoint.hpp"

#include <bit>
#include <cstring>

#include "base/error.hpp"

namespace vmm::pci {

namespace {

void put16(std::array<u8, CONFIG_SPACE_BYTES>& bytes, u16 at, u16 value)
{
    bytes[at] = static_cast<u8>(value);
    bytes[at + 1] = static_cast<u8>(value >> 8);
}

void put32(std::array<u8, CONFIG_SPACE_BYTES>& bytes, u16 at, u32 value)
{
    put16(bytes, at, static_cast<u16>(value));
    put16(bytes, static_cast<u16>(at + 2), static_cast<u16>(value >> 16));
}

void check_layout(BarLayouts const& bars, std::optional<MsixLayout> const& msix)
{
    for (u8 i = 0; i < BAR_COUNT; ++i) {
        if (!bars[i])
            continue;
        auto const& bar = *bars[i];
        VMM_ASSERT(std::has_single_bit(bar.size_bytes));
        switch (bar.kind) {
        case BarKind::Io: VMM_ASSERT(bar.size_bytes >= 4 && bar.size_bytes <= 256); break;
        case BarKind::Memory32: VMM_ASSERT(bar.size_bytes >= 16 && bar.size_bytes <= 2 * GIB); break;
        case BarKind::Memory64: VMM_ASSERT(bar.size_bytes >= 16 && i + 1 < BAR_COUNT && !bars[i + 1]); break;
        }
    }
    if (msix) {
        VMM_ASSERT(msix->vectors >= 1 && msix->vectors <= MSIX_MAX_VECTORS && msix->bar < BAR_COUNT);
        auto const& bar = bars[msix->bar];
        VMM_ASSERT(bar && bar->kind != BarKind::Io);
        VMM_ASSERT(msix->table_offset % 8 == 0 && msix->pba_offset % 8 == 0);
        VMM_ASSERT(msix->table_offset + u64 { msix->vectors } * MSIX_ENTRY_BYTES <= bar->size_bytes);
        VMM_ASSERT(msix->pba_offset + (msix->vectors + 63u) / 64u * 8u <= bar->size_bytes);
    }
}

// The low flag bits a BAR register always reads with (§6.2.5.1).
u32 bar_flags(BarLayout const& bar)
{
    switch (bar.kind) {
    case BarKind::Io: return BAR_IO_SPACE;
    case BarKind::Memory32: return bar.prefetchable ? BAR_PREFETCHABLE : 0;
    case BarKind::Memory64: return BAR_MEMORY_64 | (bar.prefetchable ? BAR_PREFETCHABLE : 0);
    }
    return 0;
}

} // namespace

PciEndpoint::PciEndpoint(PciFunction& function, MsiSink& msi, std::array<u64, BAR_COUNT> const& initial_bars)
    : m_function(function)
    , m_bars(function.bars())
    , m_msix_layout(function.msix())
{
    check_layout(m_bars, m_msix_layout);
    auto const id = function.identity();
    put16(m_bytes, VENDOR_ID, id.vendor_id);
    put16(m_bytes, DEVICE_ID, id.device_id);
    m_bytes[REVISION_ID] = id.revision;
    m_bytes[PROG_IF] = id.prog_if;
    m_bytes[SUBCLASS] = id.subclass;
    m_bytes[CLASS_CODE] = id.class_code;
    m_bytes[HEADER_TYPE] = 0x00; // Type 0, single function.
    put16(m_bytes, SUBSYSTEM_VENDOR_ID, id.subsystem_vendor_id);
    put16(m_bytes, SUBSYSTEM_ID, id.subsystem_id);
    // INTERRUPT_PIN stays 0: no INTx, MSI-X only (so no _PRT is needed, drivers/acpi/pci_irq.c
    // acpi_pci_irq_enable() returns early for pin 0).
    put16(m_writable, COMMAND, COMMAND_WRITABLE);
    put16(m_w1c, STATUS, STATUS_W1C);
    m_writable[CACHE_LINE_SIZE] = 0xFF;
    m_writable[INTERRUPT_LINE] = 0xFF; // Scratch for the OS (§6.2.4).

    for (u8 i = 0; i < BAR_COUNT; ++i) {
        if (!m_bars[i])
            continue;
        u16 const reg = static_cast<u16>(BAR0 + 4 * i);
        u64 const size = m_bars[i]->size_bytes;
        u64 const base = initial_bars[i] & ~(size - 1);
        put32(m_bytes, reg, static_cast<u32>(base));
        std::memset(&m_writable[reg], 0xFF, 4); // Low flag bits and size bits are restored by normalise_bars().
        if (m_bars[i]->kind == BarKind::Memory64) {
            put32(m_bytes, static_cast<u16>(reg + 4), static_cast<u32>(base >> 32));
            std::memset(&m_writable[reg + 4], 0xFF, 4);
        }
    }
    normalise_bars();

    // Capability list from 0x40: MSI-X, then the device's own, each dword aligned.
    u8* next = &m_bytes[CAPABILITIES_POINTER];
    u16 at = FIRST_CAPABILITY;
    if (m_msix_layout) {
        m_msix = std::make_unique<MsixVectors>(m_msix_layout->vectors, msi);
        m_msix_cap = at;
        std::array<u8, MSIX_CAP_BYTES - 2> body {};
        u16 const control = static_cast<u16>(m_msix_layout->vectors - 1);
        body[0] = static_cast<u8>(control);
        body[1] = static_cast<u8>(control >> 8);
        u32 const table = static_cast<u32>(m_msix_layout->table_offset) | m_msix_layout->bar;
        u32 const pba = static_cast<u32>(m_msix_layout->pba_offset) | m_msix_layout->bar;
        std::memcpy(&body[2], &table, 4);
        std::memcpy(&body[6], &pba, 4);
        std::array<u8, MSIX_CAP_BYTES - 2> writable {};
        writable[1] = static_cast<u8>((MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK) >> 8);
        add_capability(*next, at, CAP_ID_MSIX, body, writable);
        next = &m_bytes[at + 1];
        at = static_cast<u16>(at + MSIX_CAP_BYTES);
    }
    for (auto const& cap : function.capabilities()) {
        VMM_ASSERT(cap.writable.empty() || cap.writable.size() == cap.body.size());
        VMM_ASSERT(at + 2 + cap.body.size() <= LEGACY_CONFIG_BYTES);
        add_capability(*next, at, cap.id, cap.body, cap.writable);
        next = &m_bytes[at + 1];
        at = static_cast<u16>((at + 2 + cap.body.size() + 3) / 4 * 4);
    }
    if (m_bytes[CAPABILITIES_POINTER] != 0)
        put16(m_bytes, STATUS, STATUS_CAPABILITIES);
    function.attach_interrupts(m_msix.get());
}

void PciEndpoint::add_capability(u8& previous_next, u16 at, u8 id, std::span<u8 const> body, std::span<u8 const> writable)
{
    previous_next = static_cast<u8>(at);
    m_bytes[at] = id;
    m_bytes[at + 1] = 0;
    std::memcpy(&m_bytes[at + 2], body.data(), body.size());
    if (!writable.empty())
        std::memcpy(&m_writable[at + 2], writable.data(), writable.size());
}

u32 PciEndpoint::dword(u16 offset) const
{
    u32 value;
    std::memcpy(&value, &m_bytes[offset], 4);
    return value;
}

u16 PciEndpoint::command() const { return static_cast<u16>(m_bytes[COMMAND] | (m_bytes[COMMAND + 1] << 8)); }

void PciEndpoint::read(u16 offset, std::span<std::byte> data) const
{
    VMM_ASSERT(offset + data.size() <= CONFIG_SPACE_BYTES);
    std::memcpy(data.data(), &m_bytes[offset], data.size());
}

void PciEndpoint::write(u16 offset, std::span<std::byte const> data)
{
    VMM_ASSERT(offset + data.size() <= CONFIG_SPACE_BYTES);
    u16 const old_command = command();
    for (std::size_t i = 0; i < data.size(); ++i) {
        u8 const value = static_cast<u8>(data[i]);
        u8& byte = m_bytes[offset + i];
        byte = static_cast<u8>((byte & ~m_writable[offset + i]) | (value & m_writable[offset + i]));
        byte = static_cast<u8>(byte & ~(value & m_w1c[offset + i]));
    }
    after_write(offset, data.size(), old_command);
}

void PciEndpoint::normalise_bars()
{
    // Size bits below the BAR's size are hard-wired 0 and the flag bits are fixed, so writing
    // all-ones reads back ~(size - 1) | flags: the sizing protocol of §6.2.5.1.
    for (u8 i = 0; i < BAR_COUNT; ++i) {
        u16 const reg = static_cast<u16>(BAR0 + 4 * i);
        if (!m_bars[i]) {
            bool const upper_half = i > 0 && m_bars[i - 1] && m_bars[i - 1]->kind == BarKind::Memory64;
            if (!upper_half)
                put32(m_bytes, reg, 0);
            continue;
        }
        auto const& bar = *m_bars[i];
        u64 const mask = ~(bar.size_bytes - 1);
        u32 const low_flags_mask = bar.kind == BarKind::Io ? 0x3 : 0xF;
        put32(m_bytes, reg, (dword(reg) & static_cast<u32>(mask) & ~low_flags_mask) | bar_flags(bar));
        if (bar.kind == BarKind::Memory64)
            put32(m_bytes, static_cast<u16>(reg + 4), dword(static_cast<u16>(reg + 4)) & static_cast<u32>(mask >> 32));
    }
}

void PciEndpoint::after_write(u16 offset, std::size_t size, u16 old_command)
{
    u16 const end = static_cast<u16>(offset + size);
    if (offset < BAR0 + 4 * BAR_COUNT && end > BAR0)
        normalise_bars();
    u16 const new_command = command();
    if ((old_command ^ new_command) & COMMAND_BUS_MASTER)
        m_function.bus_master_changed((new_command & COMMAND_BUS_MASTER) != 0);
    if (m_msix && offset < m_msix_cap + 4 && end > m_msix_cap + 2) {
        u16 const control = static_cast<u16>(m_bytes[m_msix_cap + 2] | (m_bytes[m_msix_cap + 3] << 8));
        m_msix->set_control((control & MSIX_CONTROL_ENABLE) != 0, (control & MSIX_CONTROL_FUNCTION_MASK) != 0);
    }
}

std::optional<PciEndpoint::Decode> PciEndpoint::decode(u8 bar) const
{
    if (bar >= BAR_COUNT || !m_bars[bar])
        return std::nullopt;
    auto const& layout = *m_bars[bar];
    u16 const enable = layout.kind == BarKind::Io ? COMMAND_IO : COMMAND_MEMORY;
    if ((command() & enable) == 0)
        return std::nullopt;
    u16 const reg = static_cast<u16>(BAR0 + 4 * bar);
    u64 base = dword(reg) & ~u64 { layout.kind == BarKind::Io ? 0x3u : 0xFu };
    if (layout.kind == BarKind::Memory64)
        base |= u64 { dword(static_cast<u16>(reg + 4)) } << 32;
    return Decode { layout.kind, base, layout.size_bytes };
}

} // namespace vmm::pci

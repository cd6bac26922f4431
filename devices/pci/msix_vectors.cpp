// SPDX-License-Identifier: MIT
#include "devices/pci/msix_vectors.hpp"

#include <cstring>
#include <mutex>

#include "base/error.hpp"
#include "base/log.hpp"
#include "devices/pci/pci_regs.hpp"

namespace vmm::pci {

namespace {
// An MSI targets the local APICs: address bits 31:20 are 0xFEE (Intel SDM Vol. 3A 10.11.1).
// Anything else would be a DMA write into guest memory on real hardware; here it is refused.
constexpr u32 MSI_ADDRESS_MASK = 0xFFF0'0000;
constexpr u32 MSI_ADDRESS_BASE = 0xFEE0'0000;

bool aligned_dword_or_qword(u64 offset, std::size_t size)
{
    return (size == 4 || size == 8) && offset % size == 0;
}
} // namespace

MsixVectors::MsixVectors(u16 vectors, MsiSink& sink)
    : m_count(vectors)
    , m_sink(sink)
    , m_entries(vectors)
    , m_pending((vectors + 63u) / 64u, 0)
{
    VMM_ASSERT(vectors >= 1 && vectors <= MSIX_MAX_VECTORS);
}

bool MsixVectors::deliverable(Entry const& entry) const
{
    return m_enabled && !m_function_masked && (entry.control & MSIX_VECTOR_MASKED) == 0;
}

void MsixVectors::send(Entry const& entry)
{
    if ((entry.address_lo & MSI_ADDRESS_MASK) != MSI_ADDRESS_BASE) {
        m_dropped.fetch_add(1, std::memory_order_relaxed);
        VMM_GUEST_WARN("pci", "MSI-X message to {:#x}:{:#x} is not a local APIC address: dropped",
            entry.address_hi, entry.address_lo);
        return;
    }
    m_delivered.fetch_add(1, std::memory_order_relaxed);
    m_sink.deliver((u64 { entry.address_hi } << 32) | entry.address_lo, entry.data);
}

void MsixVectors::raise(u16 vector)
{
    std::lock_guard guard { m_lock };
    if (vector >= m_count || !m_enabled) {
        // With MSI-X off the function has no interrupt at all (no INTx pin): nothing to send.
        m_dropped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    auto const& entry = m_entries[vector];
    if (deliverable(entry))
        send(entry);
    else
        m_pending[vector / 64] |= u64 { 1 } << (vector % 64);
}

void MsixVectors::flush_pending()
{
    for (u16 vector = 0; vector < m_count; ++vector) {
        u64 const bit = u64 { 1 } << (vector % 64);
        if ((m_pending[vector / 64] & bit) != 0 && deliverable(m_entries[vector])) {
            m_pending[vector / 64] &= ~bit;
            send(m_entries[vector]);
        }
    }
}

void MsixVectors::set_control(bool enabled, bool function_masked)
{
    std::lock_guard guard { m_lock };
    m_enabled = enabled;
    m_function_masked = function_masked;
    flush_pending();
}

u32 MsixVectors::read_dword(u64 offset) const
{
    auto const& entry = m_entries[offset / MSIX_ENTRY_BYTES];
    switch (offset % MSIX_ENTRY_BYTES) {
    case MSIX_ENTRY_ADDRESS_LO: return entry.address_lo;
    case MSIX_ENTRY_ADDRESS_HI: return entry.address_hi;
    case MSIX_ENTRY_DATA: return entry.data;
    default: return entry.control;
    }
}

void MsixVectors::table_read(u64 offset, std::span<std::byte> data)
{
    std::memset(data.data(), 0, data.size());
    if (!aligned_dword_or_qword(offset, data.size()) || offset + data.size() > table_bytes()) {
        VMM_GUEST_WARN("pci", "MSI-X table read of {} bytes at {:#x}: not an aligned dword/qword inside the table",
            data.size(), offset);
        return;
    }
    std::lock_guard guard { m_lock };
    for (std::size_t done = 0; done < data.size(); done += 4) {
        u32 const value = read_dword(offset + done);
        std::memcpy(data.data() + done, &value, 4);
    }
}

void MsixVectors::table_write(u64 offset, std::span<std::byte const> data)
{
    if (!aligned_dword_or_qword(offset, data.size()) || offset + data.size() > table_bytes()) {
        VMM_GUEST_WARN("pci", "MSI-X table write of {} bytes at {:#x}: not an aligned dword/qword inside the table",
            data.size(), offset);
        return;
    }
    std::lock_guard guard { m_lock };
    bool unmasked = false;
    for (std::size_t done = 0; done < data.size(); done += 4) {
        u32 value;
        std::memcpy(&value, data.data() + done, 4);
        u64 const at = offset + done;
        auto& entry = m_entries[at / MSIX_ENTRY_BYTES];
        switch (at % MSIX_ENTRY_BYTES) {
        case MSIX_ENTRY_ADDRESS_LO: entry.address_lo = value & ~u32 { 3 }; break; // Bits 1:0 reserved, DWORD aligned.
        case MSIX_ENTRY_ADDRESS_HI: entry.address_hi = value; break;
        case MSIX_ENTRY_DATA: entry.data = value; break;
        default: {
            // Only the mask bit is defined (§6.8.2.9); the rest is reserved and reads 0.
            u32 const before = entry.control;
            entry.control = value & MSIX_VECTOR_MASKED;
            unmasked = unmasked || ((before & MSIX_VECTOR_MASKED) != 0 && entry.control == 0);
        }
        }
    }
    if (unmasked)
        flush_pending();
}

void MsixVectors::pba_read(u64 offset, std::span<std::byte> data)
{
    std::memset(data.data(), 0, data.size());
    if (!aligned_dword_or_qword(offset, data.size()) || offset + data.size() > pba_bytes()) {
        VMM_GUEST_WARN("pci", "MSI-X PBA read of {} bytes at {:#x}: not an aligned dword/qword inside the PBA",
            data.size(), offset);
        return;
    }
    std::lock_guard guard { m_lock };
    u64 const word = m_pending[offset / 8];
    std::memcpy(data.data(), reinterpret_cast<std::byte const*>(&word) + offset % 8, data.size()); // Little-endian host (x86).
}

bool MsixVectors::pending(u16 vector) const
{
    std::lock_guard guard { m_lock };
    return vector < m_count && (m_pending[vector / 64] >> (vector % 64) & 1) != 0;
}

} // namespace vmm::pci

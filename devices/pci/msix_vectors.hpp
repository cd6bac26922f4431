// SPDX-License-Identifier: MIT
// MsixVectors: one function's MSI-X state (PCI 3.0 §6.8.2): the vector table (address, data,
// per-vector mask), the Pending Bit Array, and the capability's enable and function-mask bits.
// A vector raised while masked (per vector or function-wide) sets its pending bit and is
// delivered when unmasked (§6.8.2.9, "pending bit ... the function sends the message when
// the vector is unmasked").
//
// Threads: the table and PBA are read and written by vCPUs (MMIO under the PciRoot lock), the
// control bits by config writes, and raise() comes from any thread (a device's I/O thread);
// one PciMsix-rank mutex serialises them, and MsiSink::deliver runs under it so a pending
// message is never overtaken by a later one (ARCHITECTURE.md lock order).
#pragma once

#include <atomic>
#include <cstddef>
#include <span>
#include <vector>

#include "base/ranked_mutex.hpp"
#include "base/types.hpp"

namespace vmm::pci {

// Where MSI messages go: the host (vmm) turns them into KVM_SIGNAL_MSI. Called from any thread.
class MsiSink {
public:
    virtual ~MsiSink() = default;
    virtual void deliver(u64 address, u32 data) = 0;
};

class MsixVectors {
public:
    // vectors: 1..MSIX_MAX_VECTORS (a host bug otherwise). Every vector starts masked (§6.8.2.9).
    MsixVectors(u16 vectors, MsiSink&);

    // Any thread: sends vector's message, or sets its pending bit while it or the function is
    // masked. Dropped (and counted) while MSI-X is disabled or for a vector out of range.
    void raise(u16 vector);

    // The capability's Message Control bits 15 (enable) and 14 (function mask), from config
    // writes; unmasking delivers what is pending.
    void set_control(bool enabled, bool function_masked);

    // Guest accesses at an offset inside the table (16 bytes per vector) or the PBA. Only
    // aligned 4- and 8-byte accesses are defined (§6.8.2); others read as zero and are ignored.
    void table_read(u64 offset, std::span<std::byte> data);
    void table_write(u64 offset, std::span<std::byte const> data);
    void pba_read(u64 offset, std::span<std::byte> data);

    u16 vector_count() const { return m_count; }
    u64 table_bytes() const { return u64 { m_count } * 16; }
    u64 pba_bytes() const { return (u64 { m_count } + 63) / 64 * 8; }

    // For tests and metrics.
    bool pending(u16 vector) const;
    u64 delivered() const { return m_delivered.load(std::memory_order_relaxed); }
    u64 dropped() const { return m_dropped.load(std::memory_order_relaxed); }

private:
    struct Entry {
        u32 address_lo { 0 };
        u32 address_hi { 0 };
        u32 data { 0 };
        u32 control { 1 }; // Masked at reset.
    };
    bool deliverable(Entry const&) const;
    void send(Entry const&);
    void flush_pending();
    u32 read_dword(u64 offset) const;

    u16 const m_count;
    MsiSink& m_sink;
    mutable RankedMutex<LockRank::PciMsix> m_lock;
    std::vector<Entry> m_entries;
    std::vector<u64> m_pending;
    bool m_enabled { false };
    bool m_function_masked { false };
    std::atomic<u64> m_delivered { 0 };
    std::atomic<u64> m_dropped { 0 };
};

} // namespace vmm::pci

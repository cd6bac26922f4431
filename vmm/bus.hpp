// SPDX-License-Identifier: MIT
// Bus: address ranges -> IoDevice, one instance for port I/O and one for MMIO. Attach during
// machine construction, then freeze; lookups after freeze() need no lock.
#pragma once

#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "base/ranked_mutex.hpp"
#include "base/error.hpp"
#include "vmm/io_device.hpp"

namespace vmm {

struct AddressRange {
    u64 start;
    u64 size_bytes;
    u64 end() const { return start + size_bytes; }
};

class Bus {
public:
    explicit Bus(std::string_view name)
        : m_name(name)
    {
    }

    // Fails on zero length, wraparound or overlap (Firecracker BusRange::new + insert).
    // `device` must outlive the Bus (the Machine declares devices before buses).
    Result<void> attach(AddressRange, IoDevice& device);
    void freeze() { m_frozen = true; }

    // Unclaimed reads return all-ones and unclaimed writes are dropped, both logged
    // rate-limited (an access straddling two ranges counts as unclaimed).
    IoStatus read(u64 address, std::span<std::byte> data) const;
    IoStatus write(u64 address, std::span<std::byte const> data) const;

    std::string_view name() const { return m_name; }

private:
    struct Slot {
        AddressRange range;
        IoDevice* device;
        std::unique_ptr<RankedMutex<LockRank::BusDevice>> lock; // Serialises the device: device code is single-threaded.
    };
    Slot const* find(u64 address, u64 size_bytes) const;

    std::string_view m_name;
    std::vector<Slot> m_slots; // Sorted by range.start.
    bool m_frozen { false };
};

} // namespace vmm

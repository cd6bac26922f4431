// SPDX-License-Identifier: MIT
#include "vmm/bus.hpp"

#include <algorithm>
#include <cstring>

#include "base/log.hpp"

namespace vmm {

namespace {
// Guests probe for absent hardware all the time (Linux touches PCI config, COM2-4 and the
// keyboard controller at boot), so unclaimed accesses are debug-level and rate-limited.
#define VMM_BUS_UNCLAIMED(...)                                                                     \
    do {                                                                                           \
        static ::vmm::log::RateLimit vmm_rate_limit_ { /*burst=*/10, /*per_second=*/1 };           \
        if (::vmm::log::enabled(::vmm::log::Level::Debug) && vmm_rate_limit_.allow())              \
            ::vmm::log::debug("bus", __VA_ARGS__);                                                 \
    } while (0)
} // namespace

Result<void> Bus::attach(AddressRange range, IoDevice& device)
{
    VMM_ASSERT(!m_frozen);
    if (range.size_bytes == 0 || range.start + range.size_bytes < range.start)
        return fail(Errc::InvalidArgument, "bus attach: empty or wrapping range", range.start);
    auto position = std::ranges::upper_bound(m_slots, range.start, {}, [](Slot const& slot) { return slot.range.start; });
    if (position != m_slots.end() && position->range.start < range.end())
        return fail(Errc::Overlap, "bus attach overlaps the next range", range.start);
    if (position != m_slots.begin() && std::prev(position)->range.end() > range.start)
        return fail(Errc::Overlap, "bus attach overlaps the previous range", range.start);
    m_slots.insert(position, Slot { range, &device, std::make_unique<RankedMutex<LockRank::BusDevice>>() });
    return {};
}

Bus::Slot const* Bus::find(u64 address, u64 size_bytes) const
{
    auto position = std::ranges::upper_bound(m_slots, address, {}, [](Slot const& slot) { return slot.range.start; });
    if (position == m_slots.begin())
        return nullptr;
    auto const& slot = *std::prev(position);
    if (address >= slot.range.end() || size_bytes > slot.range.end() - address)
        return nullptr;
    return &slot;
}

IoStatus Bus::read(u64 address, std::span<std::byte> data) const
{
    auto const* slot = find(address, data.size());
    if (!slot) {
        // All-ones is what an empty ISA/PCI bus returns (floating lines).
        std::memset(data.data(), 0xFF, data.size());
        VMM_BUS_UNCLAIMED("{}: unclaimed read at {:#x} size {}", m_name, address, data.size());
        return IoStatus::Unclaimed;
    }
    std::lock_guard guard { *slot->lock };
    return slot->device->read(address - slot->range.start, data);
}

IoStatus Bus::write(u64 address, std::span<std::byte const> data) const
{
    auto const* slot = find(address, data.size());
    if (!slot) {
        VMM_BUS_UNCLAIMED("{}: unclaimed write at {:#x} size {}", m_name, address, data.size());
        return IoStatus::Unclaimed;
    }
    std::lock_guard guard { *slot->lock };
    return slot->device->write(address - slot->range.start, data);
}

} // namespace vmm

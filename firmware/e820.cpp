// SPDX-License-Identifier: MIT
// Guest memory map construction (see e820.hpp for the layout and why).
#include "firmware/e820.hpp"

#include "mem/page_range_set.hpp"

namespace vmm::firmware {

namespace {

// x86-64 physical addresses are at most 52 bits (Intel SDM Vol. 3A 4.1.4).
constexpr u64 MAX_PHYS_ADDRESS = u64 { 1 } << 52;

// RAM that does not fit below the MMIO hole, relocated to 4 GiB.
constexpr u64 high_ram_bytes(u64 ram_bytes)
{
    return ram_bytes > MMIO_HOLE_START ? ram_bytes - MMIO_HOLE_START : 0;
}

} // namespace

Result<void> check_ram_bytes(u64 ram_bytes)
{
    if (ram_bytes < MIN_RAM_BYTES)
        return fail(Errc::Config, "guest RAM size below the 2 MiB minimum", ram_bytes);
    if (ram_bytes % mem::PAGE_SIZE != 0)
        return fail(Errc::Config, "guest RAM size not a multiple of 4 KiB", ram_bytes);
    if (high_ram_bytes(ram_bytes) > MAX_PHYS_ADDRESS - HIGH_RAM_RELOCATED_START)
        return fail(Errc::Config, "guest RAM size beyond the 52-bit physical address space", ram_bytes);
    return {};
}

std::vector<E820Entry> build_e820(std::uint64_t ram_bytes, bool pci_ecam)
{
    std::vector<E820Entry> map;
    // A size check_ram_bytes() refuses still yields a consistent (clamped) map.
    map.push_back({ RAM_START, LOW_RAM_END, E820_RAM });
    map.push_back({ EBDA_START, HIGH_RAM_START - EBDA_START, E820_RESERVED });
    u64 below_hole = low_ram_end(ram_bytes);
    if (below_hole > HIGH_RAM_START)
        map.push_back({ HIGH_RAM_START, below_hole - HIGH_RAM_START, E820_RAM });
    if (pci_ecam)
        map.push_back({ PCI_ECAM_BASE, PCI_ECAM_SIZE, E820_RESERVED });
    if (u64 high = high_ram_bytes(ram_bytes); high > 0)
        map.push_back({ HIGH_RAM_RELOCATED_START, high, E820_RAM });
    return map;
}

std::vector<mem::PageRange> firmware_reserved_pages(std::uint64_t ram_bytes)
{
    mem::PageRangeSet reserved;
    for (auto const& range : ram_ranges(ram_bytes))
        reserved.insert(mem::PageRange { range.start.page(), mem::PageCount::from_bytes_floor(range.size_bytes) });
    for (auto const& entry : build_e820(ram_bytes)) {
        if (entry.type != E820_RAM)
            continue;
        // Only whole pages are the guest's: round the RAM entry inward.
        u64 const first = (entry.addr + mem::PAGE_SIZE - 1) / mem::PAGE_SIZE;
        u64 const end = (entry.addr + entry.size) / mem::PAGE_SIZE;
        if (end > first)
            reserved.remove(mem::PageRange { mem::Gpn { first }, mem::PageCount { end - first } });
    }
    return { reserved.begin(), reserved.end() };
}

std::vector<RamRange> ram_ranges(std::uint64_t ram_bytes)
{
    std::vector<RamRange> ranges;
    if (u64 below_hole = low_ram_end(ram_bytes); below_hole > 0)
        ranges.push_back({ mem::Gpa { RAM_START }, below_hole });
    if (u64 high = high_ram_bytes(ram_bytes); high > 0)
        ranges.push_back({ mem::Gpa { HIGH_RAM_RELOCATED_START }, high });
    return ranges;
}

} // namespace vmm::firmware

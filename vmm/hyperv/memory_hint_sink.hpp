// SPDX-License-Identifier: MIT
// MemoryHintSink: where the guest's HvExtCallMemoryHeatHint cold-discard ranges go (the Dynamic
// Memory device validates and discards them: devices/hv_balloon/dm_cold_discard.hpp). Offered to
// the guest (HvExtCallQueryCapabilities bit 8) only while a sink is set; set before the vCPUs
// start and cleared after they stopped, so the guest's one capability query sees it.
#pragma once

#include <cstdint>
#include <span>

namespace vmm::hyperv {

class MemoryHintSink {
public:
    virtual ~MemoryHintSink() = default;
    // Raw union hv_gpa_page_range elements (include/asm-generic/hyperv-tlfs.h:440), a copy valid
    // during the call. A vCPU thread, no Partition lock held. Returns how many leading ranges
    // were accepted; fewer than ranges.size() means the next one was refused.
    virtual std::uint32_t cold_discard(std::span<std::uint64_t const> ranges) = 0;
};

} // namespace vmm::hyperv

// SPDX-License-Identifier: MIT
// The data structures Identify and Get Log Page return (NVMe 1.4 §5.15.2, §5.14.1), built from
// the controller's configuration and counters. Byte offsets in nvme_identify.cpp cite the figure.
#pragma once

#include <array>
#include <cstddef>

#include "base/types.hpp"
#include "devices/nvme/nvme_spec.hpp"

namespace vmm::nvme {

struct NvmeControllerConfig;
struct NvmeStats;

using IdentifyPage = std::array<std::byte, IDENTIFY_BYTES>;

struct ControllerLimits {
    u32 mdts_log2;
    u32 aer_limit;
    u32 error_log_entries;
    bool write_cache_present;
};

IdentifyPage identify_controller(NvmeControllerConfig const&, ControllerLimits);
IdentifyPage identify_namespace(NvmeControllerConfig const&, u64 lbas, bool read_only);
IdentifyPage active_namespace_list(u32 after_nsid);
IdentifyPage namespace_descriptors(NvmeControllerConfig const&);
// The namespace's NGUID: stable for a serial (a disk keeps its identity across boots).
std::array<std::byte, 16> namespace_nguid(NvmeControllerConfig const&);

std::array<std::byte, LOG_SMART_BYTES> smart_log(NvmeStats const&, u64 error_count);
std::array<std::byte, LOG_FIRMWARE_SLOT_BYTES> firmware_slot_log(NvmeControllerConfig const&);

} // namespace vmm::nvme

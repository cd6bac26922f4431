// SPDX-License-Identifier: MIT
// NvmeInterrupts: how the engine signals the guest. `raise(vector)` names an MSI-X table entry
// (the IV of Create I/O Completion Queue; 0 for the admin queue). The PCI wiring delivers it
// through the function's MSI-X table (masking and the PBA are the PCI side's business).
#pragma once

#include "base/types.hpp"

namespace vmm::nvme {

class NvmeInterrupts {
public:
    virtual ~NvmeInterrupts() = default;
    virtual void raise(u16 vector) = 0;
};

} // namespace vmm::nvme

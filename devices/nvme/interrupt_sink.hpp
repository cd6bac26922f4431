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
    // The guest configured (true) or a reset dropped (false) shadow doorbells (Doorbell Buffer
    // Config). Only while they are on may the wiring turn I/O queue doorbell writes into
    // value-less ioeventfd kicks (NvmeController::doorbell_kick): the engine then reads the
    // values from the shadow buffer. Without them the written value is the only copy.
    virtual void shadow_doorbells(bool) { }
};

} // namespace vmm::nvme

// SPDX-License-Identifier: MIT
// DiscardBackend: how pages the guest gave up stop costing host memory. vmm/ implements it with
// fallocate(FALLOC_FL_PUNCH_HOLE) on the guest-RAM memfd (plus madvise on private mappings);
// tests use a recording fake. Returning pages needs no call: a punched memfd page reads back as
// zero and is allocated again on the next touch.
#pragma once

#include "base/error.hpp"
#include "mem/page_range.hpp"

namespace vmm::mem {

class DiscardBackend {
public:
    virtual ~DiscardBackend() = default;
    // Drops the host backing of every page in `range` (all of it is RAM the host backs).
    virtual Result<void> discard(PageRange range) = 0;
};

} // namespace vmm::mem

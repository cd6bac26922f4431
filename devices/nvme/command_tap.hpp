// SPDX-License-Identifier: MIT
// CommandTap: an observer of the commands a guest submits to an NvmeController, for the opt-in
// guest traffic recorder (vmm/backends/traffic_recorder.hpp, README "Fuzzing": seeds from a real
// guest). Off (nullptr) by default: the controller then pays one pointer test per command. Called
// under the controller's owner lock (NvmeDisk), so it must not call back into the controller.
#pragma once

#include <span>

#include "base/types.hpp"
#include "devices/nvme/nvme_spec.hpp"

namespace vmm::nvme {

class CommandTap {
public:
    virtual ~CommandTap() = default;
    // A submission queue entry as fetched from queue `sqid` (0: admin), before it is parsed.
    virtual void on_command(u16 sqid, SubmissionEntry const&) = 0;
    // The PRP list entries (data pointers and chain pointers, in the order read) a read or write
    // command `cid` of queue `sqid` walked; only for commands whose data needed a list.
    virtual void on_prp_list(u16 sqid, u16 cid, std::span<u64 const> entries) = 0;
};

} // namespace vmm::nvme

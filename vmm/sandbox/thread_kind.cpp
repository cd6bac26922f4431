// SPDX-License-Identifier: MIT
#include "vmm/sandbox/thread_kind.hpp"

namespace vmm::sandbox {

std::string_view thread_kind_name(ThreadKind kind)
{
    switch (kind) {
    case ThreadKind::EventLoop: return "loop";
    case ThreadKind::Vcpu: return "vcpu";
    case ThreadKind::Api: return "api";
    case ThreadKind::HvTimers: return "hv-timers";
    case ThreadKind::Net: return "net";
    case ThreadKind::NvmeIo: return "nvme-io";
    }
    return "?";
}

std::optional<ThreadKind> thread_kind_from_name(std::string_view name)
{
    for (ThreadKind kind : ALL_THREAD_KINDS)
        if (thread_kind_name(kind) == name)
            return kind;
    return std::nullopt;
}

} // namespace vmm::sandbox

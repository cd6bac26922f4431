// SPDX-License-Identifier: MIT
// The thread types that get a seccomp filter of their own (SECURITY.md "Seccomp filters",
// ARCHITECTURE.md "Threads and locks"). A new thread type is added here, gets its rules in
// seccomp_rules.cpp and calls sandbox::enter_thread() first thing on its new thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace vmm::sandbox {

enum class ThreadKind : std::uint8_t {
    EventLoop, // The main thread: start-up, then the epoll loop; builds every Machine (reboots too).
    Vcpu,      // One per vCPU: KVM_RUN and the devices behind PIO/MMIO/MSR/hypercall exits.
    Api,       // The REST socket's I/O thread (Boost.Asio).
    HvTimers,  // Hyper-V synthetic timers (one per Machine).
    Net,       // The [[net]] TAP pump (vmm/backends/net_backend.*), one per VMM.
    NvmeIo,    // One per [[disk]] and boot: io_uring and doorbell kicks (vmm/backends/image_file_backend.*).
};

inline constexpr ThreadKind ALL_THREAD_KINDS[] = { ThreadKind::EventLoop, ThreadKind::Vcpu, ThreadKind::Api,
    ThreadKind::HvTimers, ThreadKind::Net, ThreadKind::NvmeIo };

// The name used in the SIGSYS log line and by the test hook ("loop", "vcpu", "api", "hv-timers", "net", "nvme-io").
std::string_view thread_kind_name(ThreadKind);
std::optional<ThreadKind> thread_kind_from_name(std::string_view);

} // namespace vmm::sandbox

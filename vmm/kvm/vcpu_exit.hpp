// SPDX-License-Identifier: MIT
// VcpuExit: a KVM_RUN exit decoded once from kvm_run into a variant, so no code outside
// vmm/kvm reads the kvm_run union. Spans point into kvm_run and are valid until the next run().
#pragma once

#include <cstddef>
#include <span>
#include <variant>

#include "base/types.hpp"
#include "mem/gpa.hpp"

namespace vmm::kvm {

// Port I/O. A `rep ins/outs` exit carries `count` accesses of `size` bytes back to back in
// `data`; the vCPU loop splits them (style guide B10).
struct PioIn {
    u16 port;
    u8 size;
    u32 count;
    std::span<std::byte> data;
};
struct PioOut {
    u16 port;
    u8 size;
    u32 count;
    std::span<std::byte const> data;
};
struct MmioRead {
    mem::Gpa gpa;
    std::span<std::byte> data;
};
struct MmioWrite {
    mem::Gpa gpa;
    std::span<std::byte const> data;
};

// Where the answer to a user-space MSR exit goes (kvm_run->msr.data / msr.error).
class MsrReply {
public:
    MsrReply(u64* value, u8* error)
        : m_value(value)
        , m_error(error)
    {
    }
    void set_value(u64 value) const { *m_value = value; }
    // Makes KVM inject #GP into the guest when it resumes.
    void inject_gp() const { *m_error = 1; }

private:
    u64* m_value;
    u8* m_error;
};
struct MsrRead {
    u32 msr;
    MsrReply reply;
};
struct MsrWrite {
    u32 msr;
    u64 value;
    MsrReply reply;
};

struct Halt {};
struct Shutdown {}; // Triple fault (KVM_EXIT_SHUTDOWN): a reset on PC hardware.
enum class SystemEventType : u8 { Shutdown, Reset, Other };
struct SystemEvent {
    SystemEventType type;
    u32 raw_type;
};
struct Interrupted {}; // KVM_RUN returned EINTR (a kick) or immediate_exit was set.
struct InternalError {
    u32 suberror;
};
struct FailEntry {
    u64 reason;
};
struct Unknown {
    u32 exit_reason;
};

using VcpuExit = std::variant<PioIn, PioOut, MmioRead, MmioWrite, MsrRead, MsrWrite, Halt, Shutdown,
    SystemEvent, Interrupted, InternalError, FailEntry, Unknown>;

} // namespace vmm::kvm

// SPDX-License-Identifier: MIT
// HypercallDispatcher: decodes one hypercall (control word + rdx/r8), validates its input, copies
// guest input pages once, and runs HvPostMessage, HvSignalEvent and the cluster-IPI calls.
// Stateless apart from counters, so any vCPU thread may call it concurrently.
#pragma once

#include <atomic>
#include <span>

#include "base/types.hpp"
#include "mem/guest_memory.hpp"
#include "vmm/hyperv/hypercall_control.hpp"

namespace vmm::hyperv {

struct HypercallRegs;
class HypercallSink;
class InterruptSink;
class MemoryHintSink;

class HypercallDispatcher {
public:
    // `extended_hypercalls`: answer HvExtCallQueryCapabilities (advertised by
    // HV_ENABLE_EXTENDED_HYPERCALLS); otherwise it is an unknown code like any other.
    HypercallDispatcher(mem::GuestMemory const&, InterruptSink&, u32 vcpu_count, bool extended_hypercalls = false);

    // Returns the result value for rax. `sink` may be null (no VMBus): VMBus calls then fail
    // with HV_STATUS_INVALID_CONNECTION_ID. `hints` may be null: HvExtCallMemoryHeatHint is then
    // neither offered nor answered (memory_hint_sink.hpp).
    u64 dispatch(u32 vp, HypercallRegs const&, HypercallSink* sink, MemoryHintSink* hints = nullptr);

    u64 ipis_sent() const { return m_ipis_sent.load(std::memory_order_relaxed); }

private:
    u16 post_message(u32 vp, HypercallControl, HypercallRegs const&, HypercallSink*);
    u16 signal_event(u32 vp, HypercallControl, HypercallRegs const&, HypercallSink*);
    u16 send_ipi(HypercallControl, HypercallRegs const&);
    u16 send_ipi_ex(HypercallControl, HypercallRegs const&);
    u16 query_extended_capabilities(HypercallControl, HypercallRegs const&, bool cold_discard);
    u64 memory_heat_hint(HypercallControl, HypercallRegs const&, MemoryHintSink*); // hypercall_heat_hint.cpp
    // Copies a slow-call input block: 8-byte aligned, inside one page, RAM (TLFS 3.7).
    // Returns HV_STATUS_SUCCESS or the status to answer.
    u16 read_input(u64 gpa, std::span<std::byte> out) const;
    // Injects `vector` into every existing VP named by the sparse set; VPs beyond vcpu_count are
    // ignored, as KVM does (arch/x86/kvm/hyperv.c sparse_set_to_vcpu_mask).
    void inject_sparse(u32 vector, u64 valid_bank_mask, std::span<u64 const> banks);

    mem::GuestMemory const& m_memory;
    InterruptSink& m_interrupts;
    u32 const m_vcpu_count;
    bool const m_extended_hypercalls;
    std::atomic<u64> m_ipis_sent { 0 };
};

} // namespace vmm::hyperv

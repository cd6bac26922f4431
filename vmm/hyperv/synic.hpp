// SPDX-License-Identifier: MIT
// Synic: the synthetic interrupt controller of every VP (SCONTROL, SVERSION, SIEFP, SIMP, EOM,
// SINT0-15) and host-to-guest delivery of messages and event flags into the guest's pages.
// Messages that cannot be delivered are refused, not queued: the VMBus host keeps its queue and
// retries when told that a slot was freed (guest-interface §4.4; TLFS 11).
#pragma once

#include <array>
#include <atomic>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "base/ranked_mutex.hpp"
#include "base/types.hpp"
#include "mem/guest_memory.hpp"
#include "vmm/hyperv/hvdef.hpp"

namespace vmm::hyperv {

class InterruptSink;

struct SintRef {
    u32 vp;
    u8 sint;
    bool operator==(SintRef const&) const = default;
};

class Synic {
public:
    Synic(mem::GuestMemory const&, InterruptSink&, u32 vcpu_count);

    static constexpr bool owns_msr(u32 msr) { return msr >= HV_X64_MSR_SCONTROL && msr <= HV_X64_MSR_SINT15; }
    std::optional<u64> read_msr(u32 vp, u32 msr) const; // nullopt -> #GP
    // false -> #GP. Appends to `retry` every (vp, sint) whose refused message may now succeed.
    bool write_msr(u32 vp, u32 msr, u64 value, std::vector<SintRef>& retry);

    // true: delivered, or dropped for good (bad VP/SINT, page gone); false: refused for now,
    // `retry` of a later write_msr() names this (vp, sint) when it may succeed.
    bool post_message(u32 vp, u8 sint, u32 message_type, std::span<std::byte const> payload);
    void signal_event(u32 vp, u8 sint, u32 flag);
    // Re-raises every SINT whose slot still holds a message (guest-interface §4.4 step 6).
    void kick_occupied_slots();
    void reset();

    u64 messages_delivered() const { return m_messages_delivered.load(std::memory_order_relaxed); }
    u64 messages_refused() const { return m_messages_refused.load(std::memory_order_relaxed); }
    u64 events_signalled() const { return m_events_signalled.load(std::memory_order_relaxed); }

private:
    struct VpState {
        u64 scontrol { 0 };
        u64 siefp { 0 };
        u64 simp { 0 };
        std::array<u64, HV_SYNIC_SINT_COUNT> sint {};
        // A post_message() was refused; name this SINT in the next `retry` list.
        std::array<bool, HV_SYNIC_SINT_COUNT> message_waiting {};
        // An event flag was set while the SINT could not interrupt; interrupt once it can.
        std::array<bool, HV_SYNIC_SINT_COUNT> event_undelivered {};
    };
    struct Injection {
        u32 vp;
        u8 vector;
    };

    bool write_page_msr(u32 vp, u64& reg, u64 value, std::vector<SintRef>& retry, std::vector<Injection>& inject);
    bool write_sint(u32 vp, u8 sint, u64 value, std::vector<SintRef>& retry, std::vector<Injection>& inject);
    // After a register change on `vp`: collect waiting messages and undelivered events that can
    // now go through.
    void collect_ready(u32 vp, std::vector<SintRef>& retry, std::vector<Injection>& inject);
    void collect_all_waiting(std::vector<SintRef>& retry);
    bool messages_enabled(VpState const&, u8 sint) const;
    bool can_interrupt(VpState const&, u8 sint) const;
    void inject_all(std::span<Injection const>);
    static void reset_vp(VpState&);

    mem::GuestMemory const& m_memory;
    InterruptSink& m_interrupts;
    mutable RankedMutex<LockRank::Synic> m_mutex; // vCPU threads (MSRs) against the event loop (delivery).
    std::vector<VpState> m_vps;
    std::atomic<u64> m_messages_delivered { 0 };
    std::atomic<u64> m_messages_refused { 0 };
    std::atomic<u64> m_events_signalled { 0 };
};

} // namespace vmm::hyperv

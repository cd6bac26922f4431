// SPDX-License-Identifier: MIT
// Per-VP SynIC registers and delivery (guest-interface §2.2, §4; TLFS 11). Guest-side order of the
// bring-up on each CPU (drivers/hv/hv.c:170-241): RMW SIMP, SIEFP, SINT2, then SCONTROL.
#include "vmm/hyperv/synic.hpp"

#include "base/log.hpp"
#include "vmm/hyperv/partition.hpp"
#include "vmm/hyperv/synic_page.hpp"

namespace vmm::hyperv {
namespace {

constexpr bool page_enabled(u64 reg) { return (reg & HV_SYNIC_SIMP_ENABLE) != 0; } // Same bit for SIEFP.
constexpr mem::Gpa page_gpa(u64 reg) { return mem::Gpa { reg & HV_PAGE_ADDRESS_MASK }; }
constexpr bool sint_masked(u64 sint) { return (sint & HV_SYNIC_SINT_MASKED) != 0; }
constexpr u8 sint_vector(u64 sint) { return static_cast<u8>(sint & HV_SYNIC_SINT_VECTOR_MASK); }

} // namespace

Synic::Synic(mem::GuestMemory const& memory, InterruptSink& interrupts, u32 vcpu_count)
    : m_memory(memory)
    , m_interrupts(interrupts)
    , m_vps(vcpu_count)
{
    for (auto& vp : m_vps)
        reset_vp(vp);
}

void Synic::reset_vp(VpState& vp)
{
    vp = VpState {};
    vp.sint.fill(HV_SYNIC_SINT_RESET_VALUE); // Masked at power-on (guest-interface §2.2).
}

void Synic::reset()
{
    std::lock_guard lock { m_mutex };
    for (auto& vp : m_vps)
        reset_vp(vp);
}

std::optional<u64> Synic::read_msr(u32 vp, u32 msr) const
{
    VMM_ASSERT(vp < m_vps.size());
    std::lock_guard lock { m_mutex };
    VpState const& state = m_vps[vp];
    switch (msr) {
    case HV_X64_MSR_SCONTROL:
        return state.scontrol;
    case HV_X64_MSR_SVERSION:
        return HV_SYNIC_VERSION_1;
    case HV_X64_MSR_SIEFP:
        return state.siefp;
    case HV_X64_MSR_SIMP:
        return state.simp;
    case HV_X64_MSR_EOM:
        return 0; // Write-only; reads as 0 like KVM's synic_get_msr (arch/x86/kvm/hyperv.c).
    default:
        if (msr >= HV_X64_MSR_SINT0 && msr <= HV_X64_MSR_SINT15)
            return state.sint[msr - HV_X64_MSR_SINT0];
        return std::nullopt;
    }
}

bool Synic::write_msr(u32 vp, u32 msr, u64 value, std::vector<SintRef>& retry)
{
    VMM_ASSERT(vp < m_vps.size());
    std::vector<Injection> inject;
    bool ok = true;
    {
        std::lock_guard lock { m_mutex };
        VpState& state = m_vps[vp];
        switch (msr) {
        case HV_X64_MSR_SCONTROL:
            if ((value & ~HV_SYNIC_CONTROL_ENABLE) != 0) {
                VMM_GUEST_WARN("hyperv", "vp {}: SCONTROL reserved bits {:#x}", vp, value);
                ok = false;
                break;
            }
            state.scontrol = value;
            collect_ready(vp, retry, inject);
            break;
        case HV_X64_MSR_SVERSION:
            ok = false; // Read-only (TLFS 11.8.2).
            break;
        case HV_X64_MSR_SIEFP:
            ok = write_page_msr(vp, state.siefp, value, retry, inject);
            break;
        case HV_X64_MSR_SIMP:
            ok = write_page_msr(vp, state.simp, value, retry, inject);
            break;
        case HV_X64_MSR_EOM:
            // The guest freed a slot that had msg_pending (include/asm-generic/mshyperv.h:
            // 143-150). It may have EOM'd another CPU's slot (crash path, channel_mgmt.c:
            // 818-907), so every waiting SINT of every VP retries (guest-interface §4.4 step 4).
            collect_all_waiting(retry);
            break;
        default:
            if (msr >= HV_X64_MSR_SINT0 && msr <= HV_X64_MSR_SINT15)
                ok = write_sint(vp, static_cast<u8>(msr - HV_X64_MSR_SINT0), value, retry, inject);
            else
                ok = false;
            break;
        }
    }
    inject_all(inject);
    return ok;
}

bool Synic::write_page_msr(u32 vp, u64& reg, u64 value, std::vector<SintRef>& retry, std::vector<Injection>& inject)
{
    if ((value & HV_PAGE_RESERVED_MASK) != 0) {
        VMM_GUEST_WARN("hyperv", "vp {}: SynIC page MSR reserved bits {:#x}", vp, value);
        return false;
    }
    bool const enable = page_enabled(value);
    // The host writes into this page from now on, so it must be RAM (guest-interface §10.5).
    if (enable && !m_memory.is_ram(page_gpa(value), mem::PAGE_SIZE)) {
        VMM_GUEST_WARN("hyperv", "vp {}: SynIC page {:#x} is not RAM", vp, value);
        return false;
    }
    // A stale non-zero message_type would wedge delivery, so a newly enabled (or moved) page
    // starts zeroed (guest-interface §2.2); Linux hands us a zeroed page anyway (hv.c:122-123).
    bool const fresh = enable && (!page_enabled(reg) || page_gpa(reg) != page_gpa(value));
    if (fresh && !m_memory.fill(page_gpa(value), std::byte { 0 }, mem::PAGE_SIZE))
        return false; // Unplugged since the is_ram() check: treat as not RAM.
    reg = value;
    collect_ready(vp, retry, inject);
    return true;
}

bool Synic::write_sint(u32 vp, u8 sint, u64 value, std::vector<SintRef>& retry, std::vector<Injection>& inject)
{
    if ((value & HV_SYNIC_SINT_RESERVED_MASK) != 0) {
        VMM_GUEST_WARN("hyperv", "vp {}: SINT{} reserved bits {:#x}", vp, sint, value);
        return false;
    }
    if (!sint_masked(value) && sint_vector(value) < HV_SYNIC_FIRST_VALID_VECTOR) {
        VMM_GUEST_WARN("hyperv", "vp {}: SINT{} unmasked with exception vector {}", vp, sint, sint_vector(value));
        return false;
    }
    if (!sint_masked(value) && (value & HV_SYNIC_SINT_AUTO_EOI) != 0) {
        // Not emulated: we advertise hint bit 9 (AEOI deprecated); a guest that sets it anyway
        // never EOIs and stops receiving interrupts (guest-interface §1.3 hint[9]).
        VMM_GUEST_WARN("hyperv", "vp {}: SINT{} auto-EOI is not emulated", vp, sint);
    }
    m_vps[vp].sint[sint] = value;
    collect_ready(vp, retry, inject);
    return true;
}

bool Synic::messages_enabled(VpState const& state, u8 sint) const
{
    return (state.scontrol & HV_SYNIC_CONTROL_ENABLE) != 0 && page_enabled(state.simp) && !sint_masked(state.sint[sint]);
}

bool Synic::can_interrupt(VpState const& state, u8 sint) const
{
    u64 const reg = state.sint[sint];
    return (state.scontrol & HV_SYNIC_CONTROL_ENABLE) != 0 && !sint_masked(reg) && (reg & HV_SYNIC_SINT_POLLING) == 0;
}

void Synic::collect_ready(u32 vp, std::vector<SintRef>& retry, std::vector<Injection>& inject)
{
    VpState& state = m_vps[vp];
    for (u8 sint = 0; sint < HV_SYNIC_SINT_COUNT; ++sint) {
        if (state.message_waiting[sint] && messages_enabled(state, sint)) {
            state.message_waiting[sint] = false;
            retry.push_back(SintRef { vp, sint });
        }
        if (state.event_undelivered[sint] && can_interrupt(state, sint)) {
            state.event_undelivered[sint] = false;
            inject.push_back(Injection { vp, sint_vector(state.sint[sint]) });
        }
    }
}

void Synic::collect_all_waiting(std::vector<SintRef>& retry)
{
    for (u32 vp = 0; vp < m_vps.size(); ++vp) {
        for (u8 sint = 0; sint < HV_SYNIC_SINT_COUNT; ++sint) {
            if (m_vps[vp].message_waiting[sint]) {
                m_vps[vp].message_waiting[sint] = false;
                retry.push_back(SintRef { vp, sint });
            }
        }
    }
}

void Synic::inject_all(std::span<Injection const> injections)
{
    for (auto const& injection : injections)
        m_interrupts.inject(injection.vp, injection.vector);
}

bool Synic::post_message(u32 vp, u8 sint, u32 message_type, std::span<std::byte const> payload)
{
    if (vp >= m_vps.size() || sint >= HV_SYNIC_SINT_COUNT || message_type == HVMSG_NONE
        || payload.size() > HV_MESSAGE_PAYLOAD_BYTE_COUNT) {
        // The VP may come from the guest (VMBus target_vcpu): drop rather than wedge a queue.
        VMM_GUEST_WARN("hyperv", "post_message dropped: vp {} sint {} type {:#x} {} bytes", vp, sint,
            message_type, payload.size());
        return true;
    }
    std::optional<Injection> injection;
    {
        std::lock_guard lock { m_mutex };
        VpState& state = m_vps[vp];
        if (!messages_enabled(state, sint)) {
            state.message_waiting[sint] = true;
            m_messages_refused.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
        mem::Gpa const slot { page_gpa(state.simp).raw() + sint * HV_MESSAGE_SIZE };
        switch (write_message_slot(m_memory, slot, message_type, payload)) {
        case SlotWrite::Busy:
            state.message_waiting[sint] = true;
            m_messages_refused.fetch_add(1, std::memory_order_relaxed);
            return false;
        case SlotWrite::Fault:
            VMM_GUEST_WARN("hyperv", "vp {}: message page {:#x} is no longer RAM; message dropped", vp, state.simp);
            return true;
        case SlotWrite::Written:
            break;
        }
        m_messages_delivered.fetch_add(1, std::memory_order_relaxed);
        // Every delivered message needs its own interrupt (guest-interface §4.4 step 5); a polling
        // SINT gets none (TLFS 11.10.3).
        if (can_interrupt(state, sint))
            injection = Injection { vp, sint_vector(state.sint[sint]) };
    }
    if (injection)
        m_interrupts.inject(injection->vp, injection->vector);
    return true;
}

void Synic::kick_occupied_slots()
{
    // Linux leaves a message in its slot, without EOM, when it cannot allocate memory for it
    // (vmbus_drv.c:1084-1087) and only looks again on the next interrupt. A spurious 0xF3 is
    // harmless: the handler re-checks the slot (vmbus_drv.c:1286-1308).
    std::vector<Injection> inject;
    {
        std::lock_guard lock { m_mutex };
        for (u32 vp = 0; vp < m_vps.size(); ++vp) {
            VpState const& state = m_vps[vp];
            for (u8 sint = 0; sint < HV_SYNIC_SINT_COUNT; ++sint) {
                if (!messages_enabled(state, sint) || !can_interrupt(state, sint))
                    continue;
                mem::Gpa const slot { page_gpa(state.simp).raw() + sint * HV_MESSAGE_SIZE };
                if (message_slot_occupied(m_memory, slot))
                    inject.push_back(Injection { vp, sint_vector(state.sint[sint]) });
            }
        }
    }
    inject_all(inject);
}

void Synic::signal_event(u32 vp, u8 sint, u32 flag)
{
    if (vp >= m_vps.size() || sint >= HV_SYNIC_SINT_COUNT || flag >= HV_EVENT_FLAGS_COUNT) {
        VMM_GUEST_WARN("hyperv", "signal_event dropped: vp {} sint {} flag {}", vp, sint, flag);
        return;
    }
    std::optional<Injection> injection;
    {
        std::lock_guard lock { m_mutex };
        VpState& state = m_vps[vp];
        if (!page_enabled(state.siefp))
            return; // No event page: nothing to set (guest not ready or tearing down).
        mem::Gpa const area { page_gpa(state.siefp).raw() + sint * HV_EVENT_FLAGS_BYTE_COUNT };
        FlagSet const result = set_event_flag(m_memory, area, flag);
        if (result == FlagSet::Fault) {
            VMM_GUEST_WARN("hyperv", "vp {}: event page {:#x} is no longer RAM; event dropped", vp, state.siefp);
            return;
        }
        if (result == FlagSet::NewlySet)
            m_events_signalled.fetch_add(1, std::memory_order_relaxed);
        // An already-set flag has an interrupt on its way unless one was held back; like QEMU
        // (hw/hyperv/hyperv.c) only a newly set flag interrupts.
        bool const wants_interrupt = result == FlagSet::NewlySet || state.event_undelivered[sint];
        if (wants_interrupt && can_interrupt(state, sint)) {
            state.event_undelivered[sint] = false;
            injection = Injection { vp, sint_vector(state.sint[sint]) };
        } else if (wants_interrupt && (state.sint[sint] & HV_SYNIC_SINT_POLLING) == 0) {
            state.event_undelivered[sint] = true; // Masked or SynIC off: interrupt on enable.
        }
    }
    if (injection)
        m_interrupts.inject(injection->vp, injection->vector);
}

} // namespace vmm::hyperv

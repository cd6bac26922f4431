// SPDX-License-Identifier: MIT
// Partition: the user-space Hyper-V enlightenments of one VM (CPUID leaves, synthetic MSRs,
// hypercalls, SynIC) for a KVM without in-kernel Hyper-V. The vCPU loop forwards MSR exits and
// hypercall-port OUTs here; the VMBus host posts messages and events through vmbus::SynicPort.
//
// Spec:     TLFS 6.0; Linux 6.1 guest side cited per MSR (arch/x86/hyperv, drivers/hv,
//           drivers/clocksource/hyperv_timer.c)
// Done:     CPUID 0x40000000-A, GUEST_OS_ID/HYPERCALL/VP_INDEX/VP_ASSIST/frequency/TSC-invariant/
//           crash/reset/VP-runtime MSRs, reference time (TIME_REF_COUNT + TSC page), STIMER0-3,
//           SynIC (SCONTROL..SINT15), HvPostMessage, HvSignalEvent, cluster IPIs,
//           HvExtCallQueryCapabilities
// Missing:  APIC access MSRs (EOI/ICR/TPR: the LAPIC lives in KVM, guest-interface §2.2),
//           guest idle MSR (a KVM-halted vCPU does not wake with IF=0, guest-interface §2.2),
//           save/restore
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/ranked_mutex.hpp"
#include "devices/vmbus/synic_port.hpp"
#include "mem/guest_memory.hpp"
#include "vmm/hyperv/enlightenments.hpp"
#include "vmm/hyperv/memory_hint_sink.hpp"
#include "vmm/hyperv/reference_time.hpp"
#include "vmm/hyperv/traffic_tap.hpp"

namespace vmm::hyperv {

struct CpuidLeaf {
    std::uint32_t function, index, eax, ebx, ecx, edx;
};

// In: rcx = control, rdx/r8 = input/output GPA or fast params; out: rax = result.
struct HypercallRegs {
    std::uint64_t rax, rcx, rdx, r8;
    // Addition: the caller's CPL (CS.RPL from KVM_GET_SREGS). The port can be reached from guest
    // user space through ioperm(); a non-zero CPL is not a hypercall and leaves rax untouched
    // (guest-interface §3.1 hardening). Defaults to 0 for callers that do not fetch sregs.
    std::uint8_t cpl = 0;
};

// Implemented by the VMM core with KVM_SIGNAL_MSI to the vCPU's LAPIC (fixed, edge).
class InterruptSink {
public:
    virtual ~InterruptSink() = default;
    virtual void inject(std::uint32_t vp, std::uint8_t vector) = 0;
};

// Where guest VMBus traffic goes (vmm/vmbus_glue.hpp: straight into the VmbusHost under its lock).
// Every call comes from a vCPU thread with no Partition lock held. `payload` is the Partition's
// copy of the guest input and is valid only during the call: an asynchronous glue copies it
// (and answers HV_STATUS_INSUFFICIENT_BUFFERS when its queue is full, guest-interface §3.4).
class HypercallSink {
public:
    virtual ~HypercallSink() = default;
    virtual std::uint16_t post_message(std::uint32_t vp, std::uint32_t connection_id, std::uint32_t message_type,
        std::span<std::byte const> payload) = 0; // HV status
    virtual std::uint16_t signal_event(std::uint32_t vp, std::uint32_t connection_id, std::uint16_t flag_number) = 0; // HV status
    // A post_message() that returned false for (vp, sint) may succeed now: the guest wrote EOM
    // (on any VP), or enabled the SynIC, message page or SINT.
    virtual void message_slot_freed(std::uint32_t vp, std::uint8_t sint) = 0;
};

// What the partition tells the machine about: a guest reset request and a guest crash report.
struct CrashReport {
    std::uint64_t params[5];
    std::string message; // The kmsg tail the guest handed over with CRASH_NOTIFY_MSG ("" if none).
};
class PlatformSink {
public:
    virtual ~PlatformSink() = default;
    virtual void reset_requested(std::uint32_t vp) = 0; // Like the ACPI reset register.
    virtual void guest_crashed(CrashReport const&) = 0;
};

struct PartitionConfig {
    std::uint32_t vcpu_count;
    std::uint64_t tsc_hz;        // KVM_GET_TSC_KHZ * 1000; 0 = unknown (frequency MSRs not advertised)
    std::uint64_t apic_timer_hz; // LAPIC timer input clock (1 GHz in KVM, arch/x86/kvm/lapic.h)
    // Additions (defaults keep `{vcpu_count, tsc_hz, apic_timer_hz}` initialisation valid):
    // Advertise HvCallSendSyntheticClusterIpi[Ex] (hints 10 and 11): every guest IPI then exits
    // to user space. Off by default: on this host x2APIC ICR IPIs are delivered in-kernel
    // (tests/unit/hyperv/ipi_kvm_test.cpp) and Linux needs them anyway to wake each AP before
    // its VP index is known (hv_apic.c:230); xAPIC (MMIO ICR) IPIs are not delivered here
    // (test-host §7), so an xAPIC-only SMP guest cannot boot either way. The calls are
    // implemented and answered whether advertised or not.
    bool ipi_hypercalls = false;
    // Start the hypercall page with ENDBR64 for IBT guests (guest-interface §1.4). Off by default: the
    // test guest has no IBT, and on this host guest CPL0 code runs in KVM's instruction emulator.
    bool hypercall_page_endbr64 = false;
    Enlightenments enlightenments {};
    // The guest-visible TSC now, from any thread; empty = no reference time (not advertised).
    GuestTscReader read_guest_tsc {};
};

// Counters for metrics and tests; each counts guest-visible events since construction.
struct PartitionStats {
    std::uint64_t msr_faults;           // #GP answers
    std::uint64_t hypercalls;           // dispatched hypercalls
    std::uint64_t hypercall_failures;   // non-success status returned
    std::uint64_t messages_delivered;   // SynIC messages written into a slot
    std::uint64_t messages_refused;     // post_message() returned false (busy or not enabled)
    std::uint64_t events_signalled;     // event flags newly set
    std::uint64_t ipis_sent;            // IPI injections from the IPI hypercalls
    std::uint64_t stimer_programmed;    // synthetic timer MSR writes that armed a timer
    std::uint64_t stimer_expirations;   // synthetic timer expirations delivered

    PartitionStats& operator+=(PartitionStats const& other)
    {
        msr_faults += other.msr_faults;
        hypercalls += other.hypercalls;
        hypercall_failures += other.hypercall_failures;
        messages_delivered += other.messages_delivered;
        messages_refused += other.messages_refused;
        events_signalled += other.events_signalled;
        ipis_sent += other.ipis_sent;
        stimer_programmed += other.stimer_programmed;
        stimer_expirations += other.stimer_expirations;
        return *this;
    }
};

class Synic;
class HypercallDispatcher;
class SyntheticTimers;
struct SintRef;

// Thread-safe: vCPU threads call read_msr/write_msr/hypercall, the event loop posts messages.
// Sinks are called without any internal lock held, so they may call back into the Partition.
class Partition : public vmbus::SynicPort {
public:
    Partition(mem::GuestMemory const&, InterruptSink&, PartitionConfig);
    ~Partition() override;
    Partition(Partition const&) = delete;
    Partition& operator=(Partition const&) = delete;

    void set_hypercall_sink(HypercallSink*);
    // Free page reporting (memory_hint_sink.hpp); null withdraws it. Before the vCPUs start.
    void set_memory_hint_sink(MemoryHintSink*);
    void set_platform_sink(PlatformSink*); // Before the vCPUs start.
    void set_traffic_tap(TrafficTap*);     // The traffic recorder (traffic_tap.hpp); before the vCPUs start.
    // 0x40000000..0x4000000A; the VMM drops every KVM leaf (0x40000000+) and installs these.
    std::vector<CpuidLeaf> cpuid_leaves() const;
    // Every MSR that must exit to user space (for KVM_X86_SET_MSR_FILTER): the whole synthetic
    // range 0x40000000-0x400001FF, so no Hyper-V MSR reaches a KVM that might know some of them.
    static std::span<std::uint32_t const> msrs();
    std::optional<std::uint64_t> read_msr(std::uint32_t vp, std::uint32_t msr); // nullopt -> inject #GP
    bool write_msr(std::uint32_t vp, std::uint32_t msr, std::uint64_t value);   // false -> inject #GP
    // Port-I/O exit on firmware::HYPERCALL_PORT: the VMM core reads regs (KVM_GET_REGS), calls
    // this and writes rax back. Leaves regs untouched when the OUT is not a hypercall (hypercall
    // page disabled, or CPL != 0).
    void hypercall(std::uint32_t vp, HypercallRegs& regs);
    void reset(); // Guest reboot: every register back to its power-on value.

    // vmbus::SynicPort
    bool post_message(std::uint32_t vp, std::uint8_t sint, std::uint32_t message_type,
        std::span<std::byte const> payload) override;
    void signal_event(std::uint32_t vp, std::uint8_t sint, std::uint32_t flag) override;

    // Additions.
    // Re-raises the SINT of every message slot the guest has not consumed yet. Optional: call it
    // from a slow timer (e.g. 1 s) while the VMBus host has messages queued, so a guest that
    // could not allocate memory for a message gets another chance (guest-interface §4.4 step 6).
    // Returns true when some slot still held a message (worth kicking again later).
    bool kick_pending_messages();
    std::uint32_t vcpu_count() const { return m_config.vcpu_count; }
    bool hypercall_page_enabled() const;
    bool guest_crashed() const; // The guest wrote CRASH_CTL.CRASH_NOTIFY since the last reset.
    PartitionStats stats() const;
    // Reference time (null when not offered) and the synthetic timers (null when not offered):
    // the host timer thread (vmm/hyperv/timer_thread.*) drives the latter.
    ReferenceClock const* reference_clock() const { return m_clock.get(); }
    SyntheticTimers* synthetic_timers() { return m_timers.get(); }

private:
    std::optional<std::uint64_t> read_partition_msr(std::uint32_t vp, std::uint32_t msr);
    bool write_partition_msr(std::uint32_t vp, std::uint32_t msr, std::uint64_t value);
    bool write_hypercall_msr(std::uint64_t value);
    bool write_vp_assist_page(std::uint32_t vp, std::uint64_t value);
    bool write_crash_ctl(std::uint64_t value, std::optional<CrashReport>& report);
    bool write_reference_tsc(std::uint64_t value);
    bool reference_time_available() const { return m_clock != nullptr; }
    bool frequency_msrs_available() const
    {
        return m_config.enlightenments.frequencies && m_config.tsc_hz != 0 && m_config.apic_timer_hz != 0;
    }
    void notify_slots_freed(std::vector<SintRef> const&);
    void record_hypercall(TrafficTap&, std::uint32_t vp, HypercallRegs const&) const;

    mem::GuestMemory const& m_memory;
    PartitionConfig const m_config;
    std::atomic<HypercallSink*> m_sink { nullptr };
    std::atomic<MemoryHintSink*> m_hint_sink { nullptr };
    std::atomic<PlatformSink*> m_platform { nullptr };
    std::atomic<TrafficTap*> m_tap { nullptr };
    InterruptSink& m_interrupts;
    std::unique_ptr<Synic> m_synic;
    std::unique_ptr<HypercallDispatcher> m_dispatcher;
    std::unique_ptr<ReferenceClock> m_clock;     // Null without reference time.
    std::unique_ptr<SyntheticTimers> m_timers;   // Null without synthetic timers.

    mutable RankedMutex<LockRank::Partition> m_mutex; // Guards the partition-wide and per-VP registers below.
    std::uint64_t m_guest_os_id { 0 };
    std::uint64_t m_hypercall { 0 };
    std::uint64_t m_reference_tsc { 0 };
    std::uint32_t m_tsc_sequence { 0 }; // Last sequence published in the TSC page.
    std::uint64_t m_tsc_invariant_control { 0 };
    std::uint64_t m_crash_params[5] {};
    bool m_crash_reported { false };
    std::uint32_t m_crash_reports { 0 }; // Events raised this boot (bounded).
    std::vector<std::uint64_t> m_vp_assist_page; // Per VP; power-on value 0 (disabled), also after reset().

    std::atomic<std::uint64_t> m_msr_faults { 0 };
    std::atomic<std::uint64_t> m_hypercalls { 0 };
    std::atomic<std::uint64_t> m_hypercall_failures { 0 };
};

} // namespace vmm::hyperv

// SPDX-License-Identifier: MIT
// Partition: CPUID leaves, partition-wide and per-VP synthetic MSRs, and the routing of SynIC
// MSRs, hypercalls and SynicPort calls to Synic and HypercallDispatcher (guest-interface §1-§4).
#include "vmm/hyperv/partition.hpp"

#include <algorithm>
#include <array>

#include "base/log.hpp"
#include "vmm/hyperv/hvdef.hpp"
#include "vmm/hyperv/hypercall_dispatcher.hpp"
#include "vmm/hyperv/hypercall_page.hpp"
#include "vmm/hyperv/synic.hpp"

namespace vmm::hyperv {
namespace {

constexpr auto SYNTHETIC_MSRS = [] {
    std::array<std::uint32_t, HV_X64_MSR_RANGE_LAST - HV_X64_MSR_RANGE_FIRST + 1> msrs {};
    for (std::uint32_t i = 0; i < msrs.size(); ++i)
        msrs[i] = HV_X64_MSR_RANGE_FIRST + i;
    return msrs;
}();

// MSRs outside the synthetic range are not ours: the caller routed them here by mistake (or
// through KVM_MSR_EXIT_REASON_UNKNOWN) and logs them itself.
constexpr bool is_synthetic(u32 msr) { return msr >= HV_X64_MSR_RANGE_FIRST && msr <= HV_X64_MSR_RANGE_LAST; }

constexpr bool is_crash_param(u32 msr) { return msr >= HV_X64_MSR_CRASH_P0 && msr <= HV_X64_MSR_CRASH_P4; }

} // namespace

Partition::Partition(mem::GuestMemory const& memory, InterruptSink& interrupts, PartitionConfig config)
    : m_memory(memory)
    , m_config(config)
    , m_synic(std::make_unique<Synic>(memory, interrupts, config.vcpu_count))
    , m_dispatcher(std::make_unique<HypercallDispatcher>(memory, interrupts, config.vcpu_count))
    , m_vp_assist_page(config.vcpu_count, 0)
{
    VMM_ASSERT(config.vcpu_count > 0);
}

Partition::~Partition() = default;

void Partition::set_hypercall_sink(HypercallSink* sink) { m_sink.store(sink, std::memory_order_release); }

std::span<std::uint32_t const> Partition::msrs() { return SYNTHETIC_MSRS; }

std::vector<CpuidLeaf> Partition::cpuid_leaves() const
{
    // Values and reasons: guest-interface §1.2-§1.3. Never set TIME_REF_COUNT (MSR sched_clock),
    // ACCESS_PARTITION_ID, CPU_MANAGEMENT or ISOLATION (guest BUG()s / root paths).
    u32 features = HV_MSR_SYNIC_AVAILABLE | HV_MSR_HYPERCALL_AVAILABLE | HV_MSR_VP_INDEX_AVAILABLE
        | HV_ACCESS_TSC_INVARIANT; // Without it Linux marks the TSC unstable (mshyperv.c:510-511).
    u32 misc = HV_FEATURE_GUEST_CRASH_MSR_AVAILABLE;
    if (frequency_msrs_available()) {
        // TSC and LAPIC timer rates from MSRs instead of calibration (mshyperv.c:379-384, 416-428).
        features |= HV_ACCESS_FREQUENCY_MSRS;
        misc |= HV_FEATURE_FREQUENCY_MSRS_AVAILABLE;
    }
    // Hint 9 is mandatory: without it the guest uses auto-EOI, which the in-kernel LAPIC does not
    // know about, and stops receiving interrupts (guest-interface §1.3).
    u32 hints = HV_DEPRECATING_AEOI_RECOMMENDED;
    if (m_config.ipi_hypercalls)
        hints |= HV_X64_CLUSTER_IPI_RECOMMENDED | HV_X64_EX_PROCESSOR_MASKS_RECOMMENDED;

    std::vector<CpuidLeaf> leaves;
    auto add = [&](u32 function, u32 eax, u32 ebx, u32 ecx, u32 edx) {
        leaves.push_back(CpuidLeaf { function, 0, eax, ebx, ecx, edx });
    };
    add(HYPERV_CPUID_VENDOR_AND_MAX_FUNCTIONS, HYPERV_CPUID_MAX_LEAF, HYPERV_SIGNATURE_EBX, HYPERV_SIGNATURE_ECX,
        HYPERV_SIGNATURE_EDX);
    add(HYPERV_CPUID_INTERFACE, HYPERV_INTERFACE_HV1, 0, 0, 0);
    // Build 0, version 0.1 (microvmm's own): only printed by Linux (mshyperv.c:367-377).
    add(HYPERV_CPUID_VERSION, 0, 0x0000'0001, 0, 0);
    add(HYPERV_CPUID_FEATURES, features, HV_POST_MESSAGES | HV_SIGNAL_EVENTS, 0, misc);
    add(HYPERV_CPUID_ENLIGHTMENT_INFO, hints, HV_SPIN_WAIT_NEVER, 0, 0);
    add(HYPERV_CPUID_IMPLEMENT_LIMITS, m_config.vcpu_count, m_config.vcpu_count, 0, 0);
    for (u32 function = HYPERV_CPUID_IMPLEMENT_LIMITS + 1; function <= HYPERV_CPUID_MAX_LEAF; ++function)
        add(function, 0, 0, 0, 0);
    return leaves;
}

bool Partition::hypercall_page_enabled() const
{
    std::lock_guard lock { m_mutex };
    return (m_hypercall & HV_X64_MSR_HYPERCALL_ENABLE) != 0;
}

std::optional<std::uint64_t> Partition::read_msr(std::uint32_t vp, std::uint32_t msr)
{
    VMM_ASSERT(vp < m_config.vcpu_count);
    if (!is_synthetic(msr))
        return std::nullopt;
    auto value = Synic::owns_msr(msr) ? m_synic->read_msr(vp, msr) : read_partition_msr(vp, msr);
    if (!value) {
        m_msr_faults.fetch_add(1, std::memory_order_relaxed);
        VMM_GUEST_WARN("hyperv", "vp {}: RDMSR {:#x} -> #GP", vp, msr);
    }
    return value;
}

std::optional<std::uint64_t> Partition::read_partition_msr(std::uint32_t vp, std::uint32_t msr)
{
    std::lock_guard lock { m_mutex };
    switch (msr) {
    case HV_X64_MSR_GUEST_OS_ID:
        return m_guest_os_id;
    case HV_X64_MSR_HYPERCALL:
        return m_hypercall;
    case HV_X64_MSR_VP_INDEX:
        return vp; // VP index = vCPU index = initial APIC ID (guest-interface §2.2).
    case HV_X64_MSR_VP_ASSIST_PAGE:
        return m_vp_assist_page[vp];
    case HV_X64_MSR_REFERENCE_TSC:
        return m_reference_tsc;
    case HV_X64_MSR_TSC_FREQUENCY:
        return frequency_msrs_available() ? std::optional { m_config.tsc_hz } : std::nullopt;
    case HV_X64_MSR_APIC_FREQUENCY:
        return frequency_msrs_available() ? std::optional { m_config.apic_timer_hz } : std::nullopt;
    case HV_X64_MSR_TSC_INVARIANT_CONTROL:
        return m_tsc_invariant_control;
    case HV_X64_MSR_CRASH_CTL:
        // Capabilities: crash notification only. Without NOTIFY_MSG the guest reports registers
        // instead of a kmsg page (drivers/hv/hv_common.c:310-312).
        return HV_CRASH_CTL_CRASH_NOTIFY;
    default:
        if (is_crash_param(msr))
            return m_crash_params[msr - HV_X64_MSR_CRASH_P0];
        return std::nullopt;
    }
}

bool Partition::write_msr(std::uint32_t vp, std::uint32_t msr, std::uint64_t value)
{
    VMM_ASSERT(vp < m_config.vcpu_count);
    if (!is_synthetic(msr))
        return false;
    bool ok;
    if (Synic::owns_msr(msr)) {
        std::vector<SintRef> retry;
        ok = m_synic->write_msr(vp, msr, value, retry);
        notify_slots_freed(retry);
    } else {
        ok = write_partition_msr(vp, msr, value);
    }
    if (!ok) {
        m_msr_faults.fetch_add(1, std::memory_order_relaxed);
        VMM_GUEST_WARN("hyperv", "vp {}: WRMSR {:#x} = {:#x} -> #GP", vp, msr, value);
    }
    return ok;
}

void Partition::notify_slots_freed(std::vector<SintRef> const& freed)
{
    HypercallSink* sink = m_sink.load(std::memory_order_acquire);
    if (sink == nullptr)
        return;
    for (auto const& ref : freed)
        sink->message_slot_freed(ref.vp, ref.sint);
}

bool Partition::write_partition_msr(std::uint32_t vp, std::uint32_t msr, std::uint64_t value)
{
    std::lock_guard lock { m_mutex };
    switch (msr) {
    case HV_X64_MSR_GUEST_OS_ID:
        m_guest_os_id = value;
        // Clearing the guest OS id disables the hypercall page (TLFS 3.13; KVM does the same,
        // arch/x86/kvm/hyperv.c:1314-1319).
        if (value == 0)
            m_hypercall &= ~HV_X64_MSR_HYPERCALL_ENABLE;
        return true;
    case HV_X64_MSR_HYPERCALL:
        return write_hypercall_msr(value);
    case HV_X64_MSR_VP_ASSIST_PAGE:
        // Stored only: nothing uses the page without hint 3 or nested features (guest-interface §2.2),
        // so the host never writes there. Still refuse reserved bits and non-RAM pages.
        if ((value & HV_PAGE_RESERVED_MASK) != 0
            || ((value & HV_X64_MSR_VP_ASSIST_PAGE_ENABLE) != 0
                && !m_memory.is_ram(mem::Gpa { value & HV_PAGE_ADDRESS_MASK }, mem::PAGE_SIZE)))
            return false;
        m_vp_assist_page[vp] = value;
        return true;
    case HV_X64_MSR_REFERENCE_TSC:
        // Not advertised, but hyperv_cleanup() writes 0 on crash/kexec (hv_init.c:592-595):
        // accept the disable, refuse enabling a TSC page we do not provide.
        if ((value & HV_X64_MSR_TSC_REFERENCE_ENABLE) != 0)
            return false;
        m_reference_tsc = value;
        return true;
    case HV_X64_MSR_TSC_INVARIANT_CONTROL:
        if ((value & ~HV_EXPOSE_INVARIANT_TSC) != 0)
            return false;
        m_tsc_invariant_control = value;
        return true;
    case HV_X64_MSR_CRASH_CTL:
        return write_crash_ctl(value);
    default:
        if (is_crash_param(msr)) {
            m_crash_params[msr - HV_X64_MSR_CRASH_P0] = value;
            return true;
        }
        // VP_INDEX, SVERSION-like read-only registers, frequency MSRs and everything we do not
        // implement in the synthetic range.
        return false;
    }
}

bool Partition::write_hypercall_msr(std::uint64_t value)
{
    // Without a guest OS id the hypercall page stays disabled and the write is ignored (TLFS
    // 3.13; KVM arch/x86/kvm/hyperv.c:1325-1327).
    if (m_guest_os_id == 0)
        return true;
    if ((value & HV_X64_MSR_HYPERCALL_ENABLE) == 0) {
        m_hypercall = value; // The page stops being special; its RAM contents stay as they are.
        return true;
    }
    mem::Gpa const page { value & HV_X64_MSR_HYPERCALL_PAGE_ADDRESS_MASK };
    if (!m_memory.is_ram(page, mem::PAGE_SIZE)) {
        VMM_GUEST_WARN("hyperv", "hypercall page {} is not RAM", page);
        return false;
    }
    // Written during the WRMSR exit, i.e. before the guest can call it (hv_init.c:458-486).
    auto const code = hypercall_page(m_config.hypercall_page_endbr64 ? Endbr64::Emit : Endbr64::Omit);
    if (!m_memory.write(page, code))
        return false;
    m_hypercall = value; // Bits 1-11 are reserved-preserve: read back as written.
    return true;
}

bool Partition::write_crash_ctl(std::uint64_t value)
{
    if ((value & ~(HV_CRASH_CTL_CRASH_NOTIFY | HV_CRASH_CTL_CRASH_NOTIFY_MSG)) != 0)
        return false;
    if ((value & HV_CRASH_CTL_CRASH_NOTIFY) == 0)
        return true;
    // On panic/oops the guest writes P0-P4 (error code, RIP, ...; hv_init.c:617-621, or with
    // NOTIFY_MSG P3/P4 = kmsg page GPA/size, hv_common.c:203-240), then sets bit 63. Reported
    // once per boot; later crashes of the same boot only log rate-limited.
    if (!m_crash_reported) {
        m_crash_reported = true;
        log::error("hyperv", "guest crash reported: P0 {:#x} P1 {:#x} P2 {:#x} P3 {:#x} P4 {:#x}{}",
            m_crash_params[0], m_crash_params[1], m_crash_params[2], m_crash_params[3], m_crash_params[4],
            (value & HV_CRASH_CTL_CRASH_NOTIFY_MSG) != 0 ? " (P3/P4: kmsg page GPA/size)" : "");
    } else {
        VMM_GUEST_WARN("hyperv", "guest crash reported again: P0 {:#x}", m_crash_params[0]);
    }
    return true;
}

bool Partition::guest_crashed() const
{
    std::lock_guard lock { m_mutex };
    return m_crash_reported;
}

void Partition::hypercall(std::uint32_t vp, HypercallRegs& regs)
{
    VMM_ASSERT(vp < m_config.vcpu_count);
    // A hypercall comes from CPL 0 through the enabled hypercall page. Anything else is a plain
    // OUT to an unclaimed port (guest user space via ioperm, a probing driver): leave rax alone.
    if (regs.cpl != 0 || !hypercall_page_enabled()) {
        VMM_GUEST_WARN("hyperv", "vp {}: OUT to the hypercall port ignored (cpl {}, page {})", vp, regs.cpl,
            hypercall_page_enabled() ? "enabled" : "disabled");
        return;
    }
    m_hypercalls.fetch_add(1, std::memory_order_relaxed);
    regs.rax = m_dispatcher->dispatch(vp, regs, m_sink.load(std::memory_order_acquire));
    if ((regs.rax & HV_HYPERCALL_CODE_MASK) != HV_STATUS_SUCCESS)
        m_hypercall_failures.fetch_add(1, std::memory_order_relaxed);
}

void Partition::reset()
{
    m_synic->reset();
    std::lock_guard lock { m_mutex };
    m_guest_os_id = 0;
    m_hypercall = 0;
    m_reference_tsc = 0;
    m_tsc_invariant_control = 0;
    std::ranges::fill(m_crash_params, 0);
    m_crash_reported = false;
    std::ranges::fill(m_vp_assist_page, 0);
}

bool Partition::post_message(std::uint32_t vp, std::uint8_t sint, std::uint32_t message_type,
    std::span<std::byte const> payload)
{
    return m_synic->post_message(vp, sint, message_type, payload);
}

void Partition::signal_event(std::uint32_t vp, std::uint8_t sint, std::uint32_t flag)
{
    m_synic->signal_event(vp, sint, flag);
}

void Partition::kick_pending_messages() { m_synic->kick_occupied_slots(); }

PartitionStats Partition::stats() const
{
    return PartitionStats {
        .msr_faults = m_msr_faults.load(std::memory_order_relaxed),
        .hypercalls = m_hypercalls.load(std::memory_order_relaxed),
        .hypercall_failures = m_hypercall_failures.load(std::memory_order_relaxed),
        .messages_delivered = m_synic->messages_delivered(),
        .messages_refused = m_synic->messages_refused(),
        .events_signalled = m_synic->events_signalled(),
        .ipis_sent = m_dispatcher->ipis_sent(),
    };
}

} // namespace vmm::hyperv

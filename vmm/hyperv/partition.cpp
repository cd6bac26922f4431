// SPDX-License-Identifier: MIT
// Partition: CPUID leaves, partition-wide and per-VP synthetic MSRs, and the routing of SynIC
// and synthetic-timer MSRs, hypercalls and SynicPort calls to Synic, SyntheticTimers and
// HypercallDispatcher (TLFS 2-12; guest side cited per register).
#include "vmm/hyperv/partition.hpp"

#include <time.h>

#include <algorithm>
#include <array>

#include "base/log.hpp"
#include "vmm/hyperv/hvdef.hpp"
#include "vmm/hyperv/hypercall_dispatcher.hpp"
#include "vmm/hyperv/hypercall_page.hpp"
#include "vmm/hyperv/synic.hpp"
#include "vmm/hyperv/synthetic_timers.hpp"

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

// A boot raises at most this many guest_crashed events: Linux reports an oops through the die
// notifier and then the panic through kmsg_dump (drivers/hv/hv_common.c:203-240, 310-315), and
// a looping guest must not flood the API.
constexpr u32 MAX_CRASH_REPORTS_PER_BOOT = 4;
// The kmsg page is one Hyper-V page (hv_common.c:217-218, HV_HYP_PAGE_SIZE).
constexpr u64 MAX_CRASH_MESSAGE_BYTES = 4096;

// CPU time of the calling thread in 100 ns units: read_msr() runs on the vCPU's own thread, and
// that thread sleeps (consumes no CPU) while KVM halts the vCPU, so this is the time the VP ran,
// including the VMM's handling of its exits (TLFS 2.4.4 "HV_X64_MSR_VP_RUNTIME").
u64 thread_runtime_100ns()
{
    timespec ts {};
    if (::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return static_cast<u64>(ts.tv_sec) * HV_CLOCK_HZ + static_cast<u64>(ts.tv_nsec) / 100;
}

std::string printable(std::span<std::byte const> bytes)
{
    std::string text;
    text.reserve(bytes.size());
    for (std::byte b : bytes) {
        auto const c = static_cast<char>(b);
        text.push_back((c == '\n' || (c >= 0x20 && c < 0x7F)) ? c : '?');
    }
    return text;
}

} // namespace

Partition::Partition(mem::GuestMemory const& memory, InterruptSink& interrupts, PartitionConfig config)
    : m_memory(memory)
    , m_config(config)
    , m_interrupts(interrupts)
    , m_synic(std::make_unique<Synic>(memory, interrupts, config.vcpu_count))
    , m_dispatcher(std::make_unique<HypercallDispatcher>(memory, interrupts, config.vcpu_count,
          config.enlightenments.extended_hypercalls))
    , m_vp_assist_page(config.vcpu_count, 0)
{
    VMM_ASSERT(config.vcpu_count > 0);
    auto const& wanted = config.enlightenments;
    if (wanted.reference_time && config.read_guest_tsc) {
        auto clock = std::make_unique<ReferenceClock>(config.tsc_hz, config.read_guest_tsc);
        if (clock->valid())
            m_clock = std::move(clock);
        else
            log::warn("hyperv", "TSC {} Hz is too slow for the reference TSC page: reference time not offered",
                config.tsc_hz);
    }
    if (wanted.synthetic_timers && m_clock)
        m_timers = std::make_unique<SyntheticTimers>(*m_clock, *m_synic, interrupts, config.vcpu_count,
            wanted.stimer_direct_mode);
}

Partition::~Partition() = default;

void Partition::set_hypercall_sink(HypercallSink* sink) { m_sink.store(sink, std::memory_order_release); }
void Partition::set_memory_hint_sink(MemoryHintSink* sink) { m_hint_sink.store(sink, std::memory_order_release); }

void Partition::set_platform_sink(PlatformSink* sink) { m_platform.store(sink, std::memory_order_release); }
void Partition::set_traffic_tap(TrafficTap* tap) { m_tap.store(tap, std::memory_order_release); }

std::span<std::uint32_t const> Partition::msrs() { return SYNTHETIC_MSRS; }

std::vector<CpuidLeaf> Partition::cpuid_leaves() const
{
    // Never set ACCESS_PARTITION_ID, CPU_MANAGEMENT or ISOLATION (the guest BUG()s or takes root
    // partition paths: mshyperv.c:303-330, hv_common.c hv_get_partition_id). TIME_REF_COUNT
    // only with the TSC page: MSR-only time makes sched_clock exit on every read
    // (hyperv_timer.c:559-579).
    auto const& on = m_config.enlightenments;
    u32 features = HV_MSR_SYNIC_AVAILABLE | HV_MSR_HYPERCALL_AVAILABLE | HV_MSR_VP_INDEX_AVAILABLE;
    u32 privileges_high = HV_POST_MESSAGES | HV_SIGNAL_EVENTS;
    u32 misc = 0;
    if (on.tsc_invariant)
        features |= HV_ACCESS_TSC_INVARIANT; // Without it Linux marks the TSC unstable (mshyperv.c:510-511).
    if (reference_time_available())
        features |= HV_MSR_TIME_REF_COUNT_AVAILABLE | HV_MSR_REFERENCE_TSC_AVAILABLE;
    if (m_timers) {
        features |= HV_MSR_SYNTIMER_AVAILABLE; // hyperv_timer.c:230-231
        if (on.stimer_direct_mode)
            misc |= HV_STIMER_DIRECT_MODE_AVAILABLE; // hyperv_timer.c:237-238, mshyperv.c:478-482
    }
    if (on.vp_runtime)
        features |= HV_MSR_VP_RUNTIME_AVAILABLE;
    if (on.reset)
        features |= HV_MSR_RESET_AVAILABLE;
    if (on.crash)
        misc |= HV_FEATURE_GUEST_CRASH_MSR_AVAILABLE; // hv_common.c:290-315
    if (on.extended_hypercalls)
        privileges_high |= HV_ENABLE_EXTENDED_HYPERCALLS; // hv_common.c:424-425
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
    add(HYPERV_CPUID_FEATURES, features, privileges_high, 0, misc);
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
    std::optional<u64> value;
    if (Synic::owns_msr(msr))
        value = m_synic->read_msr(vp, msr);
    else if (SyntheticTimers::owns_msr(msr))
        value = m_timers ? m_timers->read_msr(vp, msr) : std::nullopt;
    else
        value = read_partition_msr(vp, msr);
    if (!value) {
        m_msr_faults.fetch_add(1, std::memory_order_relaxed);
        VMM_GUEST_WARN("hyperv", "vp {}: RDMSR {:#x} -> #GP", vp, msr);
    }
    return value;
}

std::optional<std::uint64_t> Partition::read_partition_msr(std::uint32_t vp, std::uint32_t msr)
{
    auto const& on = m_config.enlightenments;
    // Registers that need no partition state (and must not wait for the lock).
    switch (msr) {
    case HV_X64_MSR_TIME_REF_COUNT:
        // 100 ns since partition start, the same formula as the TSC page (TLFS 12.6).
        return m_clock ? std::optional { m_clock->now() } : std::nullopt;
    case HV_X64_MSR_VP_RUNTIME:
        return on.vp_runtime ? std::optional { thread_runtime_100ns() } : std::nullopt;
    case HV_X64_MSR_RESET:
        return on.reset ? std::optional<u64> { 0 } : std::nullopt;
    default:
        break;
    }
    if (!on.crash && (is_crash_param(msr) || msr == HV_X64_MSR_CRASH_CTL))
        return std::nullopt;
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
        // Capabilities: notification, and the kmsg page with NOTIFY_MSG, which makes Linux hand
        // over its panic log (drivers/hv/hv_common.c:310-312, 203-240).
        return HV_CRASH_CTL_CRASH_NOTIFY | HV_CRASH_CTL_CRASH_NOTIFY_MSG;
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
    if (TrafficTap* tap = m_tap.load(std::memory_order_acquire))
        tap->on_msr_write(vp, msr, value);
    bool ok;
    if (Synic::owns_msr(msr)) {
        std::vector<SintRef> retry;
        ok = m_synic->write_msr(vp, msr, value, retry);
        notify_slots_freed(retry);
    } else if (SyntheticTimers::owns_msr(msr)) {
        ok = m_timers && m_timers->write_msr(vp, msr, value);
    } else if (msr == HV_X64_MSR_RESET && m_config.enlightenments.reset) {
        // Bit 0 resets the partition; the other bits are reserved (TLFS 2.4.4). Handled outside
        // the lock: the sink stops the machine like the ACPI reset register does.
        ok = (value & ~HV_X64_MSR_RESET_BIT) == 0;
        if (ok && value != 0) {
            log::info("hyperv", "vp {}: guest reset through HV_X64_MSR_RESET", vp);
            if (PlatformSink* platform = m_platform.load(std::memory_order_acquire))
                platform->reset_requested(vp);
        }
    } else if (msr == HV_X64_MSR_CRASH_CTL && m_config.enlightenments.crash) {
        std::optional<CrashReport> report;
        {
            std::lock_guard lock { m_mutex };
            ok = write_crash_ctl(value, report);
        }
        if (PlatformSink* platform = m_platform.load(std::memory_order_acquire); report && platform)
            platform->guest_crashed(*report);
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
    if (freed.empty())
        return;
    // Timer messages first: they are the hypervisor's own and small (TLFS 12.4 re-post rule).
    if (m_timers) {
        u64 const now = m_clock->now();
        for (auto const& ref : freed)
            m_timers->slot_freed(ref.vp, ref.sint, now);
    }
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
        return write_vp_assist_page(vp, value);
    case HV_X64_MSR_REFERENCE_TSC:
        return write_reference_tsc(value);
    case HV_X64_MSR_TSC_INVARIANT_CONTROL:
        if ((value & ~HV_EXPOSE_INVARIANT_TSC) != 0)
            return false;
        m_tsc_invariant_control = value;
        return true;
    default:
        if (is_crash_param(msr) && m_config.enlightenments.crash) {
            m_crash_params[msr - HV_X64_MSR_CRASH_P0] = value;
            return true;
        }
        // VP_INDEX, SVERSION-like read-only registers, frequency MSRs and everything we do not
        // implement in the synthetic range.
        return false;
    }
}

bool Partition::write_vp_assist_page(std::uint32_t vp, std::uint64_t value)
{
    // The VP assist page is a per-VP GPA overlay page (TLFS 5.2.1 and 7.8.7; Linux
    // hv_init.c:100-107): while enabled its contents are the hypervisor's, and a newly enabled
    // (or moved) page starts zeroed, so no stale apic_assist or nested-enlightenment field is
    // read from it. The host writes nothing else there: PV EOI (apic_assist) needs hint 3 and
    // the APIC access MSRs, which are not offered (guest-interface §2.2). A disabled page is
    // ordinary RAM again and keeps its contents.
    if ((value & HV_PAGE_RESERVED_MASK) != 0) {
        VMM_GUEST_WARN("hyperv", "vp {}: VP assist page {:#x} has reserved bits set", vp, value);
        return false;
    }
    bool const enable = (value & HV_X64_MSR_VP_ASSIST_PAGE_ENABLE) != 0;
    mem::Gpa const page { value & HV_PAGE_ADDRESS_MASK };
    if (enable && !m_memory.is_ram(page, mem::PAGE_SIZE)) {
        VMM_GUEST_WARN("hyperv", "vp {}: VP assist page {} is not RAM", vp, page);
        return false;
    }
    u64 const old = m_vp_assist_page[vp];
    bool const fresh = enable
        && ((old & HV_X64_MSR_VP_ASSIST_PAGE_ENABLE) == 0 || (old & HV_PAGE_ADDRESS_MASK) != page.raw());
    if (fresh && !m_memory.fill(page, std::byte { 0 }, mem::PAGE_SIZE))
        return false; // Unplugged since the is_ram() check: treat as not RAM.
    m_vp_assist_page[vp] = value;
    return true;
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

bool Partition::write_reference_tsc(std::uint64_t value)
{
    if (!m_clock) {
        // Not offered, but hyperv_cleanup() writes 0 on crash/kexec (hv_init.c:592-595):
        // accept the disable, refuse enabling a TSC page we do not provide.
        if ((value & HV_X64_MSR_TSC_REFERENCE_ENABLE) != 0)
            return false;
        m_reference_tsc = value;
        return true;
    }
    // Bits 1-11 are reserved-preserve: kept and read back (Linux writes back what it read,
    // hyperv_timer.c:540-548). The PFN needs no alignment check: it is a page number.
    if ((value & HV_X64_MSR_TSC_REFERENCE_ENABLE) == 0) {
        // Disabling: the page becomes ordinary RAM again and is left as it is (TLFS 12.7.1);
        // Linux disables it on suspend and hibernation (hyperv_timer.c:398-406).
        m_reference_tsc = value;
        return true;
    }
    mem::Gpa const page { value & HV_PAGE_ADDRESS_MASK };
    if (!m_memory.is_ram(page, mem::PAGE_SIZE)) {
        VMM_GUEST_WARN("hyperv", "reference TSC page {} is not RAM", page);
        return false;
    }
    // A fresh sequence on every (re-)enable, never 0 ("invalid") and never 0xFFFFFFFF (the
    // invalid marker of TLFS before 5.0, hyperv_timer.h:50-53): a reader that raced with the
    // rewrite retries.
    do {
        ++m_tsc_sequence;
    } while (m_tsc_sequence == HV_TSC_SEQUENCE_INVALID || m_tsc_sequence == 0xFFFF'FFFF);
    if (write_tsc_page(m_memory, page, m_tsc_sequence, m_clock->scale(), m_clock->offset()) != TscPageWrite::Written)
        return false; // Unplugged since the is_ram() check: treat as not RAM.
    m_reference_tsc = value;
    return true;
}

bool Partition::write_crash_ctl(std::uint64_t value, std::optional<CrashReport>& report)
{
    if ((value & ~(HV_CRASH_CTL_CRASH_NOTIFY | HV_CRASH_CTL_CRASH_NOTIFY_MSG)) != 0)
        return false;
    if ((value & HV_CRASH_CTL_CRASH_NOTIFY) == 0)
        return true;
    bool const with_message = (value & HV_CRASH_CTL_CRASH_NOTIFY_MSG) != 0;
    if (m_crash_reports < MAX_CRASH_REPORTS_PER_BOOT) {
        ++m_crash_reports;
        CrashReport out {};
        std::ranges::copy(m_crash_params, out.params);
        if (with_message) {
            // P3 = GPA of the kmsg page, P4 = bytes in it (hv_common.c:224-232). Copied once,
            // bounded to one page; a bad GPA only loses the text.
            u64 const bytes = std::min(m_crash_params[4], MAX_CRASH_MESSAGE_BYTES);
            std::vector<std::byte> text(bytes);
            if (m_memory.read(mem::Gpa { m_crash_params[3] }, text))
                out.message = printable(text);
            else
                VMM_GUEST_WARN("hyperv", "crash message at {:#x} ({} bytes) is not RAM", m_crash_params[3], bytes);
        }
        report = std::move(out);
    }
    // On panic/oops the guest writes P0-P4 (error code, RIP, ...; hv_init.c:617-621, or with
    // NOTIFY_MSG P3/P4 = kmsg page GPA/size, hv_common.c:203-240), then sets bit 63. Logged in
    // full up to MAX_CRASH_REPORTS_PER_BOOT times; later ones only rate-limited.
    m_crash_reported = true;
    if (report) {
        log::error("hyperv", "guest crash reported: P0 {:#x} P1 {:#x} P2 {:#x} P3 {:#x} P4 {:#x}{}{}",
            m_crash_params[0], m_crash_params[1], m_crash_params[2], m_crash_params[3], m_crash_params[4],
            with_message ? " message:\n" : "", report->message);
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
    if (TrafficTap* tap = m_tap.load(std::memory_order_acquire))
        record_hypercall(*tap, vp, regs);
    regs.rax = m_dispatcher->dispatch(vp, regs, m_sink.load(std::memory_order_acquire),
        m_hint_sink.load(std::memory_order_acquire));
    if ((regs.rax & HV_HYPERCALL_CODE_MASK) != HV_STATUS_SUCCESS)
        m_hypercall_failures.fetch_add(1, std::memory_order_relaxed);
}

void Partition::record_hypercall(TrafficTap& tap, std::uint32_t vp, HypercallRegs const& regs) const
{
    // The start of a memory call's input page: a post message's header and payload (TLFS 11.8.3,
    // 16 + 240 bytes) and most other inputs fit in 512 bytes; never past the page.
    std::array<std::byte, 512> input {};
    std::size_t length = 0;
    if ((regs.rcx & HV_HYPERCALL_FAST_BIT) == 0) {
        length = std::min<std::size_t>(input.size(), mem::PAGE_SIZE - (regs.rdx & (mem::PAGE_SIZE - 1)));
        if (!m_memory.read(mem::Gpa { regs.rdx }, std::span { input.data(), length }).has_value())
            length = 0;
    }
    tap.on_hypercall(vp, regs.rcx, regs.rdx, regs.r8, std::span { input.data(), length });
}

void Partition::reset()
{
    if (m_timers)
        m_timers->reset();
    m_synic->reset();
    std::lock_guard lock { m_mutex };
    m_guest_os_id = 0;
    m_hypercall = 0;
    m_reference_tsc = 0;
    m_tsc_invariant_control = 0;
    std::ranges::fill(m_crash_params, 0);
    m_crash_reported = false;
    m_crash_reports = 0;
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

bool Partition::kick_pending_messages() { return m_synic->kick_occupied_slots(); }

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
        .stimer_programmed = m_timers ? m_timers->programmed() : 0,
        .stimer_expirations = m_timers ? m_timers->expirations() : 0,
    };
}

} // namespace vmm::hyperv

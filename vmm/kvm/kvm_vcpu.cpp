// SPDX-License-Identifier: MIT
// KVM_RUN and the one decoder of kvm_run (Documentation/virt/kvm/api.rst, "kvm_run").
#include "vmm/kvm/kvm_vcpu.hpp"

#include "base/startup_trace.hpp"
#include <x86intrin.h>

#include "vmm/kvm/kvm_abi.hpp"
#include <sys/ioctl.h>

#include <atomic>
#include <cerrno>
#include <vector>

#include <fmt/format.h>

namespace vmm::kvm {

namespace {

kvm_run* run_of(Mapping const& mapping)
{
    return reinterpret_cast<kvm_run*>(mapping.base()); // The vCPU mmap starts with struct kvm_run.
}

void to_kvm(Segment const& in, kvm_segment& out)
{
    out.base = in.base;
    out.limit = in.limit;
    out.selector = in.selector;
    out.type = in.type;
    out.present = in.present;
    out.dpl = in.dpl;
    out.db = in.db;
    out.s = in.s;
    out.l = in.l;
    out.g = in.g;
    out.avl = 0;
    out.unusable = in.present ? 0 : 1;
}

Segment from_kvm(kvm_segment const& in)
{
    return Segment { in.base, in.limit, in.selector, in.type, in.present, in.dpl, in.db, in.s, in.l, in.g };
}

VcpuExit decode_io(kvm_run* run)
{
    // The data sits inside the vCPU mapping at data_offset (api.rst KVM_EXIT_IO).
    auto* data = reinterpret_cast<std::byte*>(run) + run->io.data_offset;
    std::size_t const bytes = std::size_t { run->io.size } * run->io.count;
    if (run->io.direction == KVM_EXIT_IO_OUT)
        return PioOut { run->io.port, run->io.size, run->io.count, { data, bytes } };
    return PioIn { run->io.port, run->io.size, run->io.count, { data, bytes } };
}

VcpuExit decode_mmio(kvm_run* run)
{
    auto* data = reinterpret_cast<std::byte*>(run->mmio.data);
    std::size_t const bytes = std::min<std::size_t>(run->mmio.len, sizeof(run->mmio.data));
    if (run->mmio.is_write)
        return MmioWrite { mem::Gpa { run->mmio.phys_addr }, { data, bytes } };
    return MmioRead { mem::Gpa { run->mmio.phys_addr }, { data, bytes } };
}

MsrReply msr_reply(kvm_run* run)
{
    // __u64 is unsigned long long, u64 unsigned long: same size and representation on x86-64.
    return MsrReply { reinterpret_cast<u64*>(&run->msr.data), &run->msr.error };
}

VcpuExit decode_system_event(kvm_run* run)
{
    switch (run->system_event.type) {
    case KVM_SYSTEM_EVENT_SHUTDOWN: return SystemEvent { SystemEventType::Shutdown, run->system_event.type };
    case KVM_SYSTEM_EVENT_RESET: return SystemEvent { SystemEventType::Reset, run->system_event.type };
    default: return SystemEvent { SystemEventType::Other, run->system_event.type };
    }
}

} // namespace

Result<void> KvmVcpu::set_cpuid(CpuidTable const& table)
{
    startup::KvmScope timed { startup::KvmCall::Other };
    abi::FlexBuffer<abi::Cpuid2Header, kvm_cpuid_entry2> buffer { table.size() };
    buffer.header()->nent = static_cast<u32>(table.size());
    for (std::size_t i = 0; i < table.size(); ++i) {
        auto const& entry = table[i];
        auto& out = buffer.entries()[i];
        out = {};
        out.function = entry.function;
        out.index = entry.index;
        out.flags = entry.indexed ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0;
        out.eax = entry.eax;
        out.ebx = entry.ebx;
        out.ecx = entry.ecx;
        out.edx = entry.edx;
    }
    if (::ioctl(m_fd.get(), abi::SET_CPUID2, buffer.header()) < 0)
        return fail_errno("KVM_SET_CPUID2");
    return {};
}

Result<Regs> KvmVcpu::get_regs() const
{
    startup::KvmScope timed { startup::KvmCall::Other };
    kvm_regs regs {};
    if (::ioctl(m_fd.get(), KVM_GET_REGS, &regs) < 0)
        return fail_errno("KVM_GET_REGS");
    return Regs { regs.rax, regs.rbx, regs.rcx, regs.rdx, regs.rsi, regs.rdi, regs.rsp, regs.rbp, regs.r8,
        regs.r9, regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15, regs.rip, regs.rflags };
}

Result<void> KvmVcpu::set_regs(Regs const& in)
{
    startup::KvmScope timed { startup::KvmCall::Other };
    kvm_regs regs { in.rax, in.rbx, in.rcx, in.rdx, in.rsi, in.rdi, in.rsp, in.rbp, in.r8, in.r9, in.r10,
        in.r11, in.r12, in.r13, in.r14, in.r15, in.rip, in.rflags };
    if (::ioctl(m_fd.get(), KVM_SET_REGS, &regs) < 0)
        return fail_errno("KVM_SET_REGS");
    return {};
}

Result<SpecialRegs> KvmVcpu::get_sregs() const
{
    startup::KvmScope timed { startup::KvmCall::Other };
    kvm_sregs sregs {};
    if (::ioctl(m_fd.get(), KVM_GET_SREGS, &sregs) < 0)
        return fail_errno("KVM_GET_SREGS");
    SpecialRegs out;
    out.cs = from_kvm(sregs.cs);
    out.ds = from_kvm(sregs.ds);
    out.es = from_kvm(sregs.es);
    out.fs = from_kvm(sregs.fs);
    out.gs = from_kvm(sregs.gs);
    out.ss = from_kvm(sregs.ss);
    out.tr = from_kvm(sregs.tr);
    out.gdt = { sregs.gdt.base, sregs.gdt.limit };
    out.idt = { sregs.idt.base, sregs.idt.limit };
    out.cr0 = sregs.cr0;
    out.cr3 = sregs.cr3;
    out.cr4 = sregs.cr4;
    out.efer = sregs.efer;
    return out;
}

Result<void> KvmVcpu::set_sregs(SpecialRegs const& in)
{
    startup::KvmScope timed { startup::KvmCall::Other };
    kvm_sregs sregs {};
    if (::ioctl(m_fd.get(), KVM_GET_SREGS, &sregs) < 0)
        return fail_errno("KVM_GET_SREGS");
    to_kvm(in.cs, sregs.cs);
    to_kvm(in.ds, sregs.ds);
    to_kvm(in.es, sregs.es);
    to_kvm(in.fs, sregs.fs);
    to_kvm(in.gs, sregs.gs);
    to_kvm(in.ss, sregs.ss);
    to_kvm(in.tr, sregs.tr);
    sregs.gdt.base = in.gdt.base;
    sregs.gdt.limit = in.gdt.limit;
    sregs.idt.base = in.idt.base;
    sregs.idt.limit = in.idt.limit;
    sregs.cr0 = in.cr0;
    sregs.cr3 = in.cr3;
    sregs.cr4 = in.cr4;
    sregs.efer = in.efer;
    if (::ioctl(m_fd.get(), KVM_SET_SREGS, &sregs) < 0)
        return fail_errno("KVM_SET_SREGS");
    return {};
}

Result<void> KvmVcpu::set_msrs(std::span<MsrValue const> msrs)
{
    startup::KvmScope timed { startup::KvmCall::Other };
    abi::FlexBuffer<abi::MsrsHeader, kvm_msr_entry> buffer { msrs.size() };
    buffer.header()->nmsrs = static_cast<u32>(msrs.size());
    for (std::size_t i = 0; i < msrs.size(); ++i) {
        buffer.entries()[i].index = msrs[i].index;
        buffer.entries()[i].data = msrs[i].value;
    }
    int written = ::ioctl(m_fd.get(), abi::SET_MSRS, buffer.header());
    if (written < 0)
        return fail_errno("KVM_SET_MSRS");
    // KVM stops at the first MSR it refuses and returns how many it set.
    if (static_cast<std::size_t>(written) != msrs.size())
        return fail(Errc::Unsupported, "KVM_SET_MSRS refused MSR", msrs[static_cast<std::size_t>(written)].index);
    return {};
}

Result<void> KvmVcpu::set_mp_state(MpState state)
{
    startup::KvmScope timed { startup::KvmCall::Other };
    kvm_mp_state mp {};
    switch (state) {
    case MpState::Runnable: mp.mp_state = KVM_MP_STATE_RUNNABLE; break;
    case MpState::Uninitialized: mp.mp_state = KVM_MP_STATE_UNINITIALIZED; break;
    case MpState::Halted: mp.mp_state = KVM_MP_STATE_HALTED; break;
    }
    if (::ioctl(m_fd.get(), KVM_SET_MP_STATE, &mp) < 0)
        return fail_errno("KVM_SET_MP_STATE");
    return {};
}

Result<MpState> KvmVcpu::get_mp_state() const
{
    startup::KvmScope timed { startup::KvmCall::Other };
    kvm_mp_state mp {};
    if (::ioctl(m_fd.get(), KVM_GET_MP_STATE, &mp) < 0)
        return fail_errno("KVM_GET_MP_STATE");
    switch (mp.mp_state) {
    case KVM_MP_STATE_RUNNABLE: return MpState::Runnable;
    case KVM_MP_STATE_UNINITIALIZED: return MpState::Uninitialized;
    case KVM_MP_STATE_HALTED: return MpState::Halted;
    default: return std::unexpected(Error::make(Errc::Unsupported, "KVM_GET_MP_STATE: a state microvmm does not use", mp.mp_state));
    }
}

Result<u32> KvmVcpu::tsc_khz() const
{
    startup::KvmScope timed { startup::KvmCall::Other };
    int khz = ::ioctl(m_fd.get(), KVM_GET_TSC_KHZ, 0);
    if (khz <= 0)
        return fail_errno("KVM_GET_TSC_KHZ");
    return static_cast<u32>(khz);
}

Result<i64> KvmVcpu::guest_tsc_offset() const
{
    u64 offset = 0;
    kvm_device_attr attr {};
    attr.group = KVM_VCPU_TSC_CTRL;
    attr.attr = KVM_VCPU_TSC_OFFSET;
    attr.addr = reinterpret_cast<u64>(&offset); // ABI: KVM writes the u64 at this host address.
    if (::ioctl(m_fd.get(), KVM_GET_DEVICE_ATTR, &attr) == 0)
        return static_cast<i64>(offset);
    constexpr u32 MSR_IA32_TSC = 0x10; // Intel SDM Vol. 4, Table 2-2.
    abi::FlexBuffer<abi::MsrsHeader, kvm_msr_entry> buffer { 1 };
    buffer.header()->nmsrs = 1;
    buffer.entries()[0].index = MSR_IA32_TSC;
    u64 const before = __rdtsc();
    int const read = ::ioctl(m_fd.get(), abi::GET_MSRS, buffer.header());
    u64 const after = __rdtsc();
    if (read != 1)
        return fail_errno("KVM_GET_MSRS(IA32_TSC)");
    return static_cast<i64>(buffer.entries()[0].data - (before + (after - before) / 2));
}

Result<VcpuExit> KvmVcpu::run()
{
    if (::ioctl(m_fd.get(), KVM_RUN, 0) < 0) {
        if (errno == EINTR || errno == EAGAIN)
            return Interrupted {};
        return fail_errno("KVM_RUN");
    }
    kvm_run* run = run_of(m_run);
    switch (run->exit_reason) {
    case KVM_EXIT_IO: return decode_io(run);
    case KVM_EXIT_MMIO: return decode_mmio(run);
    case KVM_EXIT_X86_RDMSR:
        run->msr.error = 0;
        return MsrRead { run->msr.index, msr_reply(run) };
    case KVM_EXIT_X86_WRMSR:
        run->msr.error = 0;
        return MsrWrite { run->msr.index, run->msr.data, msr_reply(run) };
    case KVM_EXIT_HLT: return Halt {};
    case KVM_EXIT_SHUTDOWN: return Shutdown {};
    case KVM_EXIT_SYSTEM_EVENT: return decode_system_event(run);
    case KVM_EXIT_INTR: return Interrupted {};
    case KVM_EXIT_INTERNAL_ERROR: return InternalError { run->internal.suberror };
    case KVM_EXIT_FAIL_ENTRY: return FailEntry { run->fail_entry.hardware_entry_failure_reason };
    default: return Unknown { run->exit_reason };
    }
}

void KvmVcpu::request_immediate_exit() const
{
    // A lock-free byte store (api.rst "immediate_exit"): called from the kick signal handler on
    // the vCPU's own thread and from a thread asking it to stop (VcpuThread::request_stop).
    // KVM polls the byte when KVM_RUN starts, so a store from either side is seen by the next
    // entry; atomic so the two writers are not a data race.
    std::atomic_ref<u8> { run_of(m_run)->immediate_exit }.store(1, std::memory_order_seq_cst);
}

void KvmVcpu::clear_immediate_exit() const
{
    std::atomic_ref<u8> { run_of(m_run)->immediate_exit }.store(0, std::memory_order_seq_cst);
}

std::string KvmVcpu::describe_internal_error() const
{
    kvm_run const* run = run_of(m_run);
    std::string text = fmt::format("suberror {}", run->internal.suberror);
    u32 const words = std::min<u32>(run->internal.ndata, 16);
    if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION && words >= 2
        && (run->internal.data[0] & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
        // data[1] = instruction length, data[2..3] = up to 15 instruction bytes (api.rst).
        auto const* bytes = reinterpret_cast<u8 const*>(&run->internal.data[2]);
        u64 const length = std::min<u64>(run->internal.data[1], 15);
        text += " instruction bytes:";
        for (u64 i = 0; i < length; ++i)
            text += fmt::format(" {:02x}", bytes[i]);
    } else {
        for (u32 i = 0; i < words; ++i)
            text += fmt::format(" data[{}]={:#x}", i, run->internal.data[i]);
    }
    if (auto regs = get_regs())
        text += fmt::format(" rip={:#x}", regs->rip);
    return text;
}

} // namespace vmm::kvm

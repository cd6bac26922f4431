// SPDX-License-Identifier: MIT
// Hypercall dispatch and input validation (guest-interface §3, §10.5; TLFS 3, 11.9; reference host
// implementation: KVM kvm_hv_hypercall, arch/x86/kvm/hyperv.c:2202-2380).
#include "vmm/hyperv/hypercall_dispatcher.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>

#include "base/log.hpp"
#include "vmm/hyperv/hvdef.hpp"
#include "vmm/hyperv/partition.hpp"

namespace vmm::hyperv {
namespace {

// Largest HvPostMessage input block: header + 240-byte payload (drivers/hv/hyperv_vmbus.h:99-105).
constexpr std::size_t POST_MESSAGE_INPUT_BYTES = sizeof(HvPostMessageInput) + HV_MESSAGE_PAYLOAD_BYTE_COUNT;
// HvSignalEvent fast input (rdx): connection id 0-23, reserved 24-31, flag number 32-47,
// reserved 48-63 (KVM rejects non-zero reserved bits, arch/x86/kvm/hyperv.c:2090-2129).
constexpr u64 SIGNAL_EVENT_RESERVED_MASK = 0xFFFF'0000'FF00'0000;

} // namespace

HypercallDispatcher::HypercallDispatcher(mem::GuestMemory const& memory, InterruptSink& interrupts, u32 vcpu_count,
    bool extended_hypercalls)
    : m_memory(memory)
    , m_interrupts(interrupts)
    , m_vcpu_count(vcpu_count)
    , m_extended_hypercalls(extended_hypercalls)
{
}

u64 HypercallDispatcher::dispatch(u32 vp, HypercallRegs const& regs, HypercallSink* sink, MemoryHintSink* hints)
{
    auto const control = HypercallControl::decode(regs.rcx);
    if (control.reserved_set)
        return hypercall_result(HV_STATUS_INVALID_HYPERCALL_INPUT);
    switch (control.code) {
    case HVCALL_POST_MESSAGE:
        return hypercall_result(post_message(vp, control, regs, sink));
    case HVCALL_SIGNAL_EVENT:
        return hypercall_result(signal_event(vp, control, regs, sink));
    case HVCALL_SEND_IPI:
        return hypercall_result(send_ipi(control, regs));
    case HVCALL_SEND_IPI_EX:
        return hypercall_result(send_ipi_ex(control, regs));
    case HV_EXT_CALL_QUERY_CAPABILITIES:
        if (!m_extended_hypercalls)
            break;
        return hypercall_result(query_extended_capabilities(control, regs, hints != nullptr));
    case HV_EXT_CALL_MEMORY_HEAT_HINT:
        if (!m_extended_hypercalls || hints == nullptr)
            break;
        return memory_heat_hint(control, regs, hints);
    default:
        break;
    }
    // Everything else, including calls we never advertise (HvGetPartitionId, TLB flushes, other
    // extended calls), answers INVALID_HYPERCALL_CODE (TLFS 3.8 status codes).
    VMM_GUEST_WARN("hyperv", "vp {}: unsupported hypercall {:#x}", vp, control.code);
    return hypercall_result(HV_STATUS_INVALID_HYPERCALL_CODE);
}

u16 HypercallDispatcher::query_extended_capabilities(HypercallControl control, HypercallRegs const& regs,
    bool cold_discard)
{
    // HvExtCallQueryCapabilities (TLFS 3.x "Extended Hypercalls"; guest: drivers/hv/hv_common.c:
    // 408-450): no input, one u64 of capability bits written to the output GPA (r8), 8-byte
    // aligned like every hypercall output (TLFS 3.7). Only bits for extended calls this VMM
    // implements may be set: HvExtCallMemoryHeatHint (HV_EXT_CAPABILITY_MEMORY_COLD_DISCARD_HINT,
    // include/asm-generic/hyperv-tlfs.h:182) while a MemoryHintSink takes the hints.
    if (control.fast || control.is_rep() || control.varhead_size != 0)
        return HV_STATUS_INVALID_HYPERCALL_INPUT;
    u64 const gpa = regs.r8;
    if (gpa % HV_HYPERCALL_INPUT_ALIGN != 0)
        return HV_STATUS_INVALID_ALIGNMENT;
    u64 const capabilities = cold_discard ? HV_EXT_CAPABILITY_MEMORY_COLD_DISCARD_HINT : 0;
    if (!m_memory.write_obj(mem::Gpa { gpa }, capabilities))
        return HV_STATUS_INVALID_ALIGNMENT; // Not RAM: grouped with alignment like inputs.
    return HV_STATUS_SUCCESS;
}

u16 HypercallDispatcher::read_input(u64 gpa, std::span<std::byte> out) const
{
    if (gpa % HV_HYPERCALL_INPUT_ALIGN != 0)
        return HV_STATUS_INVALID_ALIGNMENT;
    if ((gpa & (mem::PAGE_SIZE - 1)) + out.size() > mem::PAGE_SIZE)
        return HV_STATUS_INVALID_ALIGNMENT; // Crosses a page.
    if (!m_memory.read(mem::Gpa { gpa }, out))
        return HV_STATUS_INVALID_ALIGNMENT; // Not RAM (guest-interface §3.4 groups it with alignment).
    return HV_STATUS_SUCCESS;
}

u16 HypercallDispatcher::post_message(u32 vp, HypercallControl control, HypercallRegs const& regs, HypercallSink* sink)
{
    // Slow call only: the fast form needs XMM input, which we do not advertise (EDX bit 4).
    if (control.fast || control.is_rep() || control.varhead_size != 0)
        return HV_STATUS_INVALID_HYPERCALL_INPUT;
    // Copy once: the whole block, or the rest of the page if the block would cross it; the
    // declared payload size is validated against what was copied (no double fetch).
    alignas(8) std::array<std::byte, POST_MESSAGE_INPUT_BYTES> input;
    u64 const page_left = mem::PAGE_SIZE - (regs.rdx & (mem::PAGE_SIZE - 1));
    auto const copied = std::span { input }.first(std::min<u64>(input.size(), page_left));
    if (copied.size() < sizeof(HvPostMessageInput))
        return HV_STATUS_INVALID_ALIGNMENT;
    if (u16 status = read_input(regs.rdx, copied); status != HV_STATUS_SUCCESS)
        return status;
    auto const header = wire_from<HvPostMessageInput>(copied);
    if (header.payload_size > HV_MESSAGE_PAYLOAD_BYTE_COUNT)
        return HV_STATUS_INVALID_PARAMETER;
    if (sizeof(HvPostMessageInput) + header.payload_size > copied.size())
        return HV_STATUS_INVALID_ALIGNMENT; // The declared block crosses a page.
    if (header.reserved != 0 || header.message_type == HVMSG_NONE
        || (header.message_type & HV_MESSAGE_TYPE_HYPERVISOR_MASK) != 0)
        return HV_STATUS_INVALID_PARAMETER;
    if ((header.connection_id & ~HV_CONNECTION_ID_MASK) != 0 || sink == nullptr)
        return HV_STATUS_INVALID_CONNECTION_ID;
    return sink->post_message(vp, header.connection_id, header.message_type,
        copied.subspan(sizeof(HvPostMessageInput), header.payload_size));
}

u16 HypercallDispatcher::signal_event(u32 vp, HypercallControl control, HypercallRegs const& regs, HypercallSink* sink)
{
    if (control.is_rep() || control.varhead_size != 0)
        return HV_STATUS_INVALID_HYPERCALL_INPUT;
    u64 param = regs.rdx; // Linux always uses the fast form (drivers/hv/connection.c:501-515).
    if (!control.fast) {
        alignas(8) std::array<std::byte, sizeof(HvSignalEventInput)> input;
        if (u16 status = read_input(regs.rdx, input); status != HV_STATUS_SUCCESS)
            return status;
        std::memcpy(&param, input.data(), sizeof(param));
    }
    if ((param & SIGNAL_EVENT_RESERVED_MASK) != 0)
        return HV_STATUS_INVALID_HYPERCALL_INPUT;
    if (sink == nullptr)
        return HV_STATUS_INVALID_CONNECTION_ID;
    return sink->signal_event(vp, static_cast<u32>(param & HV_CONNECTION_ID_MASK), static_cast<u16>(param >> 32));
}

u16 HypercallDispatcher::send_ipi(HypercallControl control, HypercallRegs const& regs)
{
    if (control.is_rep() || control.varhead_size != 0)
        return HV_STATUS_INVALID_HYPERCALL_INPUT;
    HvSendIpi input;
    if (control.fast) {
        // rdx = vector | reserved << 32, r8 = processor mask (arch/x86/hyperv/hv_apic.c:217-218).
        input = HvSendIpi { static_cast<u32>(regs.rdx), static_cast<u32>(regs.rdx >> 32), regs.r8 };
    } else {
        alignas(8) std::array<std::byte, sizeof(HvSendIpi)> bytes;
        if (u16 status = read_input(regs.rdx, bytes); status != HV_STATUS_SUCCESS)
            return status;
        input = wire_from<HvSendIpi>(bytes);
    }
    if (input.reserved != 0 || input.vector < HV_IPI_LOW_VECTOR || input.vector > HV_IPI_HIGH_VECTOR)
        return HV_STATUS_INVALID_HYPERCALL_INPUT;
    inject_sparse(input.vector, 1, std::span { &input.cpu_mask, 1 });
    return HV_STATUS_SUCCESS;
}

u16 HypercallDispatcher::send_ipi_ex(HypercallControl control, HypercallRegs const& regs)
{
    // The fast form carries valid_bank_mask in XMM0, which we do not advertise (EDX bit 4) and
    // cannot read from here; Linux 6.1 uses the slow form (hv_apic.c:146-147).
    if (control.fast || control.is_rep())
        return HV_STATUS_INVALID_HYPERCALL_INPUT;
    if (control.varhead_size > HV_VP_SET_BANK_COUNT)
        return HV_STATUS_INVALID_HYPERCALL_INPUT;
    alignas(8) std::array<std::byte, sizeof(HvSendIpiExHeader) + HV_VP_SET_BANK_COUNT * sizeof(u64)> bytes;
    auto const input = std::span { bytes }.first(sizeof(HvSendIpiExHeader) + control.varhead_size * sizeof(u64));
    if (u16 status = read_input(regs.rdx, input); status != HV_STATUS_SUCCESS)
        return status;
    auto const header = wire_from<HvSendIpiExHeader>(input);
    // The variable header holds exactly one bank per valid bit (KVM kvm_hv_send_ipi).
    if (header.reserved != 0 || std::popcount(header.valid_bank_mask) != control.varhead_size)
        return HV_STATUS_INVALID_HYPERCALL_INPUT;
    if (header.vector < HV_IPI_LOW_VECTOR || header.vector > HV_IPI_HIGH_VECTOR)
        return HV_STATUS_INVALID_HYPERCALL_INPUT;
    if (header.format == HV_GENERIC_SET_ALL) {
        for (u32 target = 0; target < m_vcpu_count; ++target)
            m_interrupts.inject(target, static_cast<u8>(header.vector));
        m_ipis_sent.fetch_add(m_vcpu_count, std::memory_order_relaxed);
        return HV_STATUS_SUCCESS;
    }
    if (header.format != HV_GENERIC_SET_SPARSE_4K)
        return HV_STATUS_INVALID_PARAMETER;
    std::array<u64, HV_VP_SET_BANK_COUNT> banks;
    std::memcpy(banks.data(), input.data() + sizeof(HvSendIpiExHeader), control.varhead_size * sizeof(u64));
    inject_sparse(header.vector, header.valid_bank_mask, std::span { banks }.first(control.varhead_size));
    return HV_STATUS_SUCCESS;
}

void HypercallDispatcher::inject_sparse(u32 vector, u64 valid_bank_mask, std::span<u64 const> banks)
{
    // Bank contents are packed in the order of the set bits of valid_bank_mask; bank i covers
    // VPs 64*i .. 64*i+63 (TLFS 7.8.7.4 HV_VP_SET; include/asm-generic/hyperv-tlfs.h:405-409).
    std::size_t next = 0;
    for (u32 bank = 0; bank < HV_VP_SET_BANK_COUNT && next < banks.size(); ++bank) {
        if ((valid_bank_mask & (u64 { 1 } << bank)) == 0)
            continue;
        for (u64 bits = banks[next++]; bits != 0; bits &= bits - 1) {
            u64 const target = u64 { bank } * 64 + static_cast<u64>(std::countr_zero(bits));
            if (target >= m_vcpu_count) {
                VMM_GUEST_WARN("hyperv", "IPI to nonexistent VP {} ignored", target);
                continue;
            }
            m_interrupts.inject(static_cast<u32>(target), static_cast<u8>(vector));
            m_ipis_sent.fetch_add(1, std::memory_order_relaxed);
        }
    }
}

} // namespace vmm::hyperv

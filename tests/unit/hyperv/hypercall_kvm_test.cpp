// SPDX-License-Identifier: MIT
// The hypercall path on the real KVM of this host (suite `kvm`): a real-mode guest writes
// GUEST_OS_ID and HYPERCALL (user-space MSR exits through a filter), then `call`s the page the
// Partition wrote, whose `out HYPERCALL_PORT, al` exits to us; we answer in rax with RIP left
// alone (guest-interface §3.1) and the guest continues after its call with that status. KVM only
// through vmm/kvm (RealModeVm). Skips (exit 77) without a KVM that vmm/kvm can use.
#include "vmm/hyperv/partition.hpp" // Header under test first.

#include <span>
#include <variant>

#include <gtest/gtest.h>

#include "firmware/layout.hpp"
#include "tests/unit/hyperv/hyperv_fakes.hpp"
#include "tests/unit/hyperv/real_mode_vm.hpp"

namespace vmm::hyperv::test {
namespace {

constexpr std::uint64_t GUEST_RAM_BYTES = 0x1'0000;
constexpr std::uint64_t CODE_GPA = 0x1000;
constexpr std::uint64_t RESULT_GPA = 0x2000;
constexpr std::uint64_t PAGE_GPA = 0x3000;

// 16-bit real-mode program (operand-size prefix 0x66 for 32-bit immediates).
std::vector<std::uint8_t> guest_program()
{
    std::vector<std::uint8_t> code {
        0x66, 0xB9, 0x00, 0x00, 0x00, 0x40, // mov ecx, HV_X64_MSR_GUEST_OS_ID
        0x66, 0x31, 0xC0,                   // xor eax, eax
        0x66, 0xBA, 0x00, 0x00, 0x00, 0x81, // mov edx, 0x81000000 (Linux vendor id << 16)
        0x0F, 0x30,                         // wrmsr
        0x66, 0xB9, 0x01, 0x00, 0x00, 0x40, // mov ecx, HV_X64_MSR_HYPERCALL
        0x66, 0xB8, 0x01, 0x30, 0x00, 0x00, // mov eax, PAGE_GPA | enable
        0x66, 0x31, 0xD2,                   // xor edx, edx
        0x0F, 0x30,                         // wrmsr
        0x66, 0xB9, 0x5D, 0x00, 0x01, 0x00, // mov ecx, HvSignalEvent | fast
        0x66, 0xBA, 0x45, 0x23, 0x01, 0x00, // mov edx, connection id 0x12345
        0xE8, 0x00, 0x00,                   // call PAGE_GPA (rel16 patched below)
        0x66, 0xA3, 0x00, 0x20,             // mov [RESULT_GPA], eax
        0x66, 0xB9, 0x46, 0x00, 0x00, 0x00, // mov ecx, HvGetPartitionId (unsupported)
        0xE8, 0x00, 0x00,                   // call PAGE_GPA
        0xF4,                               // hlt
    };
    for (std::size_t i = 0; i < code.size(); ++i) {
        if (code[i] == 0xE8 && code[i + 1] == 0 && code[i + 2] == 0) {
            auto const rel = static_cast<std::uint16_t>(PAGE_GPA - (CODE_GPA + i + 3));
            code[i + 1] = static_cast<std::uint8_t>(rel);
            code[i + 2] = static_cast<std::uint8_t>(rel >> 8);
        }
    }
    return code;
}

class HypercallKvmTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        auto system = kvm::KvmSystem::open();
        if (!system)
            GTEST_SKIP() << "no usable KVM: " << system.error().message();
        auto vm = RealModeVm::create(std::move(*system), GUEST_RAM_BYTES);
        ASSERT_TRUE(vm) << vm.error().message();
        m_vm = std::move(*vm);
        m_partition = std::make_unique<Partition>(m_vm->ram().memory(), m_interrupts, PartitionConfig { 1, TSC_HZ, APIC_HZ });
        m_partition->set_hypercall_sink(&m_sink);
        auto const msrs = Partition::msrs();
        ASSERT_TRUE(m_vm->vm().set_msr_filter(msrs)); // The VMM's own filter (vmm/kvm KvmVm).
        auto vcpu = m_vm->add_vcpu(0, CODE_GPA, 0x8000);
        ASSERT_TRUE(vcpu) << vcpu.error().message();
        m_vcpu = *vcpu;
    }

    // Runs until HLT, serving MSR and hypercall-port exits like the VMM's vCPU loop.
    void run_to_halt()
    {
        for (int exits = 0; exits < 100; ++exits) {
            auto exit = m_vcpu->run();
            ASSERT_TRUE(exit) << exit.error().message();
            if (std::holds_alternative<kvm::Halt>(*exit))
                return;
            if (serve_msr_exit(*m_partition, 0, *exit))
                continue;
            auto const* out = std::get_if<kvm::PioOut>(&*exit);
            ASSERT_NE(out, nullptr) << "unexpected exit, variant index " << exit->index();
            ASSERT_EQ(out->port, firmware::HYPERCALL_PORT);
            auto regs = m_vcpu->get_regs();
            ASSERT_TRUE(regs);
            HypercallRegs call { regs->rax, regs->rcx, regs->rdx, regs->r8 };
            m_partition->hypercall(0, call);
            regs->rax = call.rax; // RIP unchanged: KVM completes the OUT on the next KVM_RUN.
            ASSERT_TRUE(m_vcpu->set_regs(*regs));
            ++m_hypercall_exits;
        }
        FAIL() << "guest never halted";
    }

    std::unique_ptr<RealModeVm> m_vm;
    kvm::KvmVcpu* m_vcpu = nullptr;
    RecordingInterrupts m_interrupts;
    RecordingHypercalls m_sink;
    std::unique_ptr<Partition> m_partition;
    int m_hypercall_exits = 0;
};

TEST_F(HypercallKvmTest, RealModeGuestEnablesTheHypercallPageAndGetsStatusesInRax)
{
    auto const code = guest_program();
    m_vm->ram().write_bytes(CODE_GPA, std::as_bytes(std::span { code }));
    run_to_halt();
    if (HasFatalFailure())
        return;
    EXPECT_TRUE(m_partition->hypercall_page_enabled());
    EXPECT_EQ(m_hypercall_exits, 2);
    ASSERT_EQ(m_sink.signals.size(), 1u);
    EXPECT_EQ(m_sink.signals[0], (RecordingHypercalls::Signal { 0, 0x12345, 0 }));
    EXPECT_EQ(m_vm->ram().read<std::uint32_t>(RESULT_GPA), 0u);
    auto regs = m_vcpu->get_regs();
    ASSERT_TRUE(regs);
    EXPECT_EQ(regs->rax & 0xFFFF, HV_STATUS_INVALID_HYPERCALL_CODE);
}

} // namespace
} // namespace vmm::hyperv::test

// SPDX-License-Identifier: MIT
// Probes, on this host's real KVM (suite `kvm`), the two interrupt paths the Hyper-V guest
// depends on: KVM_SIGNAL_MSI into the in-kernel LAPIC (how InterruptSink delivers SynIC and
// IPI-hypercall vectors) and an architectural x2APIC IPI (ICR MSR 0x830), which Linux still
// uses for the first wake-up of each AP before its VP index is known (hv_apic.c:230, test-guest
// §7 calls it untested); and whether a vCPU halted with KVM_SET_MP_STATE wakes for an interrupt
// with IF=0 (why GUEST_IDLE is not offered). Two real-mode vCPUs with x2APIC enabled, KVM only through vmm/kvm
// (RealModeVm); skips (exit 77) without a KVM that vmm/kvm can use.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <span>
#include <thread>
#include <utility>
#include <variant>

#include <gtest/gtest.h>

#include "tests/unit/hyperv/real_mode_vm.hpp"

namespace vmm::hyperv::test {
namespace {

constexpr std::uint64_t RAM_BYTES = 0x1'0000;
constexpr std::uint8_t VECTOR = 0x40;
constexpr std::uint16_t PORT_READY = 0x92;    // AP: x2APIC enabled, interrupts on.
constexpr std::uint16_t PORT_RECEIVED = 0x91; // AP: vector 0x40 handled.
constexpr std::uint16_t PORT_SENT = 0x90;     // BSP: ICR written.

// Real-mode code: enable x2APIC (IA32_APIC_BASE bits 10-11) and the APIC (SVR 0x80F = 0x1FF).
constexpr std::uint8_t ENABLE_X2APIC[] = {
    0x66, 0xB9, 0x1B, 0x00, 0x00, 0x00, // mov ecx, IA32_APIC_BASE
    0x0F, 0x32,                         // rdmsr
    0x66, 0x0D, 0x00, 0x0C, 0x00, 0x00, // or eax, 0xC00
    0x0F, 0x30,                         // wrmsr
    0x66, 0xB9, 0x0F, 0x08, 0x00, 0x00, // mov ecx, x2APIC SVR
    0x66, 0xB8, 0xFF, 0x01, 0x00, 0x00, // mov eax, 0x1FF
    0x66, 0x31, 0xD2,                   // xor edx, edx
    0x0F, 0x30,                         // wrmsr
};
constexpr std::uint8_t AP_MAIN[] = { 0xE6, PORT_READY, 0xFB, 0xF4, 0xEB, 0xFD }; // out; sti; 1: hlt; jmp 1b
constexpr std::uint8_t AP_HANDLER[] = {
    0xE6, PORT_RECEIVED,                // out PORT_RECEIVED, al
    0x66, 0xB9, 0x0B, 0x08, 0x00, 0x00, // mov ecx, x2APIC EOI
    0x66, 0x31, 0xC0,                   // xor eax, eax
    0x66, 0x31, 0xD2,                   // xor edx, edx
    0x0F, 0x30,                         // wrmsr
    0xCF,                               // iret
};
constexpr std::uint8_t BSP_SEND[] = {
    0x66, 0xB9, 0x30, 0x08, 0x00, 0x00, // mov ecx, x2APIC ICR
    0x66, 0xB8, VECTOR, 0x40, 0x00, 0x00, // mov eax, fixed | assert | vector
    0x66, 0xBA, 0x01, 0x00, 0x00, 0x00, // mov edx, destination APIC id 1
    0x0F, 0x30,                         // wrmsr
    0xE6, PORT_SENT,                    // out PORT_SENT, al
    0xF4,                               // hlt
};
constexpr std::uint64_t BSP_CODE = 0x1000;
constexpr std::uint64_t AP_CODE = 0x2000;
constexpr std::uint64_t AP_HANDLER_GPA = 0x3000;
// Guest idle probe (docs/guest-interface.md §2.2): the AP sets IF, reports ready and spins; the
// host then halts it with KVM_SET_MP_STATE, as a VMM completing a GUEST_IDLE read would.
constexpr std::uint8_t AP_IDLE_IF0[] = { 0xFA, 0xE6, PORT_READY, 0xEB, 0xFE }; // cli; out; jmp $
constexpr std::uint8_t AP_IDLE_IF1[] = { 0xFB, 0xE6, PORT_READY, 0xEB, 0xFE }; // sti; out; jmp $
constexpr std::uint64_t AP_IDLE_IF0_CODE = 0x4000;
constexpr std::uint64_t AP_IDLE_IF1_CODE = 0x5000;

void no_op_signal(int) { }

class IpiKvmTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        auto system = kvm::KvmSystem::open();
        if (!system)
            GTEST_SKIP() << "no usable KVM: " << system.error().message();
        auto vm = RealModeVm::create(std::move(*system), RAM_BYTES);
        ASSERT_TRUE(vm) << vm.error().message();
        m_vm = std::move(*vm);
        ASSERT_TRUE(m_vm->create_irqchip());
        load_code();
        auto const supported = m_vm->system().supported_cpuid();
        ASSERT_TRUE(supported) << supported.error().message();
        for (std::uint32_t i = 0; i < 2; ++i) {
            auto cpuid = *supported;
            for (auto& entry : cpuid) {
                if (entry.function == 1) {
                    entry.ecx |= 1u << 21;                                // x2APIC
                    entry.ebx = (entry.ebx & 0x00FF'FFFF) | (i << 24);    // APIC id
                }
            }
            auto vcpu = m_vm->add_vcpu(i, i == 0 ? BSP_CODE : AP_CODE, 0x8000 + i * 0x1000, &cpuid);
            ASSERT_TRUE(vcpu) << vcpu.error().message();
        }
        struct sigaction action {};
        action.sa_handler = no_op_signal; // No SA_RESTART: a kick makes KVM_RUN return EINTR.
        ASSERT_EQ(::sigaction(SIGUSR2, &action, nullptr), 0);
    }

    void load_code()
    {
        auto place = [&](std::uint64_t gpa, std::span<std::uint8_t const> a, std::span<std::uint8_t const> b) {
            m_vm->ram().write_bytes(gpa, std::as_bytes(a));
            m_vm->ram().write_bytes(gpa + a.size(), std::as_bytes(b));
        };
        place(BSP_CODE, ENABLE_X2APIC, BSP_SEND);
        place(AP_CODE, ENABLE_X2APIC, AP_MAIN);
        place(AP_HANDLER_GPA, AP_HANDLER, {});
        place(AP_IDLE_IF0_CODE, ENABLE_X2APIC, AP_IDLE_IF0);
        place(AP_IDLE_IF1_CODE, ENABLE_X2APIC, AP_IDLE_IF1);
        std::uint16_t const ivt_entry[2] = { static_cast<std::uint16_t>(AP_HANDLER_GPA), 0 }; // offset, segment
        m_vm->ram().write_bytes(VECTOR * 4, std::as_bytes(std::span { ivt_entry }));
    }

    // Runs vCPU `index` until it writes `port` (true) or is kicked / fails (false).
    bool run_until_port(std::uint32_t index, std::uint16_t port)
    {
        kvm::KvmVcpu& vcpu = m_vm->vcpu(index);
        for (int exits = 0; exits < 1000; ++exits) {
            auto exit = vcpu.run();
            if (!exit)
                return false;
            auto const* out = std::get_if<kvm::PioOut>(&*exit);
            if (!out)
                return false; // Interrupted: the watchdog's kick.
            if (out->port == port)
                return true;
        }
        return false;
    }

    // Runs the AP on a thread until it has reported the vector `wanted` times or `timeout`
    // passed; then kicks it out of KVM_RUN (it sleeps in HLT inside KVM) and joins it.
    int ap_receptions(int wanted, std::chrono::seconds timeout, auto&& trigger)
    {
        std::atomic<int> received { 0 };
        std::atomic<bool> ready { false };
        std::atomic<bool> finished { false };
        std::thread ap([&] {
            if (run_until_port(1, PORT_READY)) {
                ready = true;
                while (received < wanted && run_until_port(1, PORT_RECEIVED))
                    ++received;
            }
            finished = true;
        });
        auto const deadline = std::chrono::steady_clock::now() + timeout;
        while (!ready && !finished && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        if (ready) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50)); // Let the AP reach HLT.
            trigger();
        }
        while (!finished && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        // immediate_exit catches a kick that lands outside KVM_RUN; the signal ends one in HLT.
        m_vm->vcpu(1).request_immediate_exit();
        while (!finished) {
            ::pthread_kill(ap.native_handle(), SIGUSR2);
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        ap.join();
        return received;
    }

    // The AP runs `code` until it reports ready, is put into MpState::Halted, then gets an MSI;
    // returns whether the vector's handler ran within `timeout` (else it is kicked) and the
    // AP's mp_state at the end.
    std::pair<bool, kvm::MpState> halted_ap_gets_msi(std::uint64_t code, std::chrono::milliseconds timeout)
    {
        kvm::KvmVcpu& ap_vcpu = m_vm->vcpu(1);
        auto regs = ap_vcpu.get_regs();
        EXPECT_TRUE(regs);
        regs->rip = code;
        EXPECT_TRUE(ap_vcpu.set_regs(*regs));
        std::atomic<bool> ready { false };
        std::atomic<bool> finished { false };
        bool handled = false;
        std::thread ap([&] {
            if (run_until_port(1, PORT_READY)) {
                auto const halted = ap_vcpu.set_mp_state(kvm::MpState::Halted);
                EXPECT_TRUE(halted) << halted.error().message();
                ready = true;
                handled = run_until_port(1, PORT_RECEIVED);
            }
            finished = true;
        });
        auto const deadline = std::chrono::steady_clock::now() + timeout;
        while (!ready && !finished && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        if (ready) {
            auto const sent = m_vm->vm().signal_msi(0xFEE0'0000 | (1u << 12), VECTOR);
            EXPECT_TRUE(sent) << sent.error().message();
        }
        while (!finished && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        ap_vcpu.request_immediate_exit();
        while (!finished) {
            ::pthread_kill(ap.native_handle(), SIGUSR2);
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        ap.join();
        auto const state = ap_vcpu.get_mp_state();
        EXPECT_TRUE(state) << state.error().message();
        return { handled, state.value_or(kvm::MpState::Uninitialized) };
    }

    std::unique_ptr<RealModeVm> m_vm;
};

TEST_F(IpiKvmTest, SignalMsiReachesTheLapicOfTheTargetVcpu)
{
    int const received = ap_receptions(1, std::chrono::seconds(5), [&] {
        // Physical destination APIC id 1; fixed, edge.
        auto const sent = m_vm->vm().signal_msi(0xFEE0'0000 | (1u << 12), VECTOR);
        EXPECT_TRUE(sent) << sent.error().message();
    });
    EXPECT_EQ(received, 1);
}

// Why GUEST_IDLE is not offered (docs/guest-interface.md §2.2): a VMM would complete the read
// and halt the vCPU in KVM, but Linux reads the MSR with interrupts disabled
// (hv_spinlock.c:46-53) and a halted vCPU wakes only for an interrupt it can take
// (arch/x86/kvm/x86.c:13073), so the TLFS's "wake on interrupt" never happens.
TEST_F(IpiKvmTest, HaltedVcpuWakesForAnInterruptOnlyWithInterruptsEnabled)
{
    auto const [woke, state] = halted_ap_gets_msi(AP_IDLE_IF1_CODE, std::chrono::seconds(5));
    EXPECT_TRUE(woke);
    EXPECT_EQ(state, kvm::MpState::Runnable);
}

TEST_F(IpiKvmTest, HaltedVcpuWithInterruptsDisabledSleepsThroughAnInterrupt)
{
    auto const [woke, state] = halted_ap_gets_msi(AP_IDLE_IF0_CODE, std::chrono::milliseconds(500));
    EXPECT_FALSE(woke);
    EXPECT_EQ(state, kvm::MpState::Halted) << "a pending interrupt woke it";
}

TEST_F(IpiKvmTest, X2apicIcrIpiFromAnotherVcpuIsDelivered)
{
    bool sent = false;
    int const received = ap_receptions(1, std::chrono::seconds(5), [&] { sent = run_until_port(0, PORT_SENT); });
    EXPECT_TRUE(sent);
    EXPECT_EQ(received, 1) << "x2APIC IPIs are not delivered on this host";
}

} // namespace
} // namespace vmm::hyperv::test

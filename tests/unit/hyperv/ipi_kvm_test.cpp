// SPDX-License-Identifier: MIT
// Probes, on this host's real KVM (suite `kvm`), the two interrupt paths the Hyper-V guest
// depends on: KVM_SIGNAL_MSI into the in-kernel LAPIC (how InterruptSink delivers SynIC and
// IPI-hypercall vectors) and an architectural x2APIC IPI (ICR MSR 0x830), which Linux still
// uses for the first wake-up of each AP before its VP index is known (hv_apic.c:230, test-guest
// §7 calls it untested); and whether a vCPU halted by KVM_SET_MP_STATE wakes for an interrupt
// with IF=0 (why GUEST_IDLE is not offered). Two real-mode vCPUs with x2APIC enabled; skips
// without /dev/kvm.
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "base/fd.hpp"
#include "base/mapping.hpp"

namespace vmm::hyperv::test {
namespace {

// struct kvm_cpuid2 has a flexible array the C++ uapi header mis-sizes (see vmm/kvm/kvm_abi.hpp):
// use the C layout and ioctl numbers.
struct Cpuid2Header {
    std::uint32_t nent;
    std::uint32_t padding;
};
constexpr unsigned long GET_SUPPORTED_CPUID = _IOWR(KVMIO, 0x05, Cpuid2Header);
constexpr unsigned long SET_CPUID2 = _IOW(KVMIO, 0x90, Cpuid2Header);
constexpr std::size_t MAX_CPUID_ENTRIES = 256;
struct CpuidBlock {
    Cpuid2Header header;
    kvm_cpuid_entry2 entries[MAX_CPUID_ENTRIES];
};

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
    struct Vcpu {
        Fd fd;
        Mapping run_mapping;
        kvm_run* run = nullptr;
    };

    void SetUp() override
    {
        m_kvm = Fd { ::open("/dev/kvm", O_RDWR | O_CLOEXEC) };
        if (m_kvm.get() < 0)
            GTEST_SKIP() << "no /dev/kvm";
        m_vm = Fd { ::ioctl(m_kvm.get(), KVM_CREATE_VM, 0) };
        ASSERT_GE(m_vm.get(), 0);
        ASSERT_EQ(::ioctl(m_vm.get(), KVM_CREATE_IRQCHIP, 0), 0) << std::strerror(errno);
        auto ram = Mapping::anonymous(RAM_BYTES, PROT_READ | PROT_WRITE);
        ASSERT_TRUE(ram.has_value());
        m_ram = std::move(*ram);
        kvm_userspace_memory_region region {};
        region.memory_size = RAM_BYTES;
        region.userspace_addr = reinterpret_cast<std::uint64_t>(m_ram.bytes().data()); // ABI: host address.
        ASSERT_EQ(::ioctl(m_vm.get(), KVM_SET_USER_MEMORY_REGION, &region), 0);
        load_code();
        m_cpuid = std::make_unique<CpuidBlock>();
        m_cpuid->header.nent = MAX_CPUID_ENTRIES;
        ASSERT_EQ(::ioctl(m_kvm.get(), GET_SUPPORTED_CPUID, m_cpuid.get()), 0) << std::strerror(errno);
        for (std::uint32_t i = 0; i < 2; ++i)
            create_vcpu(i, i == 0 ? BSP_CODE : AP_CODE);
        struct sigaction action {};
        action.sa_handler = no_op_signal; // No SA_RESTART: a kick makes KVM_RUN return EINTR.
        ASSERT_EQ(::sigaction(SIGUSR2, &action, nullptr), 0);
    }

    void load_code()
    {
        auto place = [&](std::uint64_t gpa, std::span<std::uint8_t const> a, std::span<std::uint8_t const> b) {
            std::memcpy(m_ram.bytes().data() + gpa, a.data(), a.size());
            std::memcpy(m_ram.bytes().data() + gpa + a.size(), b.data(), b.size());
        };
        place(BSP_CODE, ENABLE_X2APIC, BSP_SEND);
        place(AP_CODE, ENABLE_X2APIC, AP_MAIN);
        place(AP_HANDLER_GPA, AP_HANDLER, {});
        place(AP_IDLE_IF0_CODE, ENABLE_X2APIC, AP_IDLE_IF0);
        place(AP_IDLE_IF1_CODE, ENABLE_X2APIC, AP_IDLE_IF1);
        std::uint16_t const ivt_entry[2] = { static_cast<std::uint16_t>(AP_HANDLER_GPA), 0 }; // offset, segment
        std::memcpy(m_ram.bytes().data() + VECTOR * 4, ivt_entry, sizeof(ivt_entry));
    }

    void create_vcpu(std::uint32_t index, std::uint64_t rip)
    {
        Vcpu vcpu;
        vcpu.fd = Fd { ::ioctl(m_vm.get(), KVM_CREATE_VCPU, index) };
        ASSERT_GE(vcpu.fd.get(), 0);
        int const run_bytes = ::ioctl(m_kvm.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
        auto run = Mapping::of_fd(vcpu.fd, 0, static_cast<std::uint64_t>(run_bytes), PROT_READ | PROT_WRITE, MAP_SHARED);
        ASSERT_TRUE(run.has_value());
        vcpu.run_mapping = std::move(*run);
        vcpu.run = reinterpret_cast<kvm_run*>(vcpu.run_mapping.bytes().data()); // The kvm_run ABI page.
        auto cpuid = *m_cpuid;
        for (std::uint32_t i = 0; i < cpuid.header.nent; ++i) {
            if (cpuid.entries[i].function == 1) {
                cpuid.entries[i].ecx |= 1u << 21;                               // x2APIC
                cpuid.entries[i].ebx = (cpuid.entries[i].ebx & 0x00FF'FFFF) | (index << 24); // APIC id
            }
        }
        ASSERT_EQ(::ioctl(vcpu.fd.get(), SET_CPUID2, &cpuid), 0) << std::strerror(errno);
        kvm_mp_state runnable { KVM_MP_STATE_RUNNABLE }; // APs start in INIT-wait otherwise.
        ASSERT_EQ(::ioctl(vcpu.fd.get(), KVM_SET_MP_STATE, &runnable), 0);
        kvm_sregs sregs {};
        ASSERT_EQ(::ioctl(vcpu.fd.get(), KVM_GET_SREGS, &sregs), 0);
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        ASSERT_EQ(::ioctl(vcpu.fd.get(), KVM_SET_SREGS, &sregs), 0);
        kvm_regs regs {};
        regs.rip = rip;
        regs.rsp = 0x8000 + index * 0x1000;
        regs.rflags = 0x2;
        ASSERT_EQ(::ioctl(vcpu.fd.get(), KVM_SET_REGS, &regs), 0);
        m_vcpus.push_back(std::move(vcpu));
    }

    // Runs vCPU `index` until it writes `port` (true) or is kicked / fails (false).
    bool run_until_port(std::uint32_t index, std::uint16_t port)
    {
        Vcpu& vcpu = m_vcpus[index];
        for (int exits = 0; exits < 1000; ++exits) {
            if (::ioctl(vcpu.fd.get(), KVM_RUN, 0) != 0)
                return false; // EINTR from the watchdog kick.
            if (vcpu.run->exit_reason != KVM_EXIT_IO)
                return false;
            if (vcpu.run->io.port == port)
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
        while (!finished) { // A kick that lands outside KVM_RUN is lost, so repeat it.
            ::pthread_kill(ap.native_handle(), SIGUSR2);
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        ap.join();
        return received;
    }

    // The AP runs `code` until it reports ready, is put into KVM_MP_STATE_HALTED, and then gets
    // an MSI; returns whether the vector's handler ran within `timeout` (else it is kicked) and
    // the AP's mp_state at the end.
    std::pair<bool, std::uint32_t> halted_ap_gets_msi(std::uint64_t code, std::chrono::milliseconds timeout)
    {
        kvm_regs regs {};
        EXPECT_EQ(::ioctl(m_vcpus[1].fd.get(), KVM_GET_REGS, &regs), 0);
        regs.rip = code;
        EXPECT_EQ(::ioctl(m_vcpus[1].fd.get(), KVM_SET_REGS, &regs), 0);
        std::atomic<bool> ready { false };
        std::atomic<bool> finished { false };
        bool handled = false;
        std::thread ap([&] {
            if (run_until_port(1, PORT_READY)) {
                kvm_mp_state halted { KVM_MP_STATE_HALTED };
                EXPECT_EQ(::ioctl(m_vcpus[1].fd.get(), KVM_SET_MP_STATE, &halted), 0) << std::strerror(errno);
                ready = true;
                handled = run_until_port(1, PORT_RECEIVED);
            }
            finished = true;
        });
        auto const deadline = std::chrono::steady_clock::now() + timeout;
        while (!ready && !finished && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        if (ready) {
            kvm_msi msi {};
            msi.address_lo = 0xFEE0'0000 | (1u << 12); // Physical destination APIC id 1.
            msi.data = VECTOR;
            EXPECT_EQ(::ioctl(m_vm.get(), KVM_SIGNAL_MSI, &msi), 1) << std::strerror(errno);
        }
        while (!finished && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        while (!finished) {
            ::pthread_kill(ap.native_handle(), SIGUSR2);
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        ap.join();
        kvm_mp_state state {};
        EXPECT_EQ(::ioctl(m_vcpus[1].fd.get(), KVM_GET_MP_STATE, &state), 0);
        return { handled, state.mp_state };
    }

    Fd m_kvm;
    Fd m_vm;
    Mapping m_ram;
    std::unique_ptr<CpuidBlock> m_cpuid;
    std::vector<Vcpu> m_vcpus;
};

TEST_F(IpiKvmTest, SignalMsiReachesTheLapicOfTheTargetVcpu)
{
    int const received = ap_receptions(1, std::chrono::seconds(5), [&] {
        kvm_msi msi {};
        msi.address_lo = 0xFEE0'0000 | (1u << 12); // Physical destination APIC id 1.
        msi.data = VECTOR;                          // Fixed, edge.
        EXPECT_EQ(::ioctl(m_vm.get(), KVM_SIGNAL_MSI, &msi), 1) << std::strerror(errno);
    });
    EXPECT_EQ(received, 1);
}

// Why GUEST_IDLE is not offered (docs/guest-interface.md §2.2): a VMM would complete the read
// and halt the vCPU in KVM, but Linux reads the MSR with interrupts disabled
// (hv_spinlock.c:46-53) and a halted vCPU wakes only for an interrupt it can take
// (arch/x86/kvm/x86.c:13073), so the TLFS's "wake on interrupt" never happens.
TEST_F(IpiKvmTest, HaltedVcpuWakesForAnInterruptOnlyWithInterruptsEnabled)
{
    auto const [woke_if1, state_if1] = halted_ap_gets_msi(AP_IDLE_IF1_CODE, std::chrono::seconds(5));
    EXPECT_TRUE(woke_if1);
    EXPECT_EQ(state_if1, static_cast<std::uint32_t>(KVM_MP_STATE_RUNNABLE));
}

TEST_F(IpiKvmTest, HaltedVcpuWithInterruptsDisabledSleepsThroughAnInterrupt)
{
    auto const [woke_if0, state_if0] = halted_ap_gets_msi(AP_IDLE_IF0_CODE, std::chrono::milliseconds(500));
    EXPECT_FALSE(woke_if0);
    EXPECT_EQ(state_if0, static_cast<std::uint32_t>(KVM_MP_STATE_HALTED)) << "a pending interrupt woke it";
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

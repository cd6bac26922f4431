// SPDX-License-Identifier: MIT
// The hypercall path on the real KVM of this host (suite `kvm`): a real-mode guest writes
// GUEST_OS_ID and HYPERCALL (user-space MSR exits through a filter), then `call`s the page the
// Partition wrote, whose `out HYPERCALL_PORT, al` exits to us; we answer in rax with RIP left
// alone (guest-interface §3.1) and the guest continues after its call with that status. Skips without
// /dev/kvm or the user-space MSR capabilities.
#include "vmm/hyperv/partition.hpp" // Header under test first.

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include <gtest/gtest.h>

#include "base/fd.hpp"
#include "base/mapping.hpp"
#include "firmware/layout.hpp"
#include "tests/unit/hyperv/hyperv_fakes.hpp"

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
        m_kvm = Fd { ::open("/dev/kvm", O_RDWR | O_CLOEXEC) };
        if (m_kvm.get() < 0)
            GTEST_SKIP() << "no /dev/kvm";
        if (::ioctl(m_kvm.get(), KVM_CHECK_EXTENSION, KVM_CAP_X86_USER_SPACE_MSR) <= 0
            || ::ioctl(m_kvm.get(), KVM_CHECK_EXTENSION, KVM_CAP_X86_MSR_FILTER) <= 0)
            GTEST_SKIP() << "no user-space MSR exits";
        m_vm = Fd { ::ioctl(m_kvm.get(), KVM_CREATE_VM, 0) };
        ASSERT_GE(m_vm.get(), 0);
        auto ram = Mapping::anonymous(GUEST_RAM_BYTES, PROT_READ | PROT_WRITE);
        ASSERT_TRUE(ram.has_value());
        m_ram = std::move(*ram);
        kvm_userspace_memory_region region {};
        region.memory_size = GUEST_RAM_BYTES;
        region.userspace_addr = reinterpret_cast<std::uint64_t>(m_ram.bytes().data()); // ABI: host address.
        ASSERT_EQ(::ioctl(m_vm.get(), KVM_SET_USER_MEMORY_REGION, &region), 0);
        auto memory = mem::GuestMemory::from_regions({ mem::RamRegion { mem::Gpa { 0 }, m_ram.bytes() } });
        ASSERT_TRUE(memory.has_value());
        m_memory = std::move(*memory);
        m_partition = std::make_unique<Partition>(m_memory, m_interrupts, PartitionConfig { 1, TSC_HZ, APIC_HZ });
        m_partition->set_hypercall_sink(&m_sink);
        install_msr_filter();
        create_vcpu();
    }

    void install_msr_filter()
    {
        kvm_enable_cap cap {};
        cap.cap = KVM_CAP_X86_USER_SPACE_MSR;
        cap.args[0] = KVM_MSR_EXIT_REASON_FILTER;
        ASSERT_EQ(::ioctl(m_vm.get(), KVM_ENABLE_CAP, &cap), 0);
        auto const msrs = Partition::msrs();
        m_filter_bitmap.assign((msrs.size() + 7) / 8, 0); // 0 = deny in KVM, i.e. exit to us.
        kvm_msr_filter filter {};
        filter.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
        filter.ranges[0].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
        filter.ranges[0].base = msrs.front();
        filter.ranges[0].nmsrs = static_cast<std::uint32_t>(msrs.size());
        filter.ranges[0].bitmap = m_filter_bitmap.data();
        ASSERT_EQ(::ioctl(m_vm.get(), KVM_X86_SET_MSR_FILTER, &filter), 0);
    }

    void create_vcpu()
    {
        m_vcpu = Fd { ::ioctl(m_vm.get(), KVM_CREATE_VCPU, 0) };
        ASSERT_GE(m_vcpu.get(), 0);
        int const run_bytes = ::ioctl(m_kvm.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
        ASSERT_GT(run_bytes, 0);
        auto run = Mapping::of_fd(m_vcpu, 0, static_cast<std::uint64_t>(run_bytes), PROT_READ | PROT_WRITE, MAP_SHARED);
        ASSERT_TRUE(run.has_value());
        m_run_mapping = std::move(*run);
        m_run = reinterpret_cast<kvm_run*>(m_run_mapping.bytes().data()); // The kvm_run ABI page.
        kvm_sregs sregs {};
        ASSERT_EQ(::ioctl(m_vcpu.get(), KVM_GET_SREGS, &sregs), 0);
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        ASSERT_EQ(::ioctl(m_vcpu.get(), KVM_SET_SREGS, &sregs), 0);
        kvm_regs regs {};
        regs.rip = CODE_GPA;
        regs.rsp = 0x8000;
        regs.rflags = 0x2;
        ASSERT_EQ(::ioctl(m_vcpu.get(), KVM_SET_REGS, &regs), 0);
    }

    // Runs until HLT, serving MSR and hypercall-port exits like the VMM's vCPU loop.
    void run_to_halt()
    {
        for (int exits = 0; exits < 100; ++exits) {
            ASSERT_EQ(::ioctl(m_vcpu.get(), KVM_RUN, 0), 0) << std::strerror(errno);
            switch (m_run->exit_reason) {
            case KVM_EXIT_HLT:
                return;
            case KVM_EXIT_X86_WRMSR:
                m_run->msr.error = m_partition->write_msr(0, m_run->msr.index, m_run->msr.data) ? 0 : 1;
                break;
            case KVM_EXIT_X86_RDMSR: {
                auto value = m_partition->read_msr(0, m_run->msr.index);
                m_run->msr.error = value ? 0 : 1;
                m_run->msr.data = value.value_or(0);
                break;
            }
            case KVM_EXIT_IO: {
                ASSERT_EQ(m_run->io.port, firmware::HYPERCALL_PORT);
                ASSERT_EQ(m_run->io.direction, KVM_EXIT_IO_OUT);
                kvm_regs regs {};
                ASSERT_EQ(::ioctl(m_vcpu.get(), KVM_GET_REGS, &regs), 0);
                HypercallRegs call { regs.rax, regs.rcx, regs.rdx, regs.r8 };
                m_partition->hypercall(0, call);
                regs.rax = call.rax; // RIP unchanged: KVM completes the OUT on the next KVM_RUN.
                ASSERT_EQ(::ioctl(m_vcpu.get(), KVM_SET_REGS, &regs), 0);
                ++m_hypercall_exits;
                break;
            }
            default:
                FAIL() << "unexpected exit " << m_run->exit_reason;
            }
        }
        FAIL() << "guest never halted";
    }

    Fd m_kvm;
    Fd m_vm;
    Fd m_vcpu;
    Mapping m_ram;
    Mapping m_run_mapping;
    kvm_run* m_run = nullptr;
    std::vector<std::uint8_t> m_filter_bitmap;
    mem::GuestMemory m_memory;
    RecordingInterrupts m_interrupts;
    RecordingHypercalls m_sink;
    std::unique_ptr<Partition> m_partition;
    int m_hypercall_exits = 0;
};

TEST_F(HypercallKvmTest, RealModeGuestEnablesTheHypercallPageAndGetsStatusesInRax)
{
    auto const code = guest_program();
    std::memcpy(m_ram.bytes().data() + CODE_GPA, code.data(), code.size());
    run_to_halt();
    if (HasFatalFailure())
        return;
    EXPECT_TRUE(m_partition->hypercall_page_enabled());
    EXPECT_EQ(m_hypercall_exits, 2);
    ASSERT_EQ(m_sink.signals.size(), 1u);
    EXPECT_EQ(m_sink.signals[0], (RecordingHypercalls::Signal { 0, 0x12345, 0 }));
    std::uint32_t first_status;
    std::memcpy(&first_status, m_ram.bytes().data() + RESULT_GPA, sizeof(first_status));
    EXPECT_EQ(first_status, 0u);
    kvm_regs regs {};
    ASSERT_EQ(::ioctl(m_vcpu.get(), KVM_GET_REGS, &regs), 0);
    EXPECT_EQ(regs.rax & 0xFFFF, HV_STATUS_INVALID_HYPERCALL_CODE);
}

} // namespace
} // namespace vmm::hyperv::test

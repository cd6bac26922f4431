// SPDX-License-Identifier: MIT
// KVM_IOEVENTFD through vmm/kvm on the host's real KVM (the doorbell path PCI devices use):
// a guest write of the registered length signals the eventfd without an exit; another length
// still exits; after removal the same write exits again. MMIO and port I/O.
#include <gtest/gtest.h>

#include <sys/eventfd.h>
#include <unistd.h>

#include "base/fd.hpp"
#include "tests/unit/hyperv/real_mode_vm.hpp"

namespace vmm {
namespace {

using hyperv::test::RealModeVm;

constexpr std::uint64_t RAM_BYTES = 64 * 1024;
constexpr std::uint64_t CODE = 0x1000;
constexpr std::uint64_t DOORBELL = 0x20000; // Outside RAM: MMIO.
constexpr std::uint16_t PORT = 0xC010;

// Real mode, 16-bit: ds = 0x2000; word [0] = 0xBEEF; word [0] = 0xDEAD; byte [0] = 0x42;
// dx = 0xC010; out dx, ax; hlt.
constexpr std::uint8_t PROGRAM[] = {
    0xB8, 0x00, 0x20,                   // mov ax, 0x2000
    0x8E, 0xD8,                         // mov ds, ax
    0xC7, 0x06, 0x00, 0x00, 0xEF, 0xBE, // mov word [0], 0xBEEF
    0xC7, 0x06, 0x00, 0x00, 0xAD, 0xDE, // mov word [0], 0xDEAD
    0xC6, 0x06, 0x00, 0x00, 0x42,       // mov byte [0], 0x42
    0xBA, 0x10, 0xC0,                   // mov dx, 0xC010
    0xEF,                               // out dx, ax
    0xF4,                               // hlt
};

std::uint64_t drain(int fd)
{
    std::uint64_t count = 0;
    if (::read(fd, &count, sizeof(count)) != sizeof(count))
        return 0; // EAGAIN: not signalled.
    return count;
}

struct Exits {
    std::vector<std::pair<std::uint64_t, std::size_t>> mmio_writes;
    std::vector<std::pair<std::uint16_t, std::size_t>> pio_outs;
};

Exits run_to_halt(kvm::KvmVcpu& vcpu)
{
    Exits exits;
    for (int i = 0; i < 100; ++i) {
        auto exit = vcpu.run();
        if (!exit)
            break;
        if (auto const* write = std::get_if<kvm::MmioWrite>(&*exit))
            exits.mmio_writes.emplace_back(write->gpa.raw(), write->data.size());
        else if (auto const* out = std::get_if<kvm::PioOut>(&*exit))
            exits.pio_outs.emplace_back(out->port, out->size);
        else
            break; // Halt (or anything else) ends the program.
    }
    return exits;
}

TEST(IoEventFdKvm, RegisteredWritesSignalTheEventfdInsteadOfExiting)
{
    auto system = kvm::KvmSystem::open();
    if (!system)
        GTEST_SKIP() << "no usable KVM: " << system.error().message();
    auto vm = RealModeVm::create(std::move(*system), RAM_BYTES);
    ASSERT_TRUE(vm) << vm.error().message();
    (*vm)->ram().write_bytes(CODE, std::as_bytes(std::span { PROGRAM }));
    Fd mmio_fd { ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) };
    Fd pio_fd { ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) };
    ASSERT_GE(mmio_fd.get(), 0);
    ASSERT_GE(pio_fd.get(), 0);
    auto& kvm_vm = (*vm)->vm();
    ASSERT_TRUE(kvm_vm.add_ioeventfd(false, DOORBELL, 2, mmio_fd.get()));
    ASSERT_TRUE(kvm_vm.add_ioeventfd(true, PORT, 2, pio_fd.get()));
    EXPECT_FALSE(kvm_vm.add_ioeventfd(false, DOORBELL, 3, mmio_fd.get())) << "length 3 is refused";

    auto vcpu = (*vm)->add_vcpu(0, CODE, 0x8000);
    ASSERT_TRUE(vcpu) << vcpu.error().message();
    auto exits = run_to_halt(**vcpu);
    EXPECT_EQ(drain(mmio_fd.get()), 2u) << "both word writes signalled";
    EXPECT_EQ(drain(pio_fd.get()), 1u);
    EXPECT_EQ(exits.mmio_writes, (std::vector<std::pair<std::uint64_t, std::size_t>> { { DOORBELL, 1 } }))
        << "only the byte write (another length) exits";
    EXPECT_TRUE(exits.pio_outs.empty());

    // Removed (as when a BAR moves): the same writes exit to user space again.
    ASSERT_TRUE(kvm_vm.remove_ioeventfd(false, DOORBELL, 2, mmio_fd.get()));
    ASSERT_TRUE(kvm_vm.remove_ioeventfd(true, PORT, 2, pio_fd.get()));
    EXPECT_FALSE(kvm_vm.remove_ioeventfd(false, DOORBELL, 2, mmio_fd.get())) << "nothing left to remove";
    auto vcpu2 = (*vm)->add_vcpu(1, CODE, 0x9000);
    ASSERT_TRUE(vcpu2) << vcpu2.error().message();
    exits = run_to_halt(**vcpu2);
    EXPECT_EQ(drain(mmio_fd.get()), 0u);
    EXPECT_EQ(drain(pio_fd.get()), 0u);
    EXPECT_EQ(exits.mmio_writes.size(), 3u);
    EXPECT_EQ(exits.pio_outs, (std::vector<std::pair<std::uint16_t, std::size_t>> { { PORT, 2 } }));
}

} // namespace
} // namespace vmm

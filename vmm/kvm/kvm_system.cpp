// SPDX-License-Identifier: MIT
#include "vmm/kvm/kvm_system.hpp"

#include "base/startup_trace.hpp"

#include <fcntl.h>
#include "vmm/kvm/kvm_abi.hpp"
#include <sys/ioctl.h>

#include <array>
#include <cerrno>
#include <vector>
#include <string>

#include "vmm/kvm/kvm_vm.hpp"

namespace vmm::kvm {

namespace {

// Capabilities microvmm cannot run without (Documentation/virt/kvm/api.rst).
struct RequiredCapability {
    long capability;
    char const* name;
};
constexpr std::array REQUIRED = std::to_array<RequiredCapability>({
    { KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
    { KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
    { KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
    { KVM_CAP_SIGNAL_MSI, "KVM_CAP_SIGNAL_MSI" },
    { KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
    { KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE" },
});

// KVM_GET_SUPPORTED_CPUID buffer sizes: start at 128 and double up to 1024 entries (the
// kernel's KVM_MAX_CPUID_ENTRIES is 256, arch/x86/include/asm/kvm_host.h).
constexpr u32 INITIAL_CPUID_ENTRIES = 128;
constexpr u32 MAX_CPUID_ENTRIES = 1024;

} // namespace

Result<KvmSystem> KvmSystem::open(std::string_view path)
{
    startup::KvmScope timed { startup::KvmCall::Other };
    std::string const path_string { path };
    int raw = ::open(path_string.c_str(), O_RDWR | O_CLOEXEC);
    if (raw < 0)
        return fail_errno("open " + path_string);
    KvmSystem system { Fd { raw } };
    int version = ::ioctl(raw, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION)
        return fail(Errc::Unsupported, "KVM_GET_API_VERSION (want 12)", static_cast<u64>(version));
    for (auto const& required : REQUIRED) {
        if (system.check_extension(required.capability) <= 0)
            return fail(Errc::Unsupported, std::string("missing KVM capability ") + required.name);
    }
    int mmap_bytes = ::ioctl(raw, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (mmap_bytes <= 0)
        return fail_errno("KVM_GET_VCPU_MMAP_SIZE");
    system.m_vcpu_mmap_bytes = static_cast<u32>(mmap_bytes);
    // KVM_CAP_MAX_VCPUS may be absent on old kernels: then KVM_CAP_NR_VCPUS is the limit, and
    // without either 4 (api.rst, KVM_CREATE_VCPU).
    int max_vcpus = system.check_extension(KVM_CAP_MAX_VCPUS);
    if (max_vcpus <= 0)
        max_vcpus = system.check_extension(KVM_CAP_NR_VCPUS);
    system.m_max_vcpus = max_vcpus > 0 ? static_cast<u32>(max_vcpus) : 4;
    return system;
}

int KvmSystem::check_extension(long capability) const
{
    int result = ::ioctl(m_fd.get(), KVM_CHECK_EXTENSION, capability);
    return result < 0 ? 0 : result;
}

Result<CpuidTable> KvmSystem::supported_cpuid() const
{
    startup::KvmScope timed { startup::KvmCall::Other };
    // Grow the buffer while KVM says E2BIG: the kernel's own limit differs between versions
    // (this host refuses an over-large nent with EINVAL instead of clamping it).
    for (u32 capacity = INITIAL_CPUID_ENTRIES; capacity <= MAX_CPUID_ENTRIES; capacity *= 2) {
        abi::FlexBuffer<abi::Cpuid2Header, kvm_cpuid_entry2> buffer { capacity };
        buffer.header()->nent = capacity;
        if (::ioctl(m_fd.get(), abi::GET_SUPPORTED_CPUID, buffer.header()) < 0) {
            if (errno == E2BIG)
                continue;
            return fail_errno("KVM_GET_SUPPORTED_CPUID");
        }
        CpuidTable table;
        for (u32 i = 0; i < buffer.header()->nent; ++i) {
            auto const& entry = buffer.entries()[i];
            table.push_back(CpuidEntry { entry.function, entry.index,
                (entry.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) != 0, entry.eax, entry.ebx, entry.ecx,
                entry.edx });
        }
        return table;
    }
    return fail(Errc::Unsupported, "KVM_GET_SUPPORTED_CPUID needs more entries than expected", MAX_CPUID_ENTRIES);
}

Result<KvmVm> KvmSystem::create_vm() const
{
    startup::KvmScope timed { startup::KvmCall::CreateVm };
    int raw = ::ioctl(m_fd.get(), KVM_CREATE_VM, 0);
    if (raw < 0)
        return fail_errno("KVM_CREATE_VM");
    return KvmVm { Fd { raw }, m_vcpu_mmap_bytes };
}

} // namespace vmm::kvm

// SPDX-License-Identifier: MIT
// KvmSystem: the owner of /dev/kvm. Checks the API version and the capabilities microvmm
// needs, and answers system-wide questions (supported CPUID, vCPU limits, kvm_run size).
#pragma once

#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/types.hpp"
#include "vmm/cpuid.hpp"

namespace vmm::kvm {

class KvmVm;

class KvmSystem {
public:
    // Opens /dev/kvm and fails with a message naming the first missing capability.
    static Result<KvmSystem> open(std::string_view path = "/dev/kvm");

    // KVM_GET_SUPPORTED_CPUID, in our own (KVM-free) entry type.
    Result<CpuidTable> supported_cpuid() const;
    // Recommended (KVM_CAP_NR_VCPUS) and hard (KVM_CAP_MAX_VCPUS) vCPU limits.
    u32 max_vcpus() const { return m_max_vcpus; }
    u32 vcpu_mmap_bytes() const { return m_vcpu_mmap_bytes; }
    // KVM_CHECK_EXTENSION; 0 when absent.
    int check_extension(long capability) const;

    Result<KvmVm> create_vm() const;

private:
    explicit KvmSystem(Fd fd)
        : m_fd(std::move(fd))
    {
    }
    Fd m_fd;
    u32 m_max_vcpus { 1 };
    u32 m_vcpu_mmap_bytes { 0 };
};

} // namespace vmm::kvm

// SPDX-License-Identifier: MIT
// C layouts of the KVM structs that end in a flexible array. The uapi headers declare those
// arrays with __DECLARE_FLEX_ARRAY, which in C++ inserts an empty struct member (size 1 in
// C++): sizeof, the array offset and the ioctl numbers that encode sizeof all differ from the
// kernel's (KVM_GET_SUPPORTED_CPUID became 0xc00cae05 instead of 0xc008ae05 and failed with
// EINVAL). Only vmm/kvm includes this.
#pragma once

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstddef>
#include <vector>

#include "base/types.hpp"

namespace vmm::kvm::abi {

struct Cpuid2Header { // struct kvm_cpuid2 without its entries (arch/x86/include/uapi/asm/kvm.h).
    u32 nent;
    u32 padding;
};
struct MsrsHeader { // struct kvm_msrs without its entries.
    u32 nmsrs;
    u32 pad;
};
static_assert(sizeof(Cpuid2Header) == 8 && sizeof(MsrsHeader) == 8);
static_assert(sizeof(kvm_cpuid_entry2) == 40 && sizeof(kvm_msr_entry) == 16);

inline constexpr unsigned long GET_SUPPORTED_CPUID = _IOWR(KVMIO, 0x05, Cpuid2Header);
inline constexpr unsigned long SET_CPUID2 = _IOW(KVMIO, 0x90, Cpuid2Header);
inline constexpr unsigned long SET_MSRS = _IOW(KVMIO, 0x89, MsrsHeader);
inline constexpr unsigned long GET_MSRS = _IOWR(KVMIO, 0x88, MsrsHeader);

// Header followed by `count` entries, 8-byte aligned, in one zeroed block.
template<typename Header, typename Entry>
class FlexBuffer {
public:
    explicit FlexBuffer(std::size_t count)
        : m_storage((sizeof(Header) + count * sizeof(Entry) + 7) / 8)
    {
    }
    // The block is u64-aligned and sized for Header + entries; both types are C PODs.
    Header* header() { return reinterpret_cast<Header*>(m_storage.data()); }
    Entry* entries() { return reinterpret_cast<Entry*>(reinterpret_cast<std::byte*>(m_storage.data()) + sizeof(Header)); }

private:
    std::vector<u64> m_storage;
};

} // namespace vmm::kvm::abi

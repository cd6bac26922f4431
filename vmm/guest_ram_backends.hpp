// SPDX-License-Identifier: MIT
// The Machine's implementations of mem/'s backend interfaces: KVM memory slots for the hot-add
// window (mem::MemslotSink, used by mem::OnDemandMemslots) and page discard for ballooned
// memory (mem::DiscardBackend).
#pragma once

#include <map>
#include <mutex>
#include <span>

#include "base/ranked_mutex.hpp"
#include "base/mapping.hpp"
#include "mem/discard_backend.hpp"
#include "mem/memslots.hpp"
#include "vmm/kvm/kvm_vm.hpp"

namespace vmm {

class Machine;

// add(): mprotect the window part RW, then KVM_SET_USER_MEMORY_REGION. remove(): delete the
// slot first, then drop the pages and make them PROT_NONE again, so the guest can never fault
// pages back in that we just dropped (Firecracker virtio-mem order). `host` must lie inside
// the window mapping; slot ids below FIRST_HOT_ADD_SLOT belong to boot RAM and are refused.
class KvmMemslotSink final : public mem::MemslotSink {
public:
    KvmMemslotSink(kvm::KvmVm& vm, Mapping const& window)
        : m_vm(vm)
        , m_window(window)
    {
    }
    Result<void> add(std::uint32_t slot, mem::Gpa gpa, std::span<std::byte> host) override;
    Result<void> remove(std::uint32_t slot) override;

private:
    Result<u64> window_offset(std::span<std::byte> host) const;

    kvm::KvmVm& m_vm;
    Mapping const& m_window;
    RankedMutex<LockRank::MemslotSink> m_lock;                             // The DM device and reset may race.
    std::map<u32, std::span<std::byte>> m_slots;     // slot -> host range inside m_window.
};

// Boot RAM: punch holes in the memfd (reads back zero, reallocated on touch). Hot-add window:
// MADV_DONTNEED on the private anonymous mapping (same effect).
class GuestRamDiscard final : public mem::DiscardBackend {
public:
    explicit GuestRamDiscard(Machine& machine)
        : m_machine(machine)
    {
    }
    Result<void> discard(mem::PageRange range) override;

private:
    Machine& m_machine;
};

} // namespace vmm

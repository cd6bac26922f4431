// SPDX-License-Identifier: MIT
// On-demand memslots for the hot-add window. The window is planned once into equal slots (fixed
// boundaries: a KVM memslot cannot grow in place) and a slot is registered only when a hot-add
// first touches it, because KVM allocates per-slot metadata for the whole slot
// (KVM: kvm_arch_create_memslot() sizes rmaps and lpage_info by slot size, Linux 6.1 arch/x86/kvm/x86.c; QEMU hw/hyperv/hv-balloon-our_range_memslots.c splits its hot-add range for the same reason). No syscalls here: MemslotSink does the KVM work.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "base/types.hpp"
#include "mem/guest_memory.hpp"
#include "mem/page_range.hpp"

namespace vmm::mem {

// Implemented by vmm/ (mprotect RW + KVM_SET_USER_MEMORY_REGION; remove = size 0 + PROT_NONE),
// faked in tests (records calls, can inject errors).
class MemslotSink {
public:
    virtual ~MemslotSink() = default;
    virtual Result<void> add(std::uint32_t slot, Gpa gpa, std::span<std::byte> host) = 0;
    virtual Result<void> remove(std::uint32_t slot) = 0;
};

// Linux 6.1 hot-adds in 128 MiB blocks (hv_balloon.c:503-504 HA_CHUNK; QEMU
// HV_BALLOON_HA_MEMSLOT_SIZE_ALIGN): no slot is smaller.
inline constexpr std::uint64_t MIN_MEMSLOT_BYTES = 128 * MIB;
// Default slot budget for the window: far below KVM's limit (509 user slots on older kernels,
// KVM_USER_MEM_SLOTS) and enough that a 1 TiB window gets 32 GiB slots.
inline constexpr std::uint32_t DEFAULT_MAX_HOT_ADD_MEMSLOTS = 32;

struct MemslotPlan {
    PageRange window;           // Starts on a 128 MiB boundary.
    std::uint64_t slot_bytes;   // A power of two >= 128 MiB, so any power-of-two guest hot-add
                                // alignment either divides it or is a multiple of it.
    std::uint32_t slot_count;   // <= max_slots; the last slot may be shorter (window end).
    std::uint32_t first_slot;   // KVM slot id of slot 0.

    static Result<MemslotPlan> make(PageRange window, std::uint32_t max_slots, std::uint32_t first_slot);
    PageRange slot_range(std::uint32_t index) const;
    std::uint32_t slot_of(Gpn page) const; // `page` lies in the window.
};

class OnDemandMemslots {
public:
    // `window_host` is the host view of the whole window (reserved address space, owned by the
    // Machine's Mapping); `plug` (optional, owned by the Machine) gets set_plugged() for every
    // mapped slot so the VMM's own accesses follow the guest's.
    static Result<OnDemandMemslots> create(MemslotSink& sink, MemslotPlan plan,
        std::span<std::byte> window_host, GuestMemory* plug = nullptr);

    // Registers every not-yet-mapped slot intersecting `range` (inside the window), lowest first.
    // On a sink error, slots registered before it stay mapped (and counted).
    Result<void> ensure_mapped(PageRange range);
    // True if every page of `range` lies in a mapped slot.
    bool is_mapped(PageRange range) const;
    // Machine reset: unplugs and removes every mapped slot. Keeps going after an error and
    // returns the first one.
    Result<void> reset();

    MemslotPlan const& plan() const { return m_plan; }
    std::uint32_t mapped_count() const { return m_mapped_count; }
    bool slot_mapped(std::uint32_t index) const { return m_mapped[index]; }

private:
    OnDemandMemslots(MemslotSink& sink, MemslotPlan plan, std::span<std::byte> window_host, GuestMemory* plug)
        : m_sink(&sink)
        , m_plan(plan)
        , m_window_host(window_host)
        , m_plug(plug)
        , m_mapped(plan.slot_count, false)
    {
    }
    MemslotSink* m_sink;               // Owned by the Machine (or the test); outlives us.
    MemslotPlan m_plan;
    std::span<std::byte> m_window_host;
    GuestMemory* m_plug;               // Nullable; owned by the Machine.
    std::vector<bool> m_mapped;
    std::uint32_t m_mapped_count { 0 };
};

} // namespace vmm::mem

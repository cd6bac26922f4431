// SPDX-License-Identifier: MIT
// VmbusGlue: routes the guest's VMBus hypercalls (from hyperv::Partition on vCPU threads) into
// the VmbusHost, and lets the loop and API threads use the host too (the DM device's tick,
// reset, status and targets). VmbusHost is single-threaded by design; here every entry goes
// through one lock instead of a hop to the loop thread, so HvPostMessage gets the host's real
// status (e.g. INSUFFICIENT_BUFFERS) back synchronously. The lock is plain, not recursive:
// nothing re-enters it (the Partition calls message_slot_freed only after releasing the SynIC
// lock, from a vCPU's WRMSR, never from inside a host call), and a future re-entry aborts in
// RankedMutex instead of silently nesting. Its place in the lock order: ARCHITECTURE.md.
#pragma once

#include "base/ranked_mutex.hpp"
#include "devices/vmbus/connection.hpp"
#include "vmm/hyperv/partition.hpp"

namespace vmm {

class VmbusGlue final : public hyperv::HypercallSink {
public:
    // `synic` is the Partition in the VMM (a fake in tests); it and `memory` outlive the glue.
    VmbusGlue(mem::GuestMemory const& memory, vmbus::SynicPort& synic, u32 vcpu_count)
        : m_host(memory, synic, vcpu_count)
    {
    }

    std::uint16_t post_message(std::uint32_t vp, std::uint32_t connection_id, std::uint32_t message_type,
        std::span<std::byte const> payload) override
    {
        std::lock_guard guard { m_lock };
        return m_host.handle_post_message(vp, connection_id, message_type, payload);
    }
    std::uint16_t signal_event(std::uint32_t, std::uint32_t connection_id, std::uint16_t) override
    {
        std::lock_guard guard { m_lock };
        return m_host.handle_signal_event(connection_id);
    }
    void message_slot_freed(std::uint32_t vp, std::uint8_t sint) override
    {
        std::lock_guard guard { m_lock };
        m_host.on_slot_freed(vp, sint);
    }

    // Any thread: runs `action` with the host locked (add_device, device sends, reset).
    template<typename F>
    decltype(auto) with_host(F&& action)
    {
        std::lock_guard guard { m_lock };
        return std::forward<F>(action)(m_host);
    }

private:
    RankedMutex<LockRank::VmbusGlue> m_lock;
    vmbus::VmbusHost m_host;
};

} // namespace vmm

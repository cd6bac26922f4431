// SPDX-License-Identifier: MIT
// Hyper-V Dynamic Memory (DM) engine: version/caps handshake, status reports, balloon,
// unballoon and hot-add towards one memory target. Sans-IO state machine: input through the
// ChannelDevice callbacks, on_tick(now) and set_target(); output through ChannelPort,
// DiscardBackend and OnDemandMemslots. No syscalls, threads or clocks inside.
//
// Spec:    Linux drivers/hv/hv_balloon.c (guest side), docs/guest-interface.md §8-§10,
//          QEMU hw/hyperv/hv-balloon.c (the other host-side implementation).
// Done:    DM 0.3/1.0/2.0 handshake, INFO max page count, status reports, balloon (validated,
//          discarded), unballoon (<= 4 KiB per message), hot-add (range-only form, 128 MiB
//          aligned, memslots before the request), timeouts, reconnect and machine reset.
// Auto:    DmPolicy (dm_policy.hpp) sets the target from the guest's status reports.
// Reports: cold discard hints (free page reporting) validated and discarded (dm_cold_discard.cpp).
// Missing: hot-remove (DM 2.0 optional), state save/restore.
//
// Wiring (vmm/): build GuestPhysicalMap from the e820 RAM ranges and the hot-add window, a
// MemslotPlan + OnDemandMemslots over the window's reserved Mapping, and a DiscardBackend that
// punches both boot RAM and window pages; add the engine to the VMBus host; call on_tick(now)
// before every other input (so timestamps and new deadlines use the real time) and when
// next_deadline() passes, from one timer armed for that instant only: an idle engine has no
// deadline and needs no wake-up. On guest reboot call on_machine_reset() before the VMBus reset
// (its later on_close() is then a no-op). Single-threaded, one call at a time: in the VMM the
// caller holds the VMBus glue lock (vCPU threads deliver packets, the event loop runs the
// deadline timer, the API thread sets targets; vmm/dm_device.hpp, vmm/dm_clock.hpp).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "devices/hv_balloon/dm_cold_discard.hpp"
#include "devices/hv_balloon/dm_config.hpp"
#include "devices/hv_balloon/dm_policy.hpp"
#include "devices/hv_balloon/dm_status.hpp"
#include "devices/hv_balloon/protocol.hpp"
#include "devices/vmbus/channel_device.hpp"
#include "mem/discard_backend.hpp"
#include "mem/guest_physical_map.hpp"
#include "mem/memslots.hpp"

namespace vmm::hv_balloon {

class DynamicMemory final : public vmbus::ChannelDevice {
public:
    using EventSink = std::function<void(DmEvent const&)>;

    // All references are owned by the Machine and outlive the engine. `memslots` may be null
    // (no hot-add window: the device only balloons).
    DynamicMemory(mem::GuestPhysicalMap& map, mem::DiscardBackend& discard,
        mem::OnDemandMemslots* memslots, DmConfig config);

    // vmbus::ChannelDevice.
    vmbus::OfferParams offer() const override;
    void on_open(vmbus::ChannelPort& port) override;
    // The channel delivers inband packets only (offer().accepted_packets).
    void on_packet(vmbus::InboundPacket const& packet) override { on_packet(packet.payload); }
    // One DM message (the inband payload); tests and benches drive the engine through it.
    void on_packet(std::span<std::byte const> payload);
    void on_ring_space() override;
    void on_close() override; // Idempotent.

    // Time input: expires waits. Everything the engine timestamps uses the latest `now`, so
    // the caller ticks before each input (packets, set_target()) and at next_deadline().
    void on_tick(Instant now);
    // When on_tick() next has work (a wait expires); nullopt while nothing is pending (idle,
    // closed, waiting for the guest's first message). May change after any call into the
    // engine: the caller re-reads it after each and re-arms its one timer.
    std::optional<Instant> next_deadline() const;
    // The one memory target (pages of guest-visible memory). Supersedes any running operation
    // (an outstanding guest message is finished first, never two in flight). Returns the new
    // operation id. Errors: 0 or above max_pages().
    Result<std::uint64_t> set_target(mem::PageCount target);
    Result<std::uint64_t> set_target_mib(std::uint64_t target_mib);
    // Machine reset (guest reboot): back to boot size, ballooned pages forgotten, hot-added
    // memory released (memslots removed, window discarded). Also closes the connection.
    void on_machine_reset();

    // Automatic sizing (dm_policy.hpp): validated against max_pages(); switching to auto
    // evaluates the last report at once. A set_target() while in auto mode is obeyed until the
    // policy's next decision: callers that must not race the policy switch to manual first.
    Result<void> set_policy(PolicyConfig config);
    DmPolicy const& policy() const { return m_policy; }
    // The host-wide arbiter's ceiling on auto mode's target, a lease of `lease` from now
    // (nullopt clears it). Evaluates the policy at once: a VM above a new ceiling shrinks.
    void set_ceiling(std::optional<mem::PageCount> limit, Duration lease);

    // Free page reporting (dm_cold_discard.hpp): the elements of one HvExtCallMemoryHeatHint
    // COLD_DISCARD call, any thread under the engine's caller lock. Validates and discards in
    // order, stopping at the first invalid range.
    ColdDiscardOutcome on_cold_discard(std::span<std::uint64_t const> ranges);

    void set_event_sink(EventSink sink) { m_events = std::move(sink); }
    DmStatus status() const;
    State state() const { return m_state; }

private:
    enum class SendOutcome : std::uint8_t { Sent, Busy, Failed };

    // dynamic_memory.cpp: lifecycle, dispatch, handshake, timeouts; dm_operation.cpp: planning.
    void enter(State next, std::optional<Duration> timeout = std::nullopt);
    SendOutcome send(std::span<std::byte const> message);
    void send_control(std::span<std::byte const> message);
    bool flush_control();
    std::uint32_t next_trans_id() { return ++m_trans_id; }
    void handle_version_request(std::span<std::byte const> message);
    void handle_caps_report(std::span<std::byte const> message);
    void handle_status_report(std::span<std::byte const> message);
    void reset_connection(ResetKind kind, mem::PageCount hot_add_released);
    void handle_timeout();
    void step();
    void start_operation(mem::PageCount target);
    void update_progress(OperationKind kind);
    void finish_operation(OperationState state, std::string_view reason);
    bool operation_running() const;
    void emit(DmEvent const& event);

    // dm_auto.cpp: the policy's evaluation and its target.
    void run_policy();
    PolicyView policy_view() const;

    // dm_balloon.cpp: balloon and unballoon.
    void send_balloon_request();
    void handle_balloon_response(std::span<std::byte const> message);
    void send_unballoon_request();
    void handle_unballoon_response(std::span<std::byte const> message);
    void discard(mem::PageRange range);

    // dm_hot_add.cpp.
    bool hot_add_available() const;
    std::string_view hot_add_blocked_reason() const;
    mem::PageCount hot_add_block() const;
    void begin_hot_add(mem::PageCount wanted);
    void send_hot_add_request();
    void handle_hot_add_response(std::span<std::byte const> message);
    mem::PageCount release_hot_add();

    mem::GuestPhysicalMap& m_map;
    mem::DiscardBackend& m_discard;
    mem::OnDemandMemslots* m_memslots; // Nullable.
    DmConfig m_config;
    EventSink m_events;
    vmbus::ChannelPort* m_port { nullptr }; // Valid from on_open() until on_close().

    State m_state { State::Closed };
    Instant m_now {};
    std::optional<Instant> m_deadline;
    std::uint32_t m_trans_id { 0 };
    std::deque<std::vector<std::byte>> m_control_outbox; // Responses waiting for ring space.

    std::optional<std::uint32_t> m_version;
    std::optional<DmCaps> m_caps;
    std::optional<GuestStatusReport> m_guest_status;
    std::optional<Instant> m_last_status_event;

    std::optional<mem::PageCount> m_target;
    bool m_reapply_pending { false };
    std::optional<DmOperation> m_operation; // Running, or the last finished.
    std::uint64_t m_next_operation_id { 1 };

    // The outstanding balloon request.
    mem::PageCount m_balloon_requested;
    mem::PageCount m_balloon_accepted;
    // Pages in the outstanding unballoon message.
    mem::PageCount m_unballoon_in_flight;
    // Hot-add: next start (strictly increasing), the outstanding range, a timed-out range whose
    // late response is still accepted, and why hot-add stopped.
    std::optional<mem::Gpn> m_hot_add_cursor;
    std::optional<mem::PageRange> m_hot_add_in_flight;
    std::optional<mem::PageRange> m_hot_add_late;
    bool m_hot_add_disabled { false };  // Guest said "permanent failure" (until reconnect).
    bool m_hot_add_exhausted { false }; // Guest added fewer pages than asked (until reset).

    DmCounters m_counters;

    DmPolicy m_policy;
    bool m_operation_by_policy { false }; // The running operation is an auto decision.
};

} // namespace vmm::hv_balloon

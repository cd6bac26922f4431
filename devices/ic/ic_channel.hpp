// SPDX-License-Identifier: MIT
// IcChannel: the part every integration component shares, as a vmbus::ChannelDevice: the
// ICMSG framing, the host-initiated framework/service version negotiation on open, and one
// request in flight at a time (the guest answers each request in place, hv_util.c), with the
// response matched on type and VMBus transaction id. A concrete IC (shutdown, heartbeat, time
// sync) derives, names its class GUID and service versions, and builds/reads bodies.
//
// Sans-IO: no timer of its own and no clock but the one it is given (steady nanoseconds; a
// fake in tests); the owner arms one timer for next_deadline() and calls on_timer() then.
// Hostile guest: every response is length- and type-checked; an unsolicited or duplicate
// response, an unknown version or a short packet is counted and dropped, never fatal.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "base/types.hpp"
#include "devices/ic/protocol.hpp"
#include "devices/vmbus/channel_device.hpp"

namespace vmm::ic {

enum class IcState : u8 {
    Closed,      // Channel not open (guest has no driver bound, or it unbound).
    Negotiating, // Negotiate request sent, waiting for the guest.
    Ready,       // Versions agreed: service requests may flow.
    Refused,     // The guest shares no framework or service version with us.
};
std::string_view ic_state_name(IcState);

struct IcCounters {
    u64 requests_sent { 0 };
    u64 responses { 0 };
    u64 bad_packets { 0 };       // Short, oversized, not a response, bad header.
    u64 unexpected_responses { 0 }; // Nothing in flight, wrong transaction or type (answered twice).
    u64 negotiation_refused { 0 };
    u64 timeouts { 0 };          // A request the guest did not answer in time.
    u64 busy_sends { 0 };
};

class IcChannel : public vmbus::ChannelDevice {
public:
    // How long a request may stay unanswered before it is dropped (and the next may go).
    static constexpr u64 RESPONSE_TIMEOUT_NS = 5'000'000'000ull;
    // Largest guest packet an IC accepts: the guest echoes our request, the largest of which is
    // a shutdown (28 + 2060 bytes); hv_util's own receive buffer is 4 pages (hv_util.c:595).
    static constexpr std::size_t MAX_PACKET_BYTES = 4 * 4096;

    IcChannel(vmbus::Guid instance, std::span<IcVersion const> service_versions);

    // vmbus::ChannelDevice
    vmbus::OfferParams offer() const override;
    void on_open(vmbus::ChannelPort& port) override;
    void on_packet(vmbus::InboundPacket const& packet) override;
    void on_ring_space() override;
    void on_close() override;

    using Clock = std::function<u64()>;
    // Time source (steady nanoseconds) for request ages and service timers; set before use.
    void set_clock(Clock clock) { m_clock = std::move(clock); }
    // Called (with whatever lock the caller of on_open/on_packet holds) after the guest moved
    // next_deadline(), with its new value, so the owner re-arms its timer if that comes before
    // what it armed (vmm/deadline_gate.hpp); it must only post work.
    using DeadlineHook = std::function<void(std::optional<u64> next_deadline)>;
    void set_deadline_hook(DeadlineHook hook) { m_deadline_hook = std::move(hook); }
    // The earliest moment on_timer() has work (a request timing out, or the service's own
    // deadline); nullopt when idle.
    std::optional<u64> next_deadline() const;
    void on_timer();

    IcState state() const { return m_state; }
    IcVersion framework_version() const { return m_framework; }
    IcVersion service_version() const { return m_service; }
    IcCounters const& counters() const { return m_counters; }
    bool request_in_flight() const { return m_in_flight.has_value(); }
    // The in-flight request times out at this moment (nullopt: nothing in flight, or no limit).
    std::optional<u64> request_deadline() const;

protected:
    virtual vmbus::Guid class_guid() const = 0;
    virtual IcMessageType service_type() const = 0;
    // Versions agreed: the service may send its first request.
    virtual void on_ready() { }
    // The guest answered the service request sent with send_request(); `body` is what follows
    // the ICMSG header (length not yet checked), `status` the icmsg status.
    virtual void on_response(std::span<std::byte const> body, u32 status) = 0;
    // The request went unanswered for RESPONSE_TIMEOUT_NS, or the channel closed under it.
    virtual void on_request_lost() { }
    virtual void on_closed() { }
    virtual std::optional<u64> service_deadline() const { return std::nullopt; }
    // How long a request of `type` may stay unanswered (nullopt: wait as long as it takes).
    // KVP overrides it: Linux answers its negotiation only once the user-space daemon is up.
    virtual std::optional<u64> response_timeout_ns(IcMessageType) const { return RESPONSE_TIMEOUT_NS; }
    virtual void on_service_timer() { }

    // Sends one service request (if none is in flight and the channel is Ready). False if it
    // could not go now (the service retries from on_service_timer or its next trigger).
    bool send_request(std::span<std::byte const> body);
    u64 now() const { return m_clock ? m_clock() : 0; }

private:
    struct InFlight {
        IcMessageType type;
        u64 transaction_id;
        u64 sent_at;
    };
    bool send_message(IcMessageType type, std::span<std::byte const> body, IcVersion service);
    void on_negotiate_response(std::span<std::byte const> body);

    vmbus::Guid m_instance;
    std::vector<IcVersion> m_service_versions; // Newest first.
    vmbus::ChannelPort* m_port { nullptr };
    IcState m_state { IcState::Closed };
    IcVersion m_framework {};
    IcVersion m_service {};
    std::optional<InFlight> m_in_flight;
    std::vector<std::byte> m_pending; // A packet that met a full ring (sent on ring space).
    std::vector<std::byte> m_packet;  // send_message's buffer, reused.
    u64 m_next_transaction { 1 };
    u8 m_ic_transaction { 0 };
    Clock m_clock;
    DeadlineHook m_deadline_hook;
    IcCounters m_counters;
};

} // namespace vmm::ic

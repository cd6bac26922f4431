// SPDX-License-Identifier: MIT
// VmbusTransport: the DM channel over the real VMBus host. The guest side is the test suite's
// Linux-like VMBus driver (tests/support/vmbus_test_guest: contact, offers, GPADL, open, both
// rings with Linux's signalling); the host side is devices/vmbus VmbusHost reading and writing
// the rings for the engine. Only the ring pages live in the fake memory; the ballooned RAM is
// the benchmark's memfd.
#pragma once

#include <deque>
#include <memory>

#include "bench/dm_bench_guest.hpp"

namespace vmm::bench {

class VmbusTransport final : public DmTransport {
public:
    VmbusTransport();
    ~VmbusTransport() override;
    VmbusTransport(VmbusTransport const&) = delete;
    VmbusTransport& operator=(VmbusTransport const&) = delete;

    Result<void> open(hv_balloon::DynamicMemory& engine) override;
    void send(std::span<std::byte const> message) override;
    std::optional<HostMessage> receive() override;
    char const* name() const override { return "vmbus"; }

    std::uint64_t ring_full = 0; // Guest writes refused for lack of room (must stay 0).

private:
    struct Rig; // VMBus host, fake SynIC and memory, test guest, timing shim.
    std::unique_ptr<Rig> m_rig;
};

} // namespace vmm::bench

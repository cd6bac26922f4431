// SPDX-License-Identifier: MIT
// VmbusTransport: DynamicMemory behind VmbusHost, driven by TestVmbusGuest over real rings.
#include "bench/vmbus_transport.hpp"

#include "devices/vmbus/connection.hpp"
#include "tests/support/vmbus_fakes.hpp"
#include "tests/support/vmbus_test_guest.hpp"

namespace vmm::bench {

namespace {

// DM ring: 5 pages each way, header page included (Linux hv_balloon.c dm_ring_size 20 KiB,
// docs/guest-interface.md §7.1).
constexpr std::uint32_t RING_PAGES = 10;

// Sits between VmbusHost and the engine to timestamp what the engine writes into the ring.
class TimingDevice final : public vmbus::ChannelDevice, public vmbus::ChannelPort {
public:
    explicit TimingDevice(hv_balloon::DynamicMemory& engine)
        : m_engine(engine)
    {
    }
    vmbus::OfferParams offer() const override { return m_engine.offer(); }
    void on_open(vmbus::ChannelPort& port) override
    {
        m_port = &port;
        m_engine.on_open(*this);
    }
    void on_packet(vmbus::InboundPacket const& packet) override { m_engine.on_packet(packet); }
    void on_ring_space() override { m_engine.on_ring_space(); }
    void on_close() override
    {
        m_engine.on_close();
        m_port = nullptr;
    }
    Result<void> send_packet(std::span<std::byte const> payload, std::uint64_t transaction_id) override
    {
        VMM_TRY(m_port->send_packet(payload, transaction_id));
        sent_at.push_back(Clock::now()); // In the ring (and signalled) by now.
        return {};
    }
    std::uint64_t send_space_bytes() const override { return m_port->send_space_bytes(); }
    Result<void> send(vmbus::OutboundPacket const& packet) override
    {
        VMM_TRY(m_port->send(packet));
        sent_at.push_back(Clock::now());
        return {};
    }
    Result<vmbus::GpadlView> acquire_gpadl(std::uint32_t id) override { return m_port->acquire_gpadl(id); }
    void release_gpadl(std::uint32_t id) override { m_port->release_gpadl(id); }

    std::deque<Clock::time_point> sent_at;

private:
    hv_balloon::DynamicMemory& m_engine;
    vmbus::ChannelPort* m_port { nullptr };
};

} // namespace

struct VmbusTransport::Rig {
    test::FakeGuestMemory memory = test::VmbusRam::make();
    test::FakeSynicPort synic;
    vmbus::VmbusHost host { memory.memory(), synic, 1 };
    test::TestVmbusGuest guest { host, synic, memory };
    std::unique_ptr<TimingDevice> device;
};

VmbusTransport::VmbusTransport()
    : m_rig(std::make_unique<Rig>())
{
}

VmbusTransport::~VmbusTransport() = default;

Result<void> VmbusTransport::open(hv_balloon::DynamicMemory& engine)
{
    m_rig->device = std::make_unique<TimingDevice>(engine);
    VMM_TRY(m_rig->host.add_device(*m_rig->device));
    if (!m_rig->guest.initiate_contact(vmbus::VERSION_WIN10_V5_3))
        return fail(Errc::GuestProtocol, "VMBus INITIATE_CONTACT refused");
    auto offers = m_rig->guest.request_offers();
    if (offers.size() != 1)
        return fail(Errc::GuestProtocol, "expected one VMBus offer", offers.size());
    auto pages = test::TestVmbusGuest::scattered_pages(RING_PAGES);
    if (m_rig->guest.bring_up(offers[0], pages, RING_PAGES / 2) != vmbus::CHANNEL_STATUS_SUCCESS)
        return fail(Errc::GuestProtocol, "VMBus channel open failed");
    return {};
}

void VmbusTransport::send(std::span<std::byte const> message)
{
    if (!m_rig->guest.write_packet(message))
        ++ring_full;
}

std::optional<HostMessage> VmbusTransport::receive()
{
    auto payload = m_rig->guest.read_packet();
    if (!payload)
        return std::nullopt;
    Clock::time_point at = Clock::now();
    if (!m_rig->device->sent_at.empty()) {
        at = m_rig->device->sent_at.front();
        m_rig->device->sent_at.pop_front();
    }
    return HostMessage { std::move(*payload), at };
}

} // namespace vmm::bench

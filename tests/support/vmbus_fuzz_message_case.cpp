// SPDX-License-Identifier: MIT
// Fuzz case (libFuzzer target and corpus replay): arbitrary bytes become a sequence of guest actions against a VmbusHost with
// fake memory, a busy-sometimes SynIC port and two echo devices: raw and structured messages,
// ring corruption, signals, slot frees, rescind, unload and reset. Invariants are checked after
// every step; at the end, no page outside the ring pool and created GPADLs may have changed.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

#include "devices/vmbus/connection.hpp"
#include "tests/support/vmbus_fakes.hpp"
#include "tests/support/vmbus_fuzz_input.hpp"
#include "tests/support/vmbus_test_guest.hpp"

using namespace vmm;
using namespace vmm::vmbus;

namespace {

constexpr std::uint32_t VCPUS = 2;

template<typename T>
T with_type(MessageType type)
{
    T message {};
    message.header.msgtype = static_cast<std::uint32_t>(type);
    return message;
}

// Set when an invariant fails; the case then returns false.
thread_local bool g_violated = false;

void check(bool condition)
{
    if (!condition)
        g_violated = true;
}

// `host_messages`: messages the host side of the harness may have queued on its own (offers of
// re-added devices, rescinds): the guest's posts are throttled at MAX_QUEUED_MESSAGES and each
// adds at most one message per channel and one more (connection.hpp), the host's are not.
void check_invariants(VmbusHost const& host, std::set<std::uint64_t>& allowed_pages, std::size_t host_messages)
{
    check(host.queued_messages() <= VmbusHost::MAX_QUEUED_MESSAGES + host.channel_count() + 2 + host_messages);
    if (host.state() == ConnectionState::Disconnected)
        check(host.gpadls().created_count() == 0 && host.gpadls().in_progress_count() == 0);
    for (auto const& [id, gpadl] : host.gpadls().created()) {
        for (auto const& range : gpadl.ranges)
            for (auto page : range.pages)
                allowed_pages.insert(page.raw());
    }
    for (std::uint32_t relid = MIN_RELID; relid <= 3; ++relid) {
        Channel const* channel = host.channel(relid);
        if (!channel || channel->state() != ChannelState::Open)
            continue;
        check(host.state() == ConnectionState::OffersDelivered);
        auto const* gpadl = host.gpadls().find_created(channel->gpadl());
        check(gpadl != nullptr && gpadl->in_use && gpadl->child_relid == relid);
        check(channel->target_vp() < VCPUS);
    }
}

} // namespace

namespace {

// The guest's actions; the host and devices are gone when it returns, so the caller's memory
// check also covers their teardown.
void run_actions(test::FakeGuestMemory& memory, test::FuzzInput& input, std::set<std::uint64_t>& allowed_pages)
{
    test::FakeSynicPort synic;
    synic.refuse_every_nth = input.ConsumeIntegralInRange<std::uint64_t>(0, 5);
    VmbusHost host { memory.memory(), synic, VCPUS };
    test::EchoDevice first { 1 }, second { 2 };
    (void)host.add_device(first);
    (void)host.add_device(second);
    test::TestVmbusGuest guest { host, synic, memory };

    auto pool = test::TestVmbusGuest::scattered_pages(12);
    for (auto page : pool) {
        memory.fill_page(page, std::byte { 0 }); // Like the guest's zeroed ring allocation.
        allowed_pages.insert(page.raw());
    }
    std::uint32_t gpadl_base = test::TestVmbusGuest::FIRST_GPADL;
    bool brought_up = false;
    std::size_t host_messages = 0;

    for (int step = 0; step < 256 && input.remaining_bytes() > 0; ++step) {
        switch (input.ConsumeIntegralInRange<int>(0, 14)) {
        case 0: { // Raw message bytes.
            auto bytes = input.ConsumeBytes<std::byte>(input.ConsumeIntegralInRange<std::size_t>(0, 250));
            std::uint32_t connection = input.PickValueInArray<std::uint32_t>({ 1, 4, 2, 0x10001 });
            (void)host.handle_post_message(input.ConsumeIntegralInRange<std::uint32_t>(0, 3), connection, HVMSG_VMBUS, bytes);
            break;
        }
        case 1: {
            std::uint32_t version = input.ConsumeBool() ? input.ConsumeIntegral<std::uint32_t>()
                                                        : input.PickValueInArray(SUPPORTED_VERSIONS);
            auto message = guest.initiate_contact_message(version);
            message.target_vcpu = input.ConsumeIntegralInRange<std::uint32_t>(0, 2);
            (void)guest.post(message, VMBUS_MESSAGE_CONNECTION_ID_4);
            break;
        }
        case 2:
            (void)guest.post(with_type<RelidReleased>(MessageType::CHANNELMSG_REQUESTOFFERS).header);
            break;
        case 3: { // A GPADL over pool pages (sometimes with a bad PFN), header + bodies.
            std::uint32_t relid = input.ConsumeIntegralInRange<std::uint32_t>(0, 3);
            std::size_t count = input.ConsumeIntegralInRange<std::size_t>(1, pool.size());
            std::size_t start = input.ConsumeIntegralInRange<std::size_t>(0, pool.size() - count);
            std::vector<mem::Gpn> pages(pool.begin() + start, pool.begin() + start + count);
            if (input.ConsumeBool())
                pages[input.ConsumeIntegralInRange<std::size_t>(0, count - 1)] = mem::Gpn { input.ConsumeIntegral<std::uint64_t>() };
            (void)guest.create_gpadl(relid, gpadl_base + input.ConsumeIntegralInRange<std::uint32_t>(0, 3), pages);
            break;
        }
        case 4: {
            auto open = with_type<OpenChannel>(MessageType::CHANNELMSG_OPENCHANNEL);
            open.child_relid = input.ConsumeIntegralInRange<std::uint32_t>(0, 3);
            open.openid = open.child_relid;
            open.ringbuffer_gpadlhandle = gpadl_base + input.ConsumeIntegralInRange<std::uint32_t>(0, 3);
            open.target_vp = input.ConsumeIntegralInRange<std::uint32_t>(0, 2);
            open.downstream_ringbuffer_pageoffset = input.ConsumeIntegralInRange<std::uint32_t>(0, 12);
            (void)guest.post(open);
            break;
        }
        case 5: { // The guest scribbles on a pool page (ring headers and data).
            auto page = pool[input.ConsumeIntegralInRange<std::size_t>(0, pool.size() - 1)];
            auto offset = input.ConsumeIntegralInRange<std::uint64_t>(0, 4095);
            auto bytes = input.ConsumeBytes<std::byte>(input.ConsumeIntegralInRange<std::size_t>(1, 64));
            bytes.resize(std::min<std::size_t>(bytes.size(), 4096 - offset));
            (void)memory.memory().write(mem::Gpa { page.address().raw() + offset }, bytes);
            break;
        }
        case 6:
            (void)host.handle_signal_event(input.PickValueInArray<std::uint32_t>({ 0x10001, 0x10002, 2, 0x10003, 0 }));
            break;
        case 7:
            (void)guest.receive();
            break;
        case 8: {
            auto close = with_type<CloseChannel>(MessageType::CHANNELMSG_CLOSECHANNEL);
            close.child_relid = input.ConsumeIntegralInRange<std::uint32_t>(0, 3);
            (void)guest.post(close);
            auto teardown = with_type<GpadlTeardown>(MessageType::CHANNELMSG_GPADL_TEARDOWN);
            teardown.gpadl = gpadl_base + input.ConsumeIntegralInRange<std::uint32_t>(0, 3);
            (void)guest.post(teardown);
            break;
        }
        case 9: {
            auto which = input.ConsumeIntegralInRange<int>(0, 4);
            if (which == 0)
                host.reset();
            else if (which == 1)
                (void)guest.post(with_type<RelidReleased>(MessageType::CHANNELMSG_UNLOAD).header);
            else if (which == 2) {
                host.rescind(second);
                ++host_messages; // Its RESCINDOFFER.
            } else if (which == 3) {
                (void)host.add_device(second);
                ++host_messages; // Its OFFERCHANNEL, when connected.
            }
            else {
                auto released = with_type<RelidReleased>(MessageType::CHANNELMSG_RELID_RELEASED);
                released.child_relid = input.ConsumeIntegralInRange<std::uint32_t>(0, 3);
                (void)guest.post(released);
            }
            break;
        }
        case 10: { // Devices send on their own (timer-driven work).
            auto bytes = input.ConsumeBytes<std::byte>(input.ConsumeIntegralInRange<std::size_t>(0, 600));
            if (first.port())
                (void)first.port()->send_packet(bytes, 7);
            if (first.port())
                (void)first.port()->send_space_bytes();
            host_messages += host.channel_count(); // A rescind per broken channel.
            host.close_broken_channels();
            break;
        }
        case 12: { // Linux bring-up of relid 1 over the first 10 pool pages.
            OfferChannel offer {};
            offer.child_relid = 1;
            offer.connection_id = Channel::CONNECTION_ID_BASE + 1;
            std::vector<mem::Gpn> pages(pool.begin(), pool.begin() + 10);
            (void)guest.bring_up(offer, pages, input.ConsumeIntegralInRange<std::uint32_t>(2, 8), gpadl_base + 4);
            brought_up = true;
            break;
        }
        case 13: // The guest sends a packet (and signals per Linux rules).
            if (brought_up) {
                auto bytes = input.ConsumeBytes<std::byte>(input.ConsumeIntegralInRange<std::size_t>(0, 5000));
                (void)guest.write_packet(bytes, 1, input.ConsumeBool() ? 6 : input.ConsumeIntegral<std::uint16_t>());
            }
            break;
        case 14:
            if (brought_up)
                (void)guest.read_packet();
            break;
        default: {
            auto modify = with_type<ModifyChannel>(MessageType::CHANNELMSG_MODIFYCHANNEL);
            modify.child_relid = input.ConsumeIntegralInRange<std::uint32_t>(0, 3);
            modify.target_vp = input.ConsumeIntegralInRange<std::uint32_t>(0, 2);
            (void)guest.post(modify);
            break;
        }
        }
        check_invariants(host, allowed_pages, host_messages);
    }
    // FUZZ_VMBUS_REPORT=1: what an input reached (a recorded guest's messages are parsed and
    // acted on, not rejected).
    static bool const report = std::getenv("FUZZ_VMBUS_REPORT") != nullptr;
    if (report) {
        auto const& stats = host.stats();
        std::fprintf(stderr, "fuzz_vmbus_message: received %llu rejected %llu ignored %llu sent %llu state %d version 0x%x gpadls %zu\n",
            static_cast<unsigned long long>(stats.messages_received), static_cast<unsigned long long>(stats.messages_rejected),
            static_cast<unsigned long long>(stats.messages_ignored), static_cast<unsigned long long>(stats.messages_sent),
            static_cast<int>(host.state()), host.version(), host.gpadls().created_count());
    }
}

} // namespace

bool vmm::test::vmbus_message_case(std::span<std::uint8_t const> bytes)
{
    g_violated = false;
    vmm::test::FuzzInput input { bytes };
    // One memory for every input, put back to all-GUARD after each (see vmbus_fuzz_ring_case).
    static test::FakeGuestMemory memory = test::VmbusRam::make();
    std::set<std::uint64_t> allowed_pages;
    run_actions(memory, input, allowed_pages);
    // run_actions zeroed the pool pages; every other page started as GUARD.
    auto changed = memory.touched_pages();
    for (auto page : changed)
        check(allowed_pages.contains(page));
    memory.restore(changed);
    return !g_violated;
}

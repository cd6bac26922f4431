// SPDX-License-Identifier: MIT
// DmDevice and DmApiBackend without KVM: the real engine behind a real VmbusHost (VmbusGlue over
// a FakeSynicPort), reached by TestVmbusGuest over real rings, with fake memslots and discard.
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>

#include <gtest/gtest.h>

#include <thread>

#include "devices/hv_balloon/protocol.hpp"
#include "tests/support/dm_fake_guest.hpp"
#include "tests/support/mem_fakes.hpp"
#include "tests/support/vmbus_fakes.hpp"
#include "tests/support/vmbus_test_guest.hpp"
#include "vmm/dm_api_backend.hpp"
#include "vmm/dm_device.hpp"

namespace vmm {
namespace {

using hv_balloon::DmMessageType;

// DM ring: 5 pages each way (Linux hv_balloon.c dm_ring_size, 20 KiB).
constexpr std::uint32_t RING_PAGES = 10;

Config dm_config()
{
    Config config;
    config.machine.vcpus = 1;
    config.machine.memory_mib = 512;
    config.machine.max_memory_mib = 1024;
    config.dynamic_memory.enabled = true;
    config.hyperv.enabled = true;
    return config;
}

DmMessageType type_of(std::span<std::byte const> message)
{
    hv_balloon::DmHeader header {};
    std::memcpy(&header, message.data(), std::min(message.size(), sizeof(header)));
    return static_cast<DmMessageType>(header.type);
}

struct Rig {
    Config config = dm_config();
    MemoryLayout layout = plan_memory(config.machine.memory_mib, config.machine.max_memory_mib);
    test::FakeGuestMemory vmbus_memory = test::VmbusRam::make();
    test::FakeSynicPort synic;
    VmbusGlue glue { vmbus_memory.memory(), synic, 1 };
    // Single-threaded test: the guest calls the host directly, as the glue would under its lock.
    vmbus::VmbusHost& host = glue.with_host([](vmbus::VmbusHost& h) -> vmbus::VmbusHost& { return h; });
    test::TestVmbusGuest guest { host, synic, vmbus_memory };
    test::FakeMemslots memslots;
    test::FakeDiscard discard;
    Mapping window = Mapping::reserve(layout.hot_add_size_bytes).value();
    std::unique_ptr<EventLoop> loop = EventLoop::create().value();
    api::EventHub hub;
    DmApiBackend backend { config, *loop, hub, std::chrono::steady_clock::now() };

    DmDeviceSetup setup() { return DmDeviceSetup { layout, window.bytes(), memslots, nullptr, discard, glue }; }

    // hv_vmbus up to the offers.
    std::vector<vmbus::OfferChannel> offers()
    {
        if (host.state() == vmbus::ConnectionState::Disconnected) {
            EXPECT_TRUE(guest.initiate_contact(vmbus::VERSION_WIN10_V5_3));
        }
        return guest.request_offers();
    }
    // hv_balloon probe: open the channel, version 2.0, capabilities (balloon + hot-add).
    void connect_dm()
    {
        auto found = offers();
        ASSERT_EQ(found.size(), 1u);
        auto pages = test::TestVmbusGuest::scattered_pages(RING_PAGES);
        ASSERT_EQ(guest.bring_up(found[0], pages, RING_PAGES / 2), vmbus::CHANNEL_STATUS_SUCCESS);
        ASSERT_TRUE(guest.write_packet(test::dm_version_request(1, hv_balloon::DYNMEM_PROTOCOL_VERSION_3, false)));
        ASSERT_EQ(next_host_message(), DmMessageType::DM_VERSION_RESPONSE);
        ASSERT_TRUE(guest.write_packet(test::dm_caps_report(2, 0x1F)));
        ASSERT_EQ(next_host_message(), DmMessageType::DM_CAPABILITIES_RESPONSE);
        ASSERT_TRUE(guest.write_packet(test::dm_status_report(3, 100'000, 50'000)));
    }
    // The next host message other than DM_INFO_MESSAGE (sent once after the capabilities).
    std::optional<DmMessageType> next_host_message()
    {
        while (auto packet = guest.read_packet())
            if (type_of(*packet) != DmMessageType::DM_INFO_MESSAGE)
                return type_of(*packet);
        return std::nullopt;
    }
};

TEST(DmDevice, RegistersOneOfferAndWithdrawsItAtReset)
{
    Rig rig;
    auto device = DmDevice::create(rig.setup(), dm_config_from(rig.config.dynamic_memory), *rig.loop, {});
    ASSERT_TRUE(device.has_value()) << device.error().what();
    EXPECT_EQ(rig.offers().size(), 1u);
    EXPECT_TRUE((*device)->with_engine([](hv_balloon::DynamicMemory&) {}));

    auto last = (*device)->reset();
    EXPECT_FALSE(last.connected);
    EXPECT_FALSE((*device)->with_engine([](hv_balloon::DynamicMemory&) { ADD_FAILURE() << "engine after reset"; }));
    // The host forgot the engine: a guest connecting again (a new kernel) is offered nothing, and
    // freeing the device leaves no dangling device behind (ASan would report a use after free).
    device->reset();
    EXPECT_TRUE(rig.offers().empty());
}

// Issue 16 item 2: the engine was registered before its timer was created, so a failing timer
// freed an engine the VMBus host still offered. Every fallible step now comes first.
TEST(DmDevice, FailedCreateLeavesNothingRegistered)
{
    Rig rig;
    rlimit saved {};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
    int const lowest_free = ::dup(0);
    ASSERT_GE(lowest_free, 0);
    ::close(lowest_free);
    rlimit tight = saved;
    tight.rlim_cur = static_cast<rlim_t>(lowest_free); // The timerfd cannot be created.
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
    auto device = DmDevice::create(rig.setup(), dm_config_from(rig.config.dynamic_memory), *rig.loop, {});
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
    ASSERT_FALSE(device.has_value());
    EXPECT_TRUE(rig.offers().empty());
}

TEST(DmDevice, ConfigTimeoutsReachTheEngine)
{
    DynamicMemorySection section;
    section.balloon_reply_timeout_ms = 120'000;
    section.unballoon_reply_timeout_ms = 121'000;
    section.hot_add_reply_timeout_ms = 60'000;
    section.hot_add_reply_timeout_per_block_ms = 0;
    auto dm = dm_config_from(section);
    EXPECT_EQ(dm.balloon_reply_timeout, std::chrono::seconds { 120 });
    EXPECT_EQ(dm.unballoon_reply_timeout, std::chrono::seconds { 121 });
    EXPECT_EQ(dm.hot_add_reply_timeout_base, std::chrono::seconds { 60 });
    EXPECT_EQ(dm.hot_add_reply_timeout_per_block, hv_balloon::Duration {});
    // The defaults are the engine's own.
    auto defaults = dm_config_from(DynamicMemorySection {});
    hv_balloon::DmConfig engine;
    EXPECT_EQ(defaults.balloon_reply_timeout, engine.balloon_reply_timeout);
    EXPECT_EQ(defaults.unballoon_reply_timeout, engine.unballoon_reply_timeout);
    EXPECT_EQ(defaults.hot_add_reply_timeout_base, engine.hot_add_reply_timeout_base);
    EXPECT_EQ(defaults.hot_add_reply_timeout_per_block, engine.hot_add_reply_timeout_per_block);
}

TEST(DmApiBackend, TargetsReachTheGuestAndStatusOutlivesTheBoot)
{
    Rig rig;
    auto device = rig.backend.make_device(rig.setup());
    ASSERT_TRUE(device.has_value()) << device.error().what();
    rig.backend.attach_device(std::move(*device), nullptr, 1);
    EXPECT_EQ(rig.backend.vm_info().boot_count, 1u);
    EXPECT_EQ(rig.backend.set_target(256).error(), api::SetTargetError::NotConnected);

    rig.connect_dm();
    auto info = rig.backend.memory_info();
    EXPECT_TRUE(info.dm_connected);
    EXPECT_EQ(info.boot_mib, 512u);
    EXPECT_FALSE(info.host.has_value()); // No Machine attached.
    EXPECT_EQ(rig.backend.set_target(2048).error(), api::SetTargetError::AboveMax);
    EXPECT_EQ(rig.backend.set_target(64).error(), api::SetTargetError::BelowFloor);

    auto op = rig.backend.set_target(256);
    ASSERT_TRUE(op.has_value());
    EXPECT_EQ(op->kind, "balloon");
    EXPECT_EQ(op->target_mib, 256u);
    EXPECT_EQ(rig.next_host_message(), DmMessageType::DM_BALLOON_REQUEST);
    EXPECT_EQ(rig.backend.operation(op->id)->id, op->id);
    EXPECT_EQ(rig.backend.counters().operations_started, 1u);

    auto published = rig.hub.published();
    rig.backend.detach_device(true);
    EXPECT_GT(rig.hub.published(), published); // guest_reboot (and the operation's end).
    EXPECT_EQ(rig.backend.counters().guest_reboots, 1u);
    EXPECT_EQ(rig.backend.counters().operations_started, 1u); // The detached engine's last status.
    EXPECT_FALSE(rig.backend.memory_info().dm_connected);
    EXPECT_EQ(rig.backend.set_target(256).error(), api::SetTargetError::NotConnected);
    EXPECT_TRUE(rig.offers().empty());
}

TEST(DmApiBackend, PolicySwitchesAtRunTimeAndAutoRefusesManualTargets)
{
    Rig rig;
    auto device = rig.backend.make_device(rig.setup());
    ASSERT_TRUE(device.has_value()) << device.error().what();
    rig.backend.attach_device(std::move(*device), nullptr, 1);
    rig.connect_dm();
    EXPECT_EQ(rig.backend.memory_info().policy.mode, "manual");
    EXPECT_EQ(rig.backend.memory_info().policy.min_mib, 0u); // dm_config() never ran the config checks.

    api::PolicyUpdate update;
    update.mode = "auto";
    update.min_mib = 256;
    update.max_mib = 1024;
    auto policy = rig.backend.set_policy(update);
    ASSERT_TRUE(policy.has_value()) << policy.error();
    EXPECT_EQ(policy->mode, "auto");
    EXPECT_EQ(policy->min_mib, 256u);
    auto info = rig.backend.memory_info();
    EXPECT_EQ(info.policy.mode, "auto");
    ASSERT_TRUE(info.last_decision.has_value()); // Switching evaluated the last report at once.
    EXPECT_FALSE(info.last_decision->reason.empty());
    EXPECT_EQ(rig.backend.set_target(300).error(), api::SetTargetError::AutoMode);

    // One clear error per bad field; the policy in force is unchanged.
    api::PolicyUpdate bad;
    bad.min_mib = 600; // Above memory_mib 512.
    EXPECT_NE(rig.backend.set_policy(bad).error().find("min_mib"), std::string::npos);
    bad = {};
    bad.weight = 101;
    EXPECT_NE(rig.backend.set_policy(bad).error().find("'weight'"), std::string::npos);
    bad = {};
    bad.max_mib = 2048; // Above max_memory_mib 1024.
    EXPECT_NE(rig.backend.set_policy(bad).error().find("max_mib"), std::string::npos);
    bad = {};
    bad.min_step_mib = 0;
    EXPECT_NE(rig.backend.set_policy(bad).error().find("'min_step_mib'"), std::string::npos);
    EXPECT_EQ(rig.backend.memory_info().policy.min_mib, 256u);

    api::PolicyUpdate manual;
    manual.mode = "manual";
    ASSERT_TRUE(rig.backend.set_policy(manual).has_value());
    EXPECT_TRUE(rig.backend.set_target(384).has_value());
}

TEST(DmApiBackend, HostCeilingBoundsAutoModeShowsItsLeaseAndExpires)
{
    Rig rig;
    api::CeilingRequest request { 160, 60'000 };
    EXPECT_TRUE(rig.backend.set_ceiling(request).has_value()) << "kept before the first boot";
    auto device = rig.backend.make_device(rig.setup());
    ASSERT_TRUE(device.has_value()) << device.error().what();
    rig.backend.attach_device(std::move(*device), nullptr, 1);
    rig.connect_dm();
    auto info = rig.backend.memory_info();
    ASSERT_TRUE(info.ceiling.has_value());
    EXPECT_EQ(info.ceiling->mib, 160u);
    EXPECT_EQ(info.ceiling->lease_ms, 60'000u);
    EXPECT_GT(info.ceiling->expires_in_ms, 50'000u);
    EXPECT_FALSE(info.ceiling->applied) << "manual mode keeps it, does not apply it";
    EXPECT_FALSE(info.operation.has_value());

    // Auto mode: the guest's report (50'000 pages, 195 MiB committed, of which 168 the Linux floor
    // of 512 MiB) wants about 27 * 1.2 + 168 = 200 MiB; the ceiling says 160: a balloon to 160 at
    // once, no shrink_delay.
    api::PolicyUpdate update;
    update.mode = "auto";
    update.min_mib = 128;
    ASSERT_TRUE(rig.backend.set_policy(update).has_value());
    info = rig.backend.memory_info();
    EXPECT_TRUE(info.ceiling->applied);
    EXPECT_EQ(info.target_mib, 160u);
    ASSERT_TRUE(info.last_decision.has_value());
    EXPECT_EQ(info.last_decision->reason, "shrink: above the host ceiling");
    EXPECT_EQ(info.last_decision->desired_mib, 160u);
    EXPECT_GE(*info.last_decision->wanted_mib, 195u); // About 200 (page rounding of the figures above).
    EXPECT_LE(*info.last_decision->wanted_mib, 205u);
    EXPECT_EQ(rig.next_host_message(), DmMessageType::DM_BALLOON_REQUEST);

    // Cleared: gone from the view. A short lease lapses on its own and is counted.
    auto cleared = rig.backend.set_ceiling(std::nullopt);
    ASSERT_TRUE(cleared.has_value());
    EXPECT_FALSE(cleared->has_value());
    EXPECT_FALSE(rig.backend.memory_info().ceiling.has_value());
    ASSERT_TRUE(rig.backend.set_ceiling(api::CeilingRequest { 280, 100 }).has_value());
    EXPECT_EQ(rig.backend.memory_info().ceiling->mib, 280u);
    std::this_thread::sleep_for(std::chrono::milliseconds { 150 });
    EXPECT_FALSE(rig.backend.memory_info().ceiling.has_value());
    auto counters = rig.backend.counters();
    EXPECT_EQ(counters.ceiling_changes, 2u); // 160, then 280 (clearing is not a new value).
    EXPECT_EQ(counters.ceiling_expiries, 1u);
}

TEST(DmApiBackend, CeilingIsRefusedWithoutDynamicMemory)
{
    Config config = dm_config();
    config.dynamic_memory.enabled = false;
    auto loop = EventLoop::create().value();
    api::EventHub hub;
    DmApiBackend backend { config, *loop, hub, std::chrono::steady_clock::now() };
    auto refused = backend.set_ceiling(api::CeilingRequest { 300, 1000 });
    ASSERT_FALSE(refused.has_value());
    EXPECT_NE(refused.error().find("[dynamic_memory]"), std::string::npos);
}

TEST(DmApiBackend, RebootWithLastSizeDrivesTheNextBootToIt)
{
    Rig rig;
    api::PolicyUpdate last;
    last.on_reboot_size = "last";
    last.min_mib = 128;
    ASSERT_TRUE(rig.backend.set_policy(last).has_value());
    auto device = rig.backend.make_device(rig.setup());
    ASSERT_TRUE(device.has_value()) << device.error().what();
    rig.backend.attach_device(std::move(*device), nullptr, 1);
    rig.connect_dm();
    ASSERT_TRUE(rig.backend.set_target(384).has_value());
    ASSERT_EQ(rig.next_host_message(), DmMessageType::DM_BALLOON_REQUEST);
    // The guest gives 128 MiB from [128 MiB, 256 MiB).
    std::array ranges { hv_balloon::DmPageRange::make(0x8000, 0x8000) };
    ASSERT_TRUE(rig.guest.write_packet(test::dm_balloon_response(4, false, ranges)));
    EXPECT_EQ(rig.backend.memory_info().current_mib, 384u);

    rig.backend.detach_device(true); // The guest reboots at 384 MiB.
    auto next = rig.backend.make_device(rig.setup());
    ASSERT_TRUE(next.has_value()) << next.error().what();
    rig.backend.attach_device(std::move(*next), nullptr, 2);
    auto info = rig.backend.memory_info();
    EXPECT_EQ(info.current_mib, 512u); // The boot size until the driver connects...
    EXPECT_EQ(info.target_mib, 384u);  // ...then driven to the last size.
    ASSERT_TRUE(info.operation.has_value());
    EXPECT_EQ(info.operation->state, "running");

    // With "boot" the next boot is left at its boot size.
    api::PolicyUpdate boot;
    boot.on_reboot_size = "boot";
    ASSERT_TRUE(rig.backend.set_policy(boot).has_value());
    rig.backend.detach_device(true);
    auto third = rig.backend.make_device(rig.setup());
    ASSERT_TRUE(third.has_value());
    rig.backend.attach_device(std::move(*third), nullptr, 3);
    EXPECT_FALSE(rig.backend.memory_info().operation.has_value());
}

TEST(DmDevice, ColdDiscardHintsReachTheEngineAndItsCounters)
{
    Rig rig;
    auto device = rig.backend.make_device(rig.setup());
    ASSERT_TRUE(device.has_value()) << device.error().what();
    DmDevice* raw = device->get();
    rig.backend.attach_device(std::move(*device), nullptr, 1);
    rig.connect_dm();
    // Linux's form (hv_balloon.c:1618-1629): one 2 MiB block at 128 MiB, then one in the MMIO hole.
    std::uint64_t const owned = (1ull << 11) | (64ull << 21);
    std::uint64_t const hole = (1ull << 11) | (2000ull << 21);
    EXPECT_EQ(raw->cold_discard(std::array { owned, hole, owned }), 1u);
    auto counters = rig.backend.counters();
    EXPECT_EQ(counters.reported_pages_total, 512u);
    EXPECT_EQ(counters.reporting_refused, 1u);
    EXPECT_TRUE(rig.discard.discarded.contains_all(mem::PageRange { mem::Gpn { 64 * 512 }, mem::PageCount { 512 } }));
    rig.backend.detach_device(false);
}

TEST(DmApiBackend, WithoutDeviceReportsTheBootLayout)
{
    Rig rig;
    rig.backend.attach_device(nullptr, nullptr, 3);
    auto info = rig.backend.memory_info();
    EXPECT_EQ(info.boot_mib, 512u);
    EXPECT_EQ(info.max_mib, 1024u);
    EXPECT_EQ(info.current_mib, 512u);
    EXPECT_EQ(info.floor_mib, 128u);
    EXPECT_FALSE(info.dm_connected);
    EXPECT_EQ(rig.backend.vm_info().boot_count, 3u);
    EXPECT_EQ(rig.backend.extra_metrics().find("microvmm_hot_add_memslots 0") != std::string::npos, true);
}

} // namespace
} // namespace vmm

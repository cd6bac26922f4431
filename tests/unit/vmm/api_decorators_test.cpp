// SPDX-License-Identifier: MIT
// The REST backend's decorators (NetBackend here; IcIntegration is built the same way) forward
// every call they do not change to the DM backend underneath: a hand-written forwarder once missed
// set_ceiling, so PUT /api/v1/memory/ceiling on a VM with [[net]] got the base class's refusal.
#include <gtest/gtest.h>

#include "tests/support/vmbus_fakes.hpp"
#include "vmm/api/api_backend.hpp"
#include "vmm/backends/net_backend.hpp"

namespace vmm {
namespace {

// Answers every call with a recognisable value and counts the calls that reached it.
class RecordingBackend final : public api::ApiBackend {
public:
    api::VmInfo vm_info() override { return {}; }
    api::MemoryInfo memory_info() override { return {}; }
    std::expected<api::Operation, api::SetTargetError> set_target(std::uint64_t) override
    {
        ++calls;
        return api::Operation {};
    }
    std::optional<api::Operation> operation(std::uint64_t) override { return std::nullopt; }
    api::MemoryCounters counters() override { return {}; }
    std::expected<api::MemoryPolicy, std::string> set_policy(api::PolicyUpdate const&) override
    {
        ++calls;
        return api::MemoryPolicy {};
    }
    std::expected<std::optional<api::MemoryCeiling>, std::string> set_ceiling(
        std::optional<api::CeilingRequest> const& request) override
    {
        ++calls;
        return std::optional<api::MemoryCeiling> { api::MemoryCeiling { request->mib, request->lease_ms, request->lease_ms, true } };
    }
    std::string extra_metrics() override { return "inner_metric 1\n"; }
    std::expected<api::ShutdownStarted, std::string> shutdown(api::ShutdownRequest const&) override
    {
        ++calls;
        return api::ShutdownStarted {};
    }
    int calls = 0;
};

TEST(ApiDecorators, NetBackendForwardsEveryMemoryAndLifecycleCall)
{
    RecordingBackend inner;
    NetBackend net { {}, inner }; // No NICs: nothing opened, no thread.
    auto ceiling = net.set_ceiling(api::CeilingRequest { 512, 1000 });
    ASSERT_TRUE(ceiling.has_value()) << ceiling.error();
    ASSERT_TRUE(ceiling->has_value());
    EXPECT_EQ((*ceiling)->mib, 512u);
    EXPECT_TRUE(net.set_policy(api::PolicyUpdate {}).has_value());
    EXPECT_TRUE(net.set_target(256).has_value());
    EXPECT_TRUE(net.shutdown(api::ShutdownRequest {}).has_value());
    EXPECT_EQ(inner.calls, 4);
    EXPECT_NE(net.extra_metrics().find("inner_metric 1"), std::string::npos);
}

// PUT /api/v1/net/{nic}/link: the host's cable. It reaches the device of the running boot, shows
// in GET /api/v1/vm and /metrics, and holds across a guest reboot (the next boot's device is
// offered with the link down) until the API sets it up again. No TAP is opened (no start()).
TEST(ApiDecorators, NetBackendLinkStateIsTheHostsAndOutlivesAReboot)
{
    RecordingBackend inner;
    NetSection nic;
    nic.tap = "mvtest0";
    nic.mac = { 0x02, 0x15, 0x5d, 0, 0, 7 };
    NetBackend net { { nic }, inner };
    auto memory = test::VmbusRam::make();
    test::FakeSynicPort synic;
    VmbusGlue glue { memory.memory(), synic, 1 };
    net.attach(memory.memory(), glue);
    EXPECT_EQ(net.nic_info().at(0).link, "up");
    auto down = net.set_link(0, false);
    ASSERT_TRUE(down.has_value()) << down.error();
    EXPECT_EQ(down->link, "down");
    EXPECT_EQ(net.vm_info().nics.at(0).link, "down");
    EXPECT_NE(net.extra_metrics().find("microvmm_net_link_up{nic=\"0\",tap=\"mvtest0\"} 0"), std::string::npos);
    // A reboot: the next boot's device starts with the link down.
    net.detach(glue);
    net.attach(memory.memory(), glue);
    EXPECT_EQ(net.nic_info().at(0).link, "down");
    EXPECT_EQ(net.set_link(0, true)->link, "up");
    EXPECT_NE(net.extra_metrics().find("microvmm_net_link_up{nic=\"0\",tap=\"mvtest0\"} 1"), std::string::npos);
    auto missing = net.set_link(1, false);
    ASSERT_FALSE(missing.has_value());
    EXPECT_EQ(missing.error(), "no NIC 1 (this VM has 1)");
    // Drops are listed by reason and sum to "dropped", in the JSON and in /metrics.
    auto info = net.nic_info().at(0);
    EXPECT_EQ(info.rx_dropped_by.size(), 5u);
    EXPECT_EQ(info.tx_dropped_by.size(), 4u);
    EXPECT_NE(net.extra_metrics().find("microvmm_net_rx_dropped_total{nic=\"0\",tap=\"mvtest0\",reason=\"no_driver\"} 0"),
        std::string::npos);
    net.detach(glue);
}

TEST(ApiDecorators, NoNicsMeansNoLinkToSet)
{
    RecordingBackend inner;
    NetBackend net { {}, inner };
    auto result = net.set_link(0, false);
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error(), "no NIC 0 (this VM has 0)");
}

} // namespace
} // namespace vmm

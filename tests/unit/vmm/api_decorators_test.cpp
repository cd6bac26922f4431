// SPDX-License-Identifier: MIT
// The REST backend's decorators (NetBackend here; IcIntegration is built the same way) forward
// every call they do not change to the DM backend underneath: a hand-written forwarder once missed
// set_ceiling, so PUT /api/v1/memory/ceiling on a VM with [[net]] got the base class's refusal.
#include <gtest/gtest.h>

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

} // namespace
} // namespace vmm

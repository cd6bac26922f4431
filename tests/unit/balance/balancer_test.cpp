// SPDX-License-Identifier: MIT
// Balancer rounds over a scripted transport (no sockets, no clock), then `microvmm balance
// --once` over two real API servers (ApiServer + the API tests' FakeBackend).
#include "vmm/balance/balancer.hpp"

#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <map>
#include <sstream>

#include "tests/unit/api/fake_backend.hpp"
#include "vmm/api/api_json.hpp"
#include "vmm/api/api_server.hpp"

using namespace vmm;
using namespace vmm::balance;
using nlohmann::json;

namespace {

// GET /api/v1/memory of a VM, as the real server renders it.
std::string memory_body(std::string mode, std::uint64_t current, std::uint64_t wanted, std::uint64_t min,
    std::uint64_t weight, std::uint64_t resident = 0)
{
    api::MemoryInfo info;
    info.boot_mib = 1024;
    info.max_mib = 4096;
    info.current_mib = current;
    info.policy.mode = mode;
    info.policy.min_mib = min;
    info.policy.max_mib = 4096;
    info.policy.weight = weight;
    if (wanted) {
        info.last_decision = api::PolicyDecision {};
        info.last_decision->wanted_mib = wanted;
    }
    if (resident)
        info.host = api::HostMemory { resident << 20, 0 };
    return api::dump_json(api::to_json(info));
}

// A transport that answers GETs from a table and records every call.
struct Script {
    std::map<std::string, std::string> memory; // socket -> GET body; absent: connection refused.
    std::vector<std::tuple<std::string, std::string, std::string>> calls; // socket, method, body

    Transport transport()
    {
        return [this](std::string const& socket, std::string_view method, std::string_view target,
                   std::string body) -> Result<api::CtlResponse> {
            calls.emplace_back(socket, std::string { method }, body);
            auto found = memory.find(socket);
            if (found == memory.end())
                return fail(Errc::Syscall, "connect " + socket);
            if (method == "GET" && target == "/api/v1/memory")
                return api::CtlResponse { 200, found->second };
            return api::CtlResponse { 200, "{}" };
        };
    }
    std::optional<json> put_to(std::string const& socket) const
    {
        for (auto const& [s, method, body] : calls)
            if (s == socket && method == "PUT")
                return json::parse(body);
        return std::nullopt;
    }
};

} // namespace

TEST(Balancer, ReadingTakesTheWishWithoutTheCeilingAndRefusesMissingFields)
{
    auto vm = parse_vm_reading(memory_body("auto", 1000, 1500, 256, 80, 700));
    ASSERT_TRUE(vm.has_value()) << vm.error().message();
    EXPECT_TRUE(vm->auto_mode);
    EXPECT_EQ(vm->arbiter.want_mib, 1500u);
    EXPECT_EQ(vm->arbiter.min_mib, 256u);
    EXPECT_EQ(vm->arbiter.max_mib, 4096u);
    EXPECT_EQ(vm->arbiter.weight, 80u);
    EXPECT_EQ(vm->resident_mib, 700u);
    auto fresh = parse_vm_reading(memory_body("auto", 1000, 0, 256, 80));
    EXPECT_EQ(fresh->arbiter.want_mib, 1000u) << "no evaluation yet: it keeps what it has";
    EXPECT_EQ(fresh->resident_mib, 1000u) << "no host figures: counted at its size";
    EXPECT_FALSE(parse_vm_reading("[]").has_value());
    EXPECT_FALSE(parse_vm_reading(R"({"current_mib": 5})").has_value());
    auto lying = json::parse(memory_body("auto", 1000, 1500, 256, 80));
    lying["policy"]["weight"] = -3;
    EXPECT_FALSE(parse_vm_reading(lying.dump()).has_value());
    lying["policy"]["weight"] = 1000;
    EXPECT_EQ(parse_vm_reading(lying.dump())->arbiter.weight, 100u);
}

TEST(Balancer, RoundSharesByWeightCountsManualVmsAndSkipsDeadSockets)
{
    Script script;
    script.memory["a"] = memory_body("auto", 1024, 2048, 256, 75);
    script.memory["b"] = memory_body("auto", 1024, 2048, 256, 25);
    script.memory["m"] = memory_body("manual", 512, 0, 0, 50);
    BalanceOptions options;
    options.reserve_mib = 512;
    options.lease_ms = 3000;
    Balancer balancer { options, script.transport() };
    Clock::time_point now { std::chrono::seconds { 100 } };
    // A fixed 3072 MiB budget: 512 reserve, 512 for the manual VM, 2048 to share;
    // above the minimums 1536 by 3:1 = 1152 + 384.
    auto record = balancer.round({ "a", "b", "m", "dead" }, HostFree { SupplySource::Fixed, 3072ull << 20 }, now);
    EXPECT_EQ(record["supply_mib"], 2048);
    EXPECT_EQ(record["fixed_mib"], 512);
    EXPECT_EQ(record["contended"], true);
    EXPECT_EQ(record["skipped"].size(), 1u);
    EXPECT_EQ(record["skipped"][0]["socket"], "dead");
    EXPECT_EQ(script.put_to("a"), json({ { "mib", 1408 }, { "lease_ms", 3000 } }));
    EXPECT_EQ(script.put_to("b"), json({ { "mib", 640 }, { "lease_ms", 3000 } }));
    EXPECT_FALSE(script.put_to("m")) << "manual VMs get no ceiling";

    // "a" stops answering: its running lease (1408) is counted as its use, "b" gets the rest...
    script.memory.erase("a");
    script.calls.clear();
    record = balancer.round({ "a", "b", "m" }, HostFree { SupplySource::Fixed, 3072ull << 20 }, now + std::chrono::seconds { 1 });
    EXPECT_EQ(record["skipped"][0]["counted_mib"], 1408);
    EXPECT_EQ(script.put_to("b")->at("mib"), 2048 - 1408);
    // ...and once that lease has lapsed, "a" is forgotten and "b" may have all it wants.
    script.calls.clear();
    record = balancer.round({ "a", "b", "m" }, HostFree { SupplySource::Fixed, 3072ull << 20 }, now + std::chrono::seconds { 5 });
    EXPECT_FALSE(record["skipped"][0].contains("counted_mib"));
    EXPECT_EQ(script.put_to("b")->at("mib"), 2048);

    // A clean stop releases the ceilings it leased.
    script.calls.clear();
    balancer.release();
    ASSERT_EQ(script.calls.size(), 1u);
    EXPECT_EQ(std::get<0>(script.calls[0]), "b");
    EXPECT_EQ(std::get<1>(script.calls[0]), "DELETE");
}

TEST(Balancer, MeasuredHostAddsTheVmsResidentMemoryBack)
{
    Script script;
    script.memory["a"] = memory_body("auto", 1024, 600, 256, 50, 900);
    BalanceOptions options;
    options.reserve_mib = 100;
    options.dry_run = true;
    Balancer balancer { options, script.transport() };
    auto record = balancer.round({ "a" }, HostFree { SupplySource::MemInfo, 1000ull << 20 }, Clock::time_point {});
    EXPECT_EQ(record["supply_mib"], 1000 + 900 - 100);
    EXPECT_EQ(record["vms"][0]["share_mib"], 600);
    EXPECT_EQ(record["vms"][0]["ceiling_mib"], 1800) << "headroom up to the supply when nobody else wants it";
    EXPECT_FALSE(script.put_to("a")) << "dry run";
}

// Two VMs behind real API servers; `microvmm balance --once` leases them their ceilings.
TEST(Balancer, OnceOverRealSocketsLeasesCeilingsByWeight)
{
    char pattern[] = "/tmp/microvmm-balance-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    std::string const dir = pattern;
    api::EventHub hub_a { 64 }, hub_b { 64 };
    api::test::FakeBackend a { hub_a }, b { hub_b };
    auto setup = [](api::test::FakeBackend& vm, std::uint64_t weight) {
        vm.edit_memory([&](api::MemoryInfo& m) {
            m.policy.mode = "auto";
            m.policy.min_mib = 256;
            m.policy.max_mib = 4096;
            m.policy.weight = weight;
            m.last_decision = api::PolicyDecision {};
            m.last_decision->wanted_mib = 3000;
            m.host.reset();
        });
    };
    setup(a, 60);
    setup(b, 20);
    auto config = [&](std::string name) {
        api::ApiServerConfig c;
        c.socket_path = dir + "/" + name;
        return c;
    };
    auto server_a = api::ApiServer::start(a, hub_a, config("a.sock"));
    auto server_b = api::ApiServer::start(b, hub_b, config("b.sock"));
    ASSERT_TRUE(server_a.has_value() && server_b.has_value());

    std::ostringstream out, err;
    int const rc = balance_main({ "--dir", dir, "--host-mib", "2560", "--reserve-mib", "512", "--once", "--lease-ms",
                                    "5000" },
        out, err);
    EXPECT_EQ(rc, BALANCE_OK) << err.str();
    auto record = json::parse(out.str());
    EXPECT_EQ(record["supply_mib"], 2048);
    EXPECT_EQ(record["vms"].size(), 2u);
    // 2048 - 512 of minimums = 1536 by 3:1.
    auto ceiling_a = a.memory_info().ceiling;
    auto ceiling_b = b.memory_info().ceiling;
    ASSERT_TRUE(ceiling_a && ceiling_b) << out.str();
    EXPECT_EQ(ceiling_a->mib, 256u + 1152u);
    EXPECT_EQ(ceiling_b->mib, 256u + 384u);
    EXPECT_EQ(ceiling_a->lease_ms, 5000u);
    EXPECT_TRUE(ceiling_a->applied);

    server_a->reset();
    server_b->reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
}

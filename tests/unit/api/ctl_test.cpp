// SPDX-License-Identifier: MIT
// `microvmm ctl` against the real server over a FakeBackend.
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "tests/unit/api/api_test_fixture.hpp"
#include "vmm/api/ctl.hpp"

namespace vmm::api::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

struct CtlRun {
    int code;
    std::string out;
    std::string err;
};

class CtlTest : public ApiServerTest {
protected:
    CtlRun ctl(std::vector<std::string> args)
    {
        std::ostringstream out, err;
        args.insert(args.begin(), { "--socket", m_path });
        int code = ctl_main(args, out, err);
        return { code, out.str(), err.str() };
    }
    void wait_for_operation()
    {
        for (int i = 0; i < 400 && !(m_fake.last() && m_fake.last()->running()); ++i)
            std::this_thread::sleep_for(5ms);
        ASSERT_TRUE(m_fake.last().has_value());
    }
};

TEST_F(CtlTest, MemoryGetPrintsPrettyJson)
{
    start();
    auto run = ctl({ "memory", "get" });
    EXPECT_EQ(run.code, 0) << run.err;
    EXPECT_NE(run.out.find("\n  \"boot_mib\": 1024"), std::string::npos) << run.out;
    EXPECT_EQ(json::parse(run.out)["max_mib"], 4096);
}

TEST_F(CtlTest, VmGetAndMetricsWork)
{
    start();
    auto vm = ctl({ "vm", "get" });
    EXPECT_EQ(vm.code, 0);
    EXPECT_EQ(json::parse(vm.out)["vcpus"], 2);
    auto metrics = ctl({ "metrics" });
    EXPECT_EQ(metrics.code, 0);
    EXPECT_NE(metrics.out.find("microvmm_memory_target_bytes 1073741824"), std::string::npos);
}

TEST_F(CtlTest, MemorySetPrintsTheOperation)
{
    start();
    auto run = ctl({ "memory", "set", "512" });
    EXPECT_EQ(run.code, 0) << run.err;
    auto op = json::parse(run.out);
    EXPECT_EQ(op["target_mib"], 512);
    EXPECT_EQ(op["state"], "running");
    EXPECT_EQ(m_fake.last()->target_mib, 512u);
}

TEST_F(CtlTest, MemorySetErrorsPrintTheFaultMessageAndExit1)
{
    start();
    auto run = ctl({ "memory", "set", "99999" });
    EXPECT_EQ(run.code, 1);
    EXPECT_EQ(run.err, "error: 400 target_mib 99999 is above max_memory_mib 4096\n");
    m_fake.set_connected(false);
    run = ctl({ "memory", "set", "512" });
    EXPECT_EQ(run.code, 1);
    EXPECT_NE(run.err.find("503"), std::string::npos);
}

TEST_F(CtlTest, MemorySetWaitStreamsProgressUntilDone)
{
    start();
    std::thread guest([&] {
        wait_for_operation();
        m_fake.advance(100);
        m_fake.advance(100);
        m_fake.finish();
    });
    auto run = ctl({ "memory", "set", "512", "--wait" });
    guest.join();
    EXPECT_EQ(run.code, 0) << run.err;
    // The operation (pretty), then one line per progress event and the final one.
    std::istringstream lines(run.out.substr(run.out.find("\n}\n") + 3));
    std::vector<json> events;
    for (std::string line; std::getline(lines, line);)
        events.push_back(json::parse(line));
    ASSERT_EQ(events.size(), 3u) << run.out;
    EXPECT_EQ(events[0]["event"], "operation_progress");
    EXPECT_EQ(events[0]["done_mib"], 100);
    EXPECT_EQ(events[1]["done_mib"], 200);
    EXPECT_EQ(events[2]["event"], "operation_done");
    EXPECT_EQ(events[2]["state"], "done");
}

TEST_F(CtlTest, MemorySetWaitExits1WhenTheOperationFails)
{
    start();
    std::thread guest([&] {
        wait_for_operation();
        m_fake.finish("failed");
    });
    auto run = ctl({ "memory", "set", "2048", "--wait" });
    guest.join();
    EXPECT_EQ(run.code, 1);
    EXPECT_NE(run.err.find("ended failed: test says failed"), std::string::npos) << run.err;
}

TEST_F(CtlTest, MemorySetWithServerSideTimeout)
{
    start();
    std::thread guest([&] {
        wait_for_operation();
        std::this_thread::sleep_for(50ms);
        m_fake.finish();
    });
    auto run = ctl({ "memory", "set", "2048", "--timeout-ms", "5000" });
    guest.join();
    EXPECT_EQ(run.code, 0) << run.err;
    EXPECT_EQ(json::parse(run.out)["state"], "done");
}

TEST_F(CtlTest, EventsStreamsLines)
{
    start();
    std::thread publisher([&] {
        for (int i = 0; i < 400 && m_hub.subscribers() == 0; ++i)
            std::this_thread::sleep_for(5ms);
        m_hub.publish("dm_connected", { { "protocol_version", 0x20000 } });
        m_hub.publish("guest_reboot");
    });
    auto run = ctl({ "events", "--count", "2" });
    publisher.join();
    EXPECT_EQ(run.code, 0) << run.err;
    std::istringstream lines(run.out);
    std::string first, second;
    std::getline(lines, first);
    std::getline(lines, second);
    EXPECT_EQ(json::parse(first)["event"], "dm_connected");
    EXPECT_EQ(json::parse(second)["event"], "guest_reboot");
}

TEST_F(CtlTest, UsageErrorsExit2)
{
    start();
    EXPECT_EQ(ctl({ "memory", "set" }).code, 2);
    EXPECT_EQ(ctl({ "memory", "set", "lots" }).code, 2);
    EXPECT_EQ(ctl({ "memory" }).code, 2);
    EXPECT_EQ(ctl({ "frobnicate" }).code, 2);
    std::ostringstream out, err;
    EXPECT_EQ(ctl_main({ "memory", "get" }, out, err), 2) << "--socket is required";
    EXPECT_EQ(ctl_main({ "--help" }, out, err), 0);
    EXPECT_NE(out.str().find("memory"), std::string::npos);
}

TEST_F(CtlTest, CtlSubcommandHandsEverythingAfterItToCtlMain)
{
    start();
    // As vmm/main.cpp does it: a top-level app with its own options, ctl as a subcommand.
    CLI::App app { "microvmm", "microvmm" };
    std::string config;
    app.add_option("-c,--config", config);
    auto* sub = add_ctl_subcommand(app);
    std::vector<std::string> argv_words { "microvmm", "ctl", "--socket", m_path, "memory", "get" };
    std::vector<char*> argv;
    for (auto& word : argv_words)
        argv.push_back(word.data());
    app.parse(static_cast<int>(argv.size()), argv.data());
    ASSERT_TRUE(sub->parsed());
    EXPECT_EQ(sub->remaining(), (std::vector<std::string> { "--socket", m_path, "memory", "get" }));
    std::ostringstream out, err;
    EXPECT_EQ(ctl_main(sub->remaining(), out, err), 0) << err.str();
    EXPECT_EQ(json::parse(out.str())["boot_mib"], 1024);

    CLI::App help_app { "microvmm", "microvmm" };
    auto* help_sub = add_ctl_subcommand(help_app);
    std::vector<std::string> help_words { "microvmm", "ctl", "--help" };
    std::vector<char*> help_argv;
    for (auto& word : help_words)
        help_argv.push_back(word.data());
    help_app.parse(static_cast<int>(help_argv.size()), help_argv.data());
    EXPECT_EQ(help_sub->remaining(), (std::vector<std::string> { "--help" }));
}

TEST_F(CtlTest, UnreachableServerExits1)
{
    auto run = ctl({ "memory", "get" }); // Nothing listens on m_path.
    EXPECT_EQ(run.code, 1);
    EXPECT_NE(run.err.find("connect"), std::string::npos) << run.err;
}

} // namespace
} // namespace vmm::api::test

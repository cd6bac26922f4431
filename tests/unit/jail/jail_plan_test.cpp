// SPDX-License-Identifier: MIT
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <toml++/toml.h>

#include "vmm/config.hpp"

#include "vmm/jail/jail_plan.hpp"

namespace {

using vmm::jail::plan_jail;

TEST(JailPlan, KernelAndInitrdAreReadOnlyBindsAndTheConfigPointsInside)
{
    auto plan = plan_jail(R"(
[machine]
memory_mib = 256
[boot]
kernel = "/img/vmlinux"
initrd = "rel/initrd.cpio"
cmdline = "console=ttyS0"
)", "/cfg");
    ASSERT_TRUE(plan) << plan.error().message();
    ASSERT_EQ(plan->mounts.size(), 2u);
    EXPECT_EQ(plan->mounts[0].source, "/img/vmlinux");
    EXPECT_EQ(plan->mounts[0].target, "/boot/kernel");
    EXPECT_TRUE(plan->mounts[0].read_only);
    EXPECT_EQ(plan->mounts[1].source, "/cfg/rel/initrd.cpio"); // Relative to the config's directory.
    EXPECT_EQ(plan->mounts[1].target, "/boot/initrd");
    EXPECT_TRUE(plan->mounts[1].read_only);
    EXPECT_EQ(plan->devices, std::vector<std::filesystem::path> { "/dev/kvm" }); // No TAP: no /dev/net/tun.
    EXPECT_EQ(plan->api_socket, "/run/api.sock");
    auto rewritten = toml::parse(plan->config_text);
    EXPECT_EQ(rewritten["boot"]["kernel"].value_or(std::string {}), "/boot/kernel");
    EXPECT_EQ(rewritten["boot"]["initrd"].value_or(std::string {}), "/boot/initrd");
    EXPECT_EQ(rewritten["boot"]["cmdline"].value_or(std::string {}), "console=ttyS0");
    EXPECT_EQ(rewritten["machine"]["memory_mib"].value_or(0), 256);
    // The API is always on inside the jail.
    EXPECT_EQ(rewritten["api"]["socket"].value_or(std::string {}), "/run/api.sock");
}

TEST(JailPlan, SocketsSerialDisksAndTapMoveIntoTheJail)
{
    auto plan = plan_jail(R"(
[boot]
kernel = "/k"
[api]
socket = "/var/run/vm.sock"
[vsock]
uds_path = "/tmp/v.sock"
[serial]
output = "/var/log/vm.log"
[[disk]]
path = "/images/root.img"
read_only = true
[[disk]]
path = "data.img"
[[net]]
tap = "tap0"
)", "/etc/vm");
    ASSERT_TRUE(plan) << plan.error().message();
    auto rewritten = toml::parse(plan->config_text);
    EXPECT_EQ(rewritten["api"]["socket"].value_or(std::string {}), "/run/api.sock");
    EXPECT_EQ(rewritten["vsock"]["uds_path"].value_or(std::string {}), "/run/vsock.sock");
    EXPECT_EQ(plan->vsock_socket, std::filesystem::path("/run/vsock.sock"));
    EXPECT_EQ(rewritten["serial"]["output"].value_or(std::string {}), "/run/serial.out");
    EXPECT_EQ(rewritten["disk"][0]["path"].value_or(std::string {}), "/disk/0");
    EXPECT_EQ(rewritten["disk"][1]["path"].value_or(std::string {}), "/disk/1");
    EXPECT_EQ(rewritten["disk"][0]["read_only"].value_or(false), true);
    EXPECT_EQ(rewritten["net"][0]["tap"].value_or(std::string {}), "tap0");
    ASSERT_EQ(plan->mounts.size(), 4u);
    EXPECT_EQ(plan->mounts[1].source, "/images/root.img");
    EXPECT_TRUE(plan->mounts[1].read_only);
    EXPECT_EQ(plan->mounts[2].source, "/etc/vm/data.img");
    EXPECT_FALSE(plan->mounts[2].read_only); // The guest writes it.
    EXPECT_EQ(plan->mounts[3].source, "/var/log/vm.log");
    EXPECT_EQ(plan->mounts[3].target, "/run/serial.out");
    EXPECT_FALSE(plan->mounts[3].read_only);
    EXPECT_TRUE(plan->mounts[3].create);
    EXPECT_EQ(plan->devices, (std::vector<std::filesystem::path> { "/dev/kvm", "/dev/net/tun" }));
    // No host path survives in the rewritten configuration.
    for (char const* host : { "/images", "/etc/vm", "/var/", "/tmp/" })
        EXPECT_EQ(plan->config_text.find(host), std::string::npos) << host << " in\n" << plan->config_text;
}

TEST(JailPlan, SerialOnStdoutStaysThere)
{
    auto plan = plan_jail("[boot]\nkernel = \"/k\"\n[serial]\noutput = \"stdout\"\n", "/");
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->mounts.size(), 1u);
    EXPECT_NE(plan->config_text.find("stdout"), std::string::npos);
}

TEST(JailPlan, MalformedInputsNameTheKey)
{
    struct Case {
        char const* text;
        char const* key;
    } const cases[] = {
        { "[machine]\n", "boot" },
        { "[boot]\ncmdline = \"x\"\n", "boot.kernel" },
        { "[boot]\nkernel = \"\"\n", "boot.kernel" },
        { "[boot]\nkernel = 3\n", "boot.kernel" },
        { "[boot]\nkernel = \"/k\"\ninitrd = false\n", "boot.initrd" },
        { "disk = 1\n[boot]\nkernel = \"/k\"\n", "disk" },
        { "[boot]\nkernel = \"/k\"\n[[disk]]\nread_only = true\n", "disk[0].path" },
        { "api = 1\n[boot]\nkernel = \"/k\"\n", "api" },
        { "[boot\n", "configuration" },
    };
    for (auto const& c : cases) {
        auto plan = plan_jail(c.text, "/");
        ASSERT_FALSE(plan) << c.text;
        EXPECT_EQ(plan.error().code(), vmm::Errc::Config);
        EXPECT_NE(plan.error().message().find(c.key), std::string::npos) << plan.error().message();
    }
}

} // namespace

namespace {

// Every example configuration survives the rewrite: what the jailed VMM parses is the same
// machine, with the jail's paths.
TEST(JailPlan, EveryExampleConfigParsesTheSameAfterTheRewrite)
{
    namespace fs = std::filesystem;
    fs::path const dir = fs::path(MICROVMM_SOURCE_ROOT) / "configs";
    int seen = 0;
    for (auto const& entry : fs::directory_iterator(dir)) {
        if (entry.path().extension() != ".toml")
            continue;
        ++seen;
        std::ifstream file { entry.path() };
        std::string const text { std::istreambuf_iterator<char> { file }, std::istreambuf_iterator<char> {} };
        auto original = vmm::parse_config(text, dir);
        ASSERT_TRUE(original) << entry.path() << ": " << original.error().message();
        auto plan = plan_jail(text, dir);
        ASSERT_TRUE(plan) << entry.path() << ": " << plan.error().message();
        auto jailed = vmm::parse_config(plan->config_text, "/");
        ASSERT_TRUE(jailed) << entry.path() << ": " << jailed.error().message() << "\n" << plan->config_text;
        if (original->boot.firmware == vmm::BootFirmware::Direct) {
            EXPECT_EQ(jailed->boot.kernel, "/boot/kernel");
            EXPECT_EQ(plan->mounts[0].source, original->boot.kernel);
        }
        EXPECT_EQ(jailed->boot.firmware, original->boot.firmware);
        if (original->serial.output_file)
            EXPECT_EQ(jailed->serial.output_file, std::filesystem::path("/run/serial.out"));
        EXPECT_EQ(jailed->boot.cmdline, original->boot.cmdline);
        EXPECT_EQ(jailed->machine.vcpus, original->machine.vcpus);
        EXPECT_EQ(jailed->machine.memory_mib, original->machine.memory_mib);
        EXPECT_EQ(jailed->machine.max_memory_mib, original->machine.max_memory_mib);
        EXPECT_EQ(jailed->dynamic_memory.enabled, original->dynamic_memory.enabled);
        EXPECT_EQ(jailed->dynamic_memory.auto_mode, original->dynamic_memory.auto_mode);
        EXPECT_EQ(jailed->hyperv.enabled, original->hyperv.enabled);
        EXPECT_EQ(jailed->integration.enabled, original->integration.enabled);
        EXPECT_EQ(jailed->guest_info.pairs, original->guest_info.pairs);
        EXPECT_EQ(jailed->api.socket, std::filesystem::path("/run/api.sock"));
    }
    EXPECT_GE(seen, 2);
}

} // namespace

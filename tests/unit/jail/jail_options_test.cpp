// SPDX-License-Identifier: MIT
#include <gtest/gtest.h>

#include "vmm/jail/jail_options.hpp"
#include "vmm/jail/jailer.hpp"

namespace {

using namespace vmm::jail;
using Args = std::vector<std::string>;

Args base_args()
{
    return { "--id", "vm-1", "--uid", "1000", "--gid", "1001", "--config", "vm.toml" };
}

TEST(JailOptions, MinimalCommandLineGetsTheDefaults)
{
    auto options = parse_jail_args(base_args());
    ASSERT_TRUE(options) << options.error().message();
    EXPECT_EQ(options->id, "vm-1");
    EXPECT_EQ(options->uid, 1000u);
    EXPECT_EQ(options->gid, 1001u);
    EXPECT_EQ(options->config, "vm.toml");
    EXPECT_EQ(options->chroot_base, "/srv/jailer");
    EXPECT_EQ(jail_root(*options), "/srv/jailer/microvmm/vm-1/root"); // Firecracker's layout.
    EXPECT_FALSE(options->netns);
    EXPECT_FALSE(options->new_netns);
    EXPECT_EQ(options->cgroup_root, "/sys/fs/cgroup");
    EXPECT_EQ(options->cgroup_version, "auto");
    EXPECT_FALSE(options->memory_overhead_mib);
}

TEST(JailOptions, EveryOptionParses)
{
    auto args = base_args();
    for (char const* word : { "--chroot-base-dir", "/j", "--netns", "/var/run/netns/x", "--cgroup-root", "/cg",
                              "--cgroup-version", "2", "--memory-overhead-mib", "48", "--cpus", "1.5", "--pids-max",
                              "40", "--log-level", "debug" })
        args.push_back(word);
    auto options = parse_jail_args(args);
    ASSERT_TRUE(options) << options.error().message();
    EXPECT_EQ(jail_root(*options), "/j/microvmm/vm-1/root");
    EXPECT_EQ(options->netns, std::filesystem::path("/var/run/netns/x"));
    EXPECT_EQ(options->cgroup_root, "/cg");
    EXPECT_EQ(options->cgroup_version, "2");
    EXPECT_EQ(options->memory_overhead_mib, 48u);
    EXPECT_EQ(options->cpus, 1.5);
    EXPECT_EQ(options->pids_max, 40u);
    EXPECT_EQ(options->log_level, "debug");
}

TEST(JailOptions, UidAndGidValidation)
{
    EXPECT_EQ(parse_id_number("0", "--uid").value(), 0u);
    EXPECT_EQ(parse_id_number("4294967294", "--uid").value(), 4294967294u);
    for (char const* bad : { "", "-1", "4294967295", "99999999999", "12a", " 1", "root", "0x10" }) {
        auto parsed = parse_id_number(bad, "--uid");
        ASSERT_FALSE(parsed) << bad;
        EXPECT_NE(parsed.error().message().find("--uid"), std::string::npos);
    }
    // Root is refused unless forced, for the uid and the gid.
    for (Args args : { Args { "--id", "a", "--uid", "0", "--gid", "5", "--config", "c" },
                       Args { "--id", "a", "--uid", "5", "--gid", "0", "--config", "c" } }) {
        auto refused = parse_jail_args(args);
        ASSERT_FALSE(refused);
        EXPECT_NE(refused.error().message().find("--allow-root"), std::string::npos);
        args.push_back("--allow-root");
        EXPECT_TRUE(parse_jail_args(args));
    }
}

TEST(JailOptions, IdValidation)
{
    EXPECT_TRUE(check_jail_id("Vm-01"));
    EXPECT_TRUE(check_jail_id(std::string(64, 'a')));
    for (std::string bad : { std::string {}, std::string(65, 'a'), std::string("a/b"), std::string(".."),
                             std::string("a b"), std::string("vm_1"), std::string("a.b") }) {
        auto checked = check_jail_id(bad);
        ASSERT_FALSE(checked) << bad;
        EXPECT_NE(checked.error().message().find("--id"), std::string::npos);
    }
}

TEST(JailOptions, BadCommandLinesGetOneErrorNamingTheOption)
{
    struct Case {
        Args extra;
        char const* names;
    } const cases[] = {
        { { "--netns", "/x", "--new-netns" }, "--netns" },
        { { "--chroot-base-dir", "relative/dir" }, "--chroot-base-dir" },
        { { "--cgroup-version", "3" }, "--cgroup-version" },
        { { "--memory-overhead-mib", "70000" }, "--memory-overhead-mib" },
        { { "--memory-overhead-mib", "-5" }, "--memory-overhead-mib" },
        { { "--cpus", "0" }, "--cpus" },
        { { "--cpus", "nan" }, "--cpus" },
        { { "--pids-max", "3" }, "--pids-max" },
        { { "--log-level", "loud" }, "--log-level" },
        { { "--bogus" }, "--bogus" },
    };
    for (auto const& c : cases) {
        auto args = base_args();
        args.insert(args.end(), c.extra.begin(), c.extra.end());
        auto parsed = parse_jail_args(args);
        ASSERT_FALSE(parsed) << c.names;
        EXPECT_EQ(parsed.error().code(), vmm::Errc::Config);
        EXPECT_NE(parsed.error().message().find(c.names), std::string::npos) << parsed.error().message();
    }
    for (char const* missing : { "--id", "--uid", "--gid", "--config" }) {
        Args args;
        auto full = base_args();
        for (std::size_t i = 0; i < full.size(); i += 2)
            if (full[i] != missing)
                args.insert(args.end(), { full[i], full[i + 1] });
        auto parsed = parse_jail_args(args);
        ASSERT_FALSE(parsed) << missing;
        EXPECT_NE(parsed.error().message().find(missing), std::string::npos) << parsed.error().message();
    }
}

TEST(JailMain, UsageAndConfigErrorsExitTwoBeforeTouchingTheHost)
{
    EXPECT_EQ(jail_main({ "--id", "x" }), 2);
    EXPECT_EQ(jail_main({ "--id", "x", "--uid", "1", "--gid", "1", "--config", "/nonexistent/vm.toml" }), 2);
}

} // namespace

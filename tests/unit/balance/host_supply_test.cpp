// SPDX-License-Identifier: MIT
// What the host can give: /proc/meminfo and cgroup figures (vmm/balance/host_supply.hpp).
#include "vmm/balance/host_supply.hpp"

#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>

using namespace vmm::balance;

namespace {

struct TempDir {
    std::string path;
    TempDir()
    {
        char pattern[] = "/tmp/microvmm-balance-XXXXXX";
        path = ::mkdtemp(pattern);
    }
    ~TempDir()
    {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
    void write(std::string const& name, std::string const& text) const { std::ofstream(path + "/" + name) << text; }
};

} // namespace

TEST(HostSupply, MemAvailableIsReadInKiB)
{
    auto got = parse_meminfo_available("MemTotal:       24578048 kB\nMemFree:         1234 kB\n"
                                       "MemAvailable:   20971520 kB\nBuffers:  1 kB\n");
    ASSERT_TRUE(got.has_value()) << got.error().message();
    EXPECT_EQ(*got, 20971520ull << 10);
    EXPECT_FALSE(parse_meminfo_available("MemTotal: 1 kB\n").has_value());
    EXPECT_FALSE(parse_meminfo_available("MemAvailable: lots kB\n").has_value());
    EXPECT_FALSE(parse_meminfo_available("MemAvailable: 12\n").has_value());
    EXPECT_FALSE(parse_meminfo_available("MemAvailable: 99999999999999999999999 kB\n").has_value());
}

TEST(HostSupply, CgroupFiguresAndTheirUnlimitedForms)
{
    EXPECT_EQ(*parse_cgroup_bytes("1073741824\n"), std::optional<std::uint64_t> { 1ull << 30 });
    EXPECT_EQ(*parse_cgroup_bytes("max\n"), std::nullopt);                 // v2
    EXPECT_EQ(*parse_cgroup_bytes("9223372036854771712\n"), std::nullopt); // v1 PAGE_COUNTER_MAX * 4096
    EXPECT_FALSE(parse_cgroup_bytes("-1").has_value());
    EXPECT_FALSE(parse_cgroup_bytes("").has_value());
}

TEST(HostSupply, ReadsCgroupV2ThenV1AndRefusesAnUnlimitedOne)
{
    TempDir v2;
    v2.write("memory.max", "4294967296\n");
    v2.write("memory.current", "1073741824\n");
    auto free = read_cgroup(v2.path);
    ASSERT_TRUE(free.has_value()) << free.error().message();
    EXPECT_EQ(free->source, SupplySource::Cgroup);
    EXPECT_EQ(free->free_bytes, 3ull << 30);

    TempDir v1;
    v1.write("memory.limit_in_bytes", "2147483648\n");
    v1.write("memory.usage_in_bytes", "3221225472\n"); // Over the limit (swap, page cache): 0.
    free = read_cgroup(v1.path);
    ASSERT_TRUE(free.has_value());
    EXPECT_EQ(free->free_bytes, 0u);

    TempDir unlimited;
    unlimited.write("memory.max", "max\n");
    unlimited.write("memory.current", "1\n");
    auto refused = read_cgroup(unlimited.path);
    ASSERT_FALSE(refused.has_value());
    EXPECT_NE(refused.error().message().find("no memory limit"), std::string::npos);
    EXPECT_FALSE(read_cgroup("/nonexistent").has_value());
}

TEST(HostSupply, SupplyAddsTheVmsResidentBackAndKeepsTheReserve)
{
    HostFree const meminfo { SupplySource::MemInfo, 3000ull << 20 };
    EXPECT_EQ(supply_mib(meminfo, 1000, 512), 3488u);
    EXPECT_EQ(supply_mib(meminfo, 0, 5000), 0u);
    HostFree const fixed { SupplySource::Fixed, 2048ull << 20 };
    EXPECT_EQ(supply_mib(fixed, 1000, 256), 1792u) << "a fixed budget already counts the VMs";
    EXPECT_EQ(supply_mib(meminfo, UINT64_MAX, 0), UINT64_MAX);
}

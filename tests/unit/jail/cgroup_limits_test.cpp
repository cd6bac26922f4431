// SPDX-License-Identifier: MIT
// The cgroup file writes against a fake tree in a temp dir (this host's kernel runs cgroup v1
// only, so v2's logic is proven here; the v1 writes are also proven for real by e2e-jail).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "vmm/jail/cgroup_limits.hpp"
#include "vmm/jail/jail_options.hpp"

namespace {

namespace fs = std::filesystem;
using namespace vmm::jail;

class FakeCgroupTree : public ::testing::Test {
protected:
    void SetUp() override
    {
        char templ[] = "/tmp/jail_cgroup_XXXXXX";
        ASSERT_NE(::mkdtemp(templ), nullptr);
        root = templ;
    }
    void TearDown() override { fs::remove_all(root); }
    std::string read(fs::path const& relative) const
    {
        std::ifstream in { root / relative };
        return { std::istreambuf_iterator<char> { in }, std::istreambuf_iterator<char> {} };
    }
    void touch(fs::path const& relative, std::string const& text = "") const
    {
        fs::create_directories((root / relative).parent_path());
        std::ofstream { root / relative } << text;
    }
    fs::path root;
};

CgroupLimits some_limits()
{
    CgroupLimits limits;
    limits.memory_bytes = 576ull << 20;
    limits.cpu_quota_us = 150'000;
    limits.cpu_period_us = 100'000;
    limits.pids_max = 66;
    return limits;
}

TEST_F(FakeCgroupTree, V2WritesMemoryMaxCpuMaxPidsMaxAndEnablesControllers)
{
    touch("cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
    ASSERT_EQ(detect_cgroup_version(root).value(), CgroupVersion::V2);
    {
        auto cgroup = JailCgroup::create(root, CgroupVersion::V2, "vm-1", some_limits());
        ASSERT_TRUE(cgroup) << cgroup.error().message();
        EXPECT_EQ(read("cgroup.subtree_control"), "+memory +cpu +pids");
        EXPECT_EQ(read("microvmm/cgroup.subtree_control"), "+memory +cpu +pids");
        EXPECT_EQ(read("microvmm/vm-1/memory.max"), std::to_string(576ull << 20));
        EXPECT_EQ(read("microvmm/vm-1/cpu.max"), "150000 100000");
        EXPECT_EQ(read("microvmm/vm-1/pids.max"), "66");
        ASSERT_TRUE(cgroup->add(4242));
        EXPECT_EQ(read("microvmm/vm-1/cgroup.procs"), "4242");
        // A second VM with the same id is refused, naming the directory.
        auto again = JailCgroup::create(root, CgroupVersion::V2, "vm-1", some_limits());
        ASSERT_FALSE(again);
        EXPECT_EQ(again.error().code(), vmm::Errc::Config);
        EXPECT_NE(again.error().message().find("microvmm/vm-1 already exists"), std::string::npos);
    }
    EXPECT_FALSE(fs::exists(root / "microvmm/vm-1")); // Removed with the handle.
    EXPECT_TRUE(fs::exists(root / "microvmm"));        // The shared parent stays.
}

TEST_F(FakeCgroupTree, V2UnlimitedCpuAndPidsAreMax)
{
    CgroupLimits limits;
    limits.memory_bytes = 1 << 30;
    auto cgroup = JailCgroup::create(root, CgroupVersion::V2, "a", limits);
    ASSERT_TRUE(cgroup);
    EXPECT_EQ(read("microvmm/a/cpu.max"), "max 100000");
    EXPECT_EQ(read("microvmm/a/pids.max"), "max");
}

TEST_F(FakeCgroupTree, V1WritesEachControllersFilesAndJoinsEveryHierarchy)
{
    for (char const* c : { "memory", "cpu", "pids" })
        fs::create_directories(root / c);
    ASSERT_EQ(detect_cgroup_version(root).value(), CgroupVersion::V1);
    {
        auto cgroup = JailCgroup::create(root, CgroupVersion::V1, "vm-2", some_limits());
        ASSERT_TRUE(cgroup) << cgroup.error().message();
        EXPECT_EQ(read("memory/microvmm/vm-2/memory.limit_in_bytes"), std::to_string(576ull << 20));
        EXPECT_EQ(read("cpu/microvmm/vm-2/cpu.cfs_period_us"), "100000");
        EXPECT_EQ(read("cpu/microvmm/vm-2/cpu.cfs_quota_us"), "150000");
        EXPECT_EQ(read("pids/microvmm/vm-2/pids.max"), "66");
        ASSERT_TRUE(cgroup->add(77));
        for (char const* c : { "memory", "cpu", "pids" })
            EXPECT_EQ(read(fs::path(c) / "microvmm/vm-2/cgroup.procs"), "77") << c;
        EXPECT_EQ(cgroup->directories().size(), 3u);
    }
    for (char const* c : { "memory", "cpu", "pids" })
        EXPECT_FALSE(fs::exists(root / c / "microvmm/vm-2")) << c;
}

TEST_F(FakeCgroupTree, V1NoQuotaIsMinusOne)
{
    for (char const* c : { "memory", "cpu", "pids" })
        fs::create_directories(root / c);
    CgroupLimits limits;
    limits.memory_bytes = 1;
    auto cgroup = JailCgroup::create(root, CgroupVersion::V1, "b", limits);
    ASSERT_TRUE(cgroup);
    EXPECT_EQ(read("cpu/microvmm/b/cpu.cfs_quota_us"), "-1");
}

TEST_F(FakeCgroupTree, HybridWithoutControllersIsAnError)
{
    // This host's shape without v1: a v2 mount whose cgroup.controllers is empty.
    touch("cgroup.controllers", "\n");
    auto version = detect_cgroup_version(root);
    ASSERT_FALSE(version);
    EXPECT_NE(version.error().message().find("--no-cgroup"), std::string::npos);
    touch("cgroup.controllers", "memory pids\n"); // No cpu.
    EXPECT_FALSE(detect_cgroup_version(root));
}

TEST_F(FakeCgroupTree, AFailedCreateLeavesNothingBehind)
{
    // v1 with pids/microvmm/c already there: memory and cpu were made first and go again.
    for (char const* c : { "memory", "cpu", "pids" })
        fs::create_directories(root / c);
    fs::create_directories(root / "pids/microvmm/c");
    auto cgroup = JailCgroup::create(root, CgroupVersion::V1, "c", some_limits());
    ASSERT_FALSE(cgroup);
    EXPECT_FALSE(fs::exists(root / "memory/microvmm/c"));
    EXPECT_FALSE(fs::exists(root / "cpu/microvmm/c"));
    EXPECT_TRUE(fs::exists(root / "pids/microvmm/c")); // Not ours: left alone.
}

TEST(JailLimits, MemoryCoversBootRamPlusHotAddPlusOverhead)
{
    JailOptions options;
    // 256 MiB boot, 512 MiB maximum (256 MiB hot-add window): 512 + 32 + 4 * 1 GiB.
    auto limits = jail_limits(1, 256, 512, false, options);
    EXPECT_EQ(limits.memory_bytes, (512ull + 32 + 4) << 20);
    EXPECT_EQ(limits.cpu_quota_us, 200'000u); // vCPUs + 1.
    EXPECT_EQ(limits.cpu_period_us, 100'000u);
    EXPECT_EQ(limits.pids_max, 1 + DEFAULT_PIDS_BEYOND_VCPUS);
    // No hot-add window (max_memory_mib 0): the boot RAM; 4 GiB -> 16 MiB of KVM metadata.
    EXPECT_EQ(jail_limits(2, 4096, 0, false, options).memory_bytes, (4096ull + 32 + 16) << 20);
    // hv_sock on: 512 connections x 2 x 256 KiB of buffers more.
    EXPECT_EQ(jail_limits(1, 256, 512, true, options).memory_bytes, (512ull + 36 + 256) << 20);
    options.memory_overhead_mib = 100;
    options.cpus = 0.5;
    options.pids_max = 20;
    limits = jail_limits(4, 1024, 2048, true, options);
    EXPECT_EQ(limits.memory_bytes, (2048ull + 100) << 20);
    EXPECT_EQ(limits.cpu_quota_us, 50'000u);
    EXPECT_EQ(limits.pids_max, 20u);
    options.cpus = 0.001; // Below the kernel's 1 ms minimum quota.
    EXPECT_EQ(jail_limits(1, 1, 1, false, options).cpu_quota_us, 1000u);
}

} // namespace

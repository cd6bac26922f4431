// SPDX-License-Identifier: MIT
// The fuzz_nvme seeds recorded from the Linux test guest (tests/fuzz/record_traffic.py --mode
// nvme-root, then traffic_to_corpus.py) reach the controller's real paths, not only its
// refusals: the guest's own admin bring-up creates its I/O queues, and its reads and writes (PRP
// lists included) reach the back-end and complete. The one command refused is the one the real
// controller refuses too: Linux's Identify CNS 06h (I/O command set specific controller, NVMe
// 2.0; Linux 6.1 drivers/nvme/host/core.c:3181, failure tolerated) gets Invalid Field from a 1.4
// controller.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "tests/support/nvme_fuzz_driver.hpp"

namespace {

std::vector<std::uint8_t> read_seed(std::filesystem::path const& path)
{
    std::ifstream in { path, std::ios::binary };
    return { std::istreambuf_iterator<char> { in }, {} };
}

} // namespace

TEST(NvmeCorpus, RecordedLinuxSeedsReachReadsAndWrites)
{
    namespace fs = std::filesystem;
    vmm::nvme::NvmeStats total;
    std::size_t seeds = 0;
    for (auto const& file : fs::directory_iterator { NVME_CORPUS_DIR }) {
        if (!file.path().filename().string().starts_with("recorded-linux-"))
            continue;
        auto bytes = read_seed(file.path());
        vmm::nvme::NvmeStats stats;
        vmm::test::run_nvme_fuzz_input(bytes.data(), bytes.size(), &stats);
        EXPECT_EQ(stats.guest_errors, 1u) << file.path();
        EXPECT_EQ(stats.io_errors, 0u) << file.path();
        EXPECT_GT(stats.read_commands + stats.write_commands, 0u) << file.path();
        total.read_commands += stats.read_commands;
        total.write_commands += stats.write_commands;
        total.bytes_read += stats.bytes_read;
        total.bytes_written += stats.bytes_written;
        ++seeds;
    }
    ASSERT_GT(seeds, 0u) << "no recorded-linux-* seed in " << NVME_CORPUS_DIR;
    EXPECT_GT(total.read_commands, 0u);
    EXPECT_GT(total.write_commands, 0u);
    // Transfers longer than two pages: the seeds carry the guest's PRP lists.
    EXPECT_GT(total.bytes_read, total.read_commands * 2 * 4096);
}

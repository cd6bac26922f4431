// SPDX-License-Identifier: MIT
// Replays every input in tests/corpus/hv_balloon*/ through the same driver the fuzzer uses
// (tests/support/dm_fuzz_driver.hpp), so a fixed crash stays fixed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "tests/support/dm_fuzz_driver.hpp"

TEST(DmCorpus, EveryStoredFuzzInputReplaysWithoutBreakingAnInvariant)
{
    namespace fs = std::filesystem;
    std::size_t replayed = 0;
    for (auto const& dir : fs::directory_iterator { DM_CORPUS_DIR }) {
        if (!dir.is_directory() || !dir.path().filename().string().starts_with("hv_balloon"))
            continue;
        for (auto const& file : fs::directory_iterator { dir.path() }) {
            std::ifstream in { file.path(), std::ios::binary };
            std::vector<std::uint8_t> bytes { std::istreambuf_iterator<char> { in }, {} };
            auto failure = vmm::test::run_dm_fuzz_input(bytes.data(), bytes.size());
            EXPECT_EQ(failure, "") << file.path();
            ++replayed;
        }
    }
    EXPECT_GT(replayed, 0u);
}

// The seeds recorded from the Linux test guest (tests/fuzz/record_traffic.py, then
// traffic_to_corpus.py) reach the engine's real paths, not only its refusals: the guest's own
// version request and capabilities complete the handshake, and its balloon, unballoon and
// hot-add responses finish the operations the host asked for, with pages accepted.
TEST(DmCorpus, RecordedLinuxSeedCompletesHandshakeAndOperations)
{
    namespace fs = std::filesystem;
    fs::path const seed = fs::path { DM_CORPUS_DIR } / "hv_balloon" / "recorded-linux-0";
    ASSERT_TRUE(fs::exists(seed)) << seed;
    std::ifstream in { seed, std::ios::binary };
    std::vector<std::uint8_t> bytes { std::istreambuf_iterator<char> { in }, {} };
    vmm::hv_balloon::DmStatus status;
    EXPECT_EQ(vmm::test::run_dm_fuzz_input(bytes.data(), bytes.size(), &status), "");
    EXPECT_EQ(status.protocol_version, vmm::hv_balloon::DYNMEM_PROTOCOL_VERSION_3);
    EXPECT_TRUE(status.caps.has_value());
    EXPECT_TRUE(status.guest_status.has_value());
    EXPECT_GT(status.counters.balloon_pages_total, 0u);
    EXPECT_GE(status.counters.operations_done, 2u);
    EXPECT_EQ(status.counters.malformed_packets, 0u);
}

// The hand-written free-page-reporting seeds reach the engine's cold discard path: pages the
// guest owns are discarded, ballooned or repeated ranges refused (and the harness checks each
// discard against the map).
TEST(DmCorpus, ColdDiscardSeedsDiscardOwnedPagesAndRefuseTheRest)
{
    namespace fs = std::filesystem;
    auto replay = [](char const* name) {
        fs::path const seed = fs::path { DM_CORPUS_DIR } / "hv_balloon" / name;
        std::ifstream in { seed, std::ios::binary };
        std::vector<std::uint8_t> bytes { std::istreambuf_iterator<char> { in }, {} };
        vmm::hv_balloon::DmStatus status;
        EXPECT_EQ(vmm::test::run_dm_fuzz_input(bytes.data(), bytes.size(), &status), "") << name;
        return status.counters;
    };
    auto owned = replay("seed-cold-discard-owned");
    EXPECT_EQ(owned.cold_discard_calls, 1u);
    EXPECT_EQ(owned.cold_discard_pages_total, 2u * 512 + 8 + 4 * 512);
    EXPECT_EQ(owned.cold_discard_refused, 0u);
    auto ballooned = replay("seed-cold-discard-ballooned");
    EXPECT_EQ(ballooned.cold_discard_calls, 2u);
    EXPECT_EQ(ballooned.cold_discard_refused, 2u);
    EXPECT_EQ(ballooned.cold_discard_pages_total, 2u * 512);
}

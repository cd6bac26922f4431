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

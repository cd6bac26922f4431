// SPDX-License-Identifier: MIT
// Replays every file of tests/corpus/vmbus_message and tests/corpus/vmbus_ring (fuzz seeds and
// past crashes) through the same cases the libFuzzer targets run.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "tests/support/vmbus_fuzz_input.hpp"

namespace {

std::vector<std::uint8_t> read_file(std::filesystem::path const& path)
{
    std::ifstream file { path, std::ios::binary };
    return { std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>() };
}

template<typename Case>
std::size_t replay(char const* name, Case run)
{
    std::filesystem::path dir = std::filesystem::path { VMBUS_CORPUS_DIR } / name;
    std::size_t count = 0;
    std::error_code error;
    for (auto const& entry : std::filesystem::directory_iterator { dir, error }) {
        if (!entry.is_regular_file())
            continue;
        auto bytes = read_file(entry.path());
        EXPECT_TRUE(run(bytes)) << entry.path();
        ++count;
    }
    return count;
}

} // namespace

TEST(VmbusFuzzCorpus, EveryMessageCorpusEntryKeepsTheInvariants)
{
    EXPECT_GT(replay("vmbus_message", [](auto const& bytes) { return vmm::test::vmbus_message_case(bytes); }), 0u);
}

TEST(VmbusFuzzCorpus, EveryRingCorpusEntryKeepsTheInvariants)
{
    EXPECT_GT(replay("vmbus_ring", [](auto const& bytes) { return vmm::test::vmbus_ring_case(bytes); }), 0u);
}

TEST(VmbusFuzzCorpus, EmptyAndTinyInputsKeepTheInvariants)
{
    for (std::size_t size = 0; size < 64; ++size) {
        std::vector<std::uint8_t> bytes(size, static_cast<std::uint8_t>(size * 37));
        EXPECT_TRUE(vmm::test::vmbus_message_case(bytes)) << size;
        EXPECT_TRUE(vmm::test::vmbus_ring_case(bytes)) << size;
    }
}

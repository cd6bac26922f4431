// SPDX-License-Identifier: MIT
// The fuzz_hv_balloon driver, shared with the unit test that replays tests/corpus/hv_balloon*/:
// turns bytes into a sequence of guest packets, targets, ticks, ring-space changes, closes and
// resets, and checks the engine's invariants after every action. Returns "" or what broke.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace vmm::test {

std::string run_dm_fuzz_input(std::uint8_t const* data, std::size_t size);

} // namespace vmm::test

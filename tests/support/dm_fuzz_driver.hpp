// SPDX-License-Identifier: MIT
// The fuzz_hv_balloon driver, shared with the unit test that replays tests/corpus/hv_balloon*/:
// turns bytes into a sequence of guest packets, targets, ticks, ring-space changes, closes and
// resets, and checks the engine's invariants after every action. Returns "" or what broke.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "devices/hv_balloon/dm_status.hpp"

namespace vmm::test {

// `final_status` (optional): the engine's status after the last action, so a test can show a
// seed reached the engine's real paths (e.g. a recorded balloon response was accepted).
std::string run_dm_fuzz_input(std::uint8_t const* data, std::size_t size, hv_balloon::DmStatus* final_status = nullptr);

} // namespace vmm::test

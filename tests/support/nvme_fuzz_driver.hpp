// SPDX-License-Identifier: MIT
// run_nvme_fuzz_input: one fuzz_nvme input against a fresh NvmeController (nvme_fuzz_driver.cpp
// says what the script does and which invariants it checks; a broken one aborts). `stats`, if
// given, gets the controller's counters before the final reset, so a test can tell what a seed
// reached.
#pragma once

#include <cstddef>
#include <cstdint>

#include "devices/nvme/nvme_controller.hpp"

namespace vmm::test {

void run_nvme_fuzz_input(std::uint8_t const* data, std::size_t size, nvme::NvmeStats* stats = nullptr);

} // namespace vmm::test

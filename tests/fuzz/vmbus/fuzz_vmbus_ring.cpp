// SPDX-License-Identifier: MIT
// libFuzzer target fuzz_vmbus_ring: runs vmm::test::vmbus_ring_case (tests/support/vmbus_fuzz_ring_case.cpp),
// which the unit tests also use to replay tests/corpus/vmbus_ring/.
#include <cstddef>
#include <cstdint>

#include "base/log.hpp"
#include "tests/support/vmbus_fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    static bool const quiet = (vmm::log::set_level(vmm::log::Level::Off), true); // Hostile input warns on every run.
    (void)quiet;
    if (!vmm::test::vmbus_ring_case({ data, size }))
        __builtin_trap(); // An invariant failed.
    return 0;
}

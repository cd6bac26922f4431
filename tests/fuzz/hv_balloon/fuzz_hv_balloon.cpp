// SPDX-License-Identifier: MIT
// libFuzzer entry for the DM engine; the driver is shared with the corpus replay unit test.
#include <cstdio>

#include "base/log.hpp"
#include "tests/support/dm_fuzz_driver.hpp"

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    static bool quiet = (vmm::log::set_level(vmm::log::Level::Off), true);
    (void)quiet;
    auto failure = vmm::test::run_dm_fuzz_input(data, size);
    if (!failure.empty()) {
        std::fprintf(stderr, "invariant broken: %s\n", failure.c_str());
        __builtin_trap();
    }
    return 0;
}

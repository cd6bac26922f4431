// SPDX-License-Identifier: MIT
// libFuzzer target for the NVMe controller engine (devices/nvme/): the harness, its script and
// invariants are in tests/support/nvme_fuzz_driver.cpp, shared with the recorded-seed unit test.
// FUZZ_NVME_REPORT=1 prints what an input reached (commands, bytes, errors).
#include <cstdio>
#include <cstdlib>

#include "base/log.hpp"
#include "tests/support/nvme_fuzz_driver.hpp"

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    static bool const quiet = (vmm::log::set_level(vmm::log::Level::Off), true);
    (void)quiet;
    static bool const report = std::getenv("FUZZ_NVME_REPORT") != nullptr;
    vmm::nvme::NvmeStats stats;
    vmm::test::run_nvme_fuzz_input(data, size, &stats);
    if (report)
        std::fprintf(stderr, "fuzz_nvme: reads %llu writes %llu bytes_read %llu bytes_written %llu flushes %llu guest_errors %llu io_errors %llu\n",
            static_cast<unsigned long long>(stats.read_commands), static_cast<unsigned long long>(stats.write_commands),
            static_cast<unsigned long long>(stats.bytes_read), static_cast<unsigned long long>(stats.bytes_written),
            static_cast<unsigned long long>(stats.flushes), static_cast<unsigned long long>(stats.guest_errors),
            static_cast<unsigned long long>(stats.io_errors));
    return 0;
}

// SPDX-License-Identifier: MIT
// gtest main for test binaries that need the host's real KVM: when every test skipped (no
// /dev/kvm) it exits 77, meson's "skipped" status, and prints "SKIP: <first reason>", so
// `make check` reports the skip (scripts/run-tests.sh) instead of counting it as a pass.
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

namespace {

std::string first_skip_reason()
{
    auto const& unit = *testing::UnitTest::GetInstance();
    for (int s = 0; s < unit.total_test_suite_count(); ++s) {
        auto const& suite = *unit.GetTestSuite(s);
        for (int t = 0; t < suite.total_test_count(); ++t) {
            auto const& result = *suite.GetTestInfo(t)->result();
            for (int p = 0; p < result.total_part_count(); ++p) {
                auto const& part = result.GetTestPartResult(p);
                if (part.skipped())
                    return part.message();
            }
        }
    }
    return "every test skipped";
}

} // namespace

int main(int argc, char** argv)
{
    testing::InitGoogleTest(&argc, argv);
    int status = RUN_ALL_TESTS();
    auto const& unit = *testing::UnitTest::GetInstance();
    if (status == 0 && unit.successful_test_count() == 0 && unit.skipped_test_count() > 0) {
        std::printf("SKIP: %s\n", first_skip_reason().c_str());
        return 77;
    }
    return status;
}

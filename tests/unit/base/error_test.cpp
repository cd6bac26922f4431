// SPDX-License-Identifier: MIT
#include "base/error.hpp"

#include <gtest/gtest.h>

namespace {

vmm::Result<int> half(int value)
{
    if (value % 2 != 0)
        return vmm::fail(vmm::Errc::InvalidArgument, "half of an odd number", static_cast<std::uint64_t>(value));
    return value / 2;
}

vmm::Result<int> quarter(int value)
{
    int h = VMM_TRY(half(value));
    return VMM_TRY(half(h));
}

} // namespace

TEST(Error, TryPropagatesTheFirstFailure)
{
    EXPECT_EQ(quarter(8).value(), 2);
    auto bad = quarter(6);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code(), vmm::Errc::InvalidArgument);
    EXPECT_EQ(bad.error().detail(), 3u);
    EXPECT_EQ(bad.error().message(), "half of an odd number: invalid argument (detail 0x3)");
}

TEST(Error, SyscallErrorNamesOperationAndErrno)
{
    auto error = vmm::Error::from_errno("KVM_CREATE_VM", EBUSY);
    EXPECT_EQ(error.message(), "KVM_CREATE_VM: Device or resource busy");
}

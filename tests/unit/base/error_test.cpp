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

TEST(Error, DetailZeroIsPrintedNotDropped)
{
    // GPA 0 is a real address: an access to it must say so.
    auto error = vmm::Error::make(vmm::Errc::NotMapped, "guest memory access", 0);
    EXPECT_TRUE(error.has_detail());
    EXPECT_EQ(error.message(), "guest memory access: not mapped (detail 0x0)");
    auto without = vmm::Error::make(vmm::Errc::NotMapped, "guest memory access");
    EXPECT_FALSE(without.has_detail());
    EXPECT_EQ(without.message(), "guest memory access: not mapped");
}

namespace {

vmm::Result<void> write_page(std::uint64_t gpa)
{
    return vmm::fail(vmm::Errc::NotMapped, "guest memory access", gpa);
}

vmm::Result<void> load_initrd(std::uint64_t gpa)
{
    VMM_TRY(write_page(gpa).context("writing the initrd at GPA {:#x}", gpa));
    return {};
}

vmm::Result<int> boot()
{
    VMM_TRY(load_initrd(0).context("loading boot.initrd {}", "/x.cpio"));
    return 1;
}

int formatted = 0;
struct CountsFormatting { };

} // namespace

template<>
struct fmt::formatter<CountsFormatting> : fmt::formatter<std::string_view> {
    auto format(CountsFormatting, fmt::format_context& context) const
    {
        ++formatted;
        return fmt::formatter<std::string_view>::format("counted", context);
    }
};

TEST(Error, ContextSaysWhatEachLayerWasDoingOutermostFirst)
{
    auto result = boot();
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), vmm::Errc::NotMapped); // Code, what and detail are kept.
    EXPECT_EQ(result.error().what(), "guest memory access");
    EXPECT_EQ(result.error().message(),
        "loading boot.initrd /x.cpio: writing the initrd at GPA 0x0: guest memory access: not mapped (detail 0x0)");
    EXPECT_EQ(fmt::format("{}", result.error()), result.error().message());
}

TEST(Error, ContextIsFormattedOnlyOnFailure)
{
    formatted = 0;
    vmm::Result<int> ok = 5;
    EXPECT_EQ(std::move(ok).context("{}", CountsFormatting {}).value(), 5);
    EXPECT_EQ(formatted, 0);
    auto bad = vmm::Result<int> { vmm::fail(vmm::Errc::Busy, "ring") }.context("{}", CountsFormatting {});
    EXPECT_EQ(formatted, 1);
    EXPECT_EQ(bad.error().message(), "counted: ring: busy");
}

TEST(Error, SyscallAndConfigErrorsTakeContextToo)
{
    auto sys = vmm::Result<void> { vmm::fail_errno("KVM_RUN", EINTR) }.context("vcpu {}", 1);
    EXPECT_EQ(sys.error().message(), "vcpu 1: KVM_RUN: Interrupted system call");
    auto config = vmm::Result<void> { vmm::fail(vmm::Errc::Config, "boot.kernel: cannot open /k") }.context("starting");
    EXPECT_EQ(config.error().message(), "starting: boot.kernel: cannot open /k");
}

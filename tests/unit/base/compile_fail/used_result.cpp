// SPDX-License-Identifier: MIT
// Must compile: every way the code base uses a Result, so that the failures of the other snippets
// come from dropping the Result and nothing else.
#include <string>

#include "base/error.hpp"

vmm::Result<int> parse(int value)
{
    if (value < 0)
        return vmm::fail(vmm::Errc::InvalidArgument, "parse", static_cast<std::uint64_t>(-value));
    if (value == 1)
        return std::unexpected(vmm::Error::make(vmm::Errc::Busy, "parse"));
    return value;
}

vmm::Result<void> twice(int value)
{
    int parsed = VMM_TRY(parse(value).context("parsing {}", value));
    VMM_TRY(parse(parsed));
    if (auto again = parse(parsed); !again)
        return std::unexpected(again.error());
    std::expected<int, vmm::Error> plain = parse(2);
    vmm::Result<int> back = plain;
    return back.has_value() ? vmm::Result<void> {} : std::unexpected(back.error());
}

int caller()
{
    auto result = twice(4);
    (void)twice(5); // An explicit, visible discard stays possible.
    return result ? *parse(3) : 0;
}

// SPDX-License-Identifier: MIT
// The one error type: a code, the name of the failing operation, errno and a detail value.
// Host bugs assert (VMM_ASSERT); environment failures and guest misbehaviour return Error.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <expected>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

namespace vmm {

enum class Errc : std::uint8_t {
    InvalidArgument, // The host passed something unusable.
    OutOfRange,      // Address or length past a region, or arithmetic overflow.
    NotMapped,       // No RAM behind the guest address.
    Overlap,         // Range collides with one already registered.
    GuestProtocol,   // Guest sent malformed input; never fatal to the VMM.
    Unsupported,
    Config,          // Bad user configuration; `what` names the key or file.
    Syscall,         // sys_errno() holds the reason.
    Busy,            // Try again later (ring full, slot busy, operation in flight).
};

std::string_view errc_name(Errc);

// `what` names the operation ("KVM_SET_USER_MEMORY_REGION", "gpadl body"). Most errors use a
// string literal; config and file errors need a built message, so Error owns a std::string.
// Never put guest-controlled strings in an Error.
class Error {
public:
    static Error make(Errc code, std::string what, std::uint64_t detail = 0)
    {
        return Error { code, std::move(what), 0, detail };
    }
    static Error from_errno(std::string what, int err = errno)
    {
        return Error { Errc::Syscall, std::move(what), err, 0 };
    }

    Errc code() const { return m_code; }
    int sys_errno() const { return m_errno; }
    std::string_view what() const { return m_what; }
    std::uint64_t detail() const { return m_detail; }
    // "KVM_CREATE_VM: Device or resource busy" / "gpadl body (detail 0x10)".
    std::string message() const;

private:
    Error(Errc code, std::string what, int sys_errno, std::uint64_t detail)
        : m_code(code)
        , m_errno(sys_errno)
        , m_what(std::move(what))
        , m_detail(detail)
    {
    }
    Errc m_code;
    int m_errno;
    std::string m_what;
    std::uint64_t m_detail;
};

template<typename T = void>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(Errc code, std::string what, std::uint64_t detail = 0)
{
    return std::unexpected(Error::make(code, std::move(what), detail));
}

inline std::unexpected<Error> fail_errno(std::string what, int err = errno)
{
    return std::unexpected(Error::from_errno(std::move(what), err));
}

[[noreturn]] void assert_failed(char const* expression, char const* file, int line);

} // namespace vmm

// Yields the value of a Result expression or returns its error from the enclosing function.
// GNU statement expression (GCC, Clang), like SerenityOS's TRY.
#define VMM_TRY(expression)                                                                        \
    __extension__({                                                                                \
        auto&& vmm_try_result_ = (expression);                                                     \
        if (!vmm_try_result_.has_value()) [[unlikely]]                                             \
            return std::unexpected(std::move(vmm_try_result_).error());                            \
        std::move(vmm_try_result_).value();                                                        \
    })

// Host invariants only: never on guest-controlled data.
#define VMM_ASSERT(expression)                                                                     \
    do {                                                                                           \
        if (!(expression)) [[unlikely]]                                                            \
            ::vmm::assert_failed(#expression, __FILE__, __LINE__);                                 \
    } while (0)

template<>
struct fmt::formatter<vmm::Error> : fmt::formatter<std::string_view> {
    auto format(vmm::Error const& error, fmt::format_context& context) const
    {
        return fmt::formatter<std::string_view>::format(error.message(), context);
    }
};

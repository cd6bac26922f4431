// SPDX-License-Identifier: MIT
// The one error type: a code, the name of the failing operation, errno, a detail value and
// what each caller on the way up was doing (context). Host bugs assert (VMM_ASSERT); environment
// failures and guest misbehaviour return Error.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
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
// The detail (usually a GPA, size or index) is optional so that 0 still prints as 0x0.
// Never put guest-controlled strings in an Error.
class Error {
public:
    static Error make(Errc code, std::string what) { return Error { code, std::move(what), 0, std::nullopt }; }
    static Error make(Errc code, std::string what, std::uint64_t detail)
    {
        return Error { code, std::move(what), 0, detail };
    }
    static Error from_errno(std::string what, int err = errno)
    {
        return Error { Errc::Syscall, std::move(what), err, std::nullopt };
    }

    Errc code() const { return m_code; }
    int sys_errno() const { return m_errno; }
    std::string_view what() const { return m_what; }
    std::uint64_t detail() const { return m_detail.value_or(0); }
    bool has_detail() const { return m_detail.has_value(); }
    // What the callers were doing, outermost first, "; "-free: "loading initrd: writing ...".
    std::string_view context() const { return m_context; }
    // Prefixes what the caller was doing: message() becomes "<text>: <previous message>".
    Error& add_context(std::string_view text);
    // "KVM_CREATE_VM: Device or resource busy" / "gpadl body: guest protocol error (detail 0x10)"
    // / "loading initrd: guest memory access: not mapped (detail 0x0)".
    std::string message() const;

private:
    Error(Errc code, std::string what, int sys_errno, std::optional<std::uint64_t> detail)
        : m_code(code)
        , m_errno(sys_errno)
        , m_what(std::move(what))
        , m_detail(detail)
    {
    }
    Errc m_code;
    int m_errno;
    std::string m_what;
    std::optional<std::uint64_t> m_detail;
    std::string m_context;
};

// std::expected<T, Error> that must not be dropped: libstdc++ 12's std::expected is not
// [[nodiscard]], so a forgotten error would compile silently. Functions return Result; callers
// VMM_TRY it, test it, or hand it on. Dropping one is a compile error (-Werror=unused-result,
// meson.build; proven by tests/compile_fail). Everything std::expected offers still works
// (has_value, value, error, operator*, std::unexpected, ==); the monadic members return plain
// std::expected. context() adds what the caller was doing to an error on the way up.
template<typename T = void>
class [[nodiscard]] Result : public std::expected<T, Error> {
public:
    using Base = std::expected<T, Error>;
    using Base::Base;
    Result() = default;
    Result(Base const& other)
        : Base(other)
    {
    }
    Result(Base&& other)
        : Base(std::move(other))
    {
    }

    // On error, prefixes "<formatted text>: " to the message; the text is formatted only then.
    // VMM_TRY(memory.write(gpa, bytes).context("writing initrd at GPA {:#x}", gpa));
    template<typename... Args>
    Result context(fmt::format_string<Args...> format, Args&&... args) &&
    {
        if (!this->has_value())
            this->error().add_context(fmt::format(format, std::forward<Args>(args)...));
        return std::move(*this);
    }
};

inline std::unexpected<Error> fail(Errc code, std::string what)
{
    return std::unexpected(Error::make(code, std::move(what)));
}

inline std::unexpected<Error> fail(Errc code, std::string what, std::uint64_t detail)
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

// SPDX-License-Identifier: MIT
#include "base/error.hpp"

#include <cstring>

namespace vmm {

std::string_view errc_name(Errc code)
{
    switch (code) {
    case Errc::InvalidArgument: return "invalid argument";
    case Errc::OutOfRange: return "out of range";
    case Errc::NotMapped: return "not mapped";
    case Errc::Overlap: return "overlap";
    case Errc::GuestProtocol: return "guest protocol error";
    case Errc::Unsupported: return "unsupported";
    case Errc::Config: return "config";
    case Errc::Syscall: return "syscall";
    case Errc::Busy: return "busy";
    }
    return "unknown";
}

Error& Error::add_context(std::string_view text)
{
    m_context = m_context.empty() ? std::string { text } : fmt::format("{}: {}", text, m_context);
    return *this;
}

std::string Error::message() const
{
    std::string base;
    if (m_code == Errc::Syscall)
        base = fmt::format("{}: {}", m_what, std::strerror(m_errno));
    else if (m_code == Errc::Config)
        base = m_what;
    else if (m_detail)
        base = fmt::format("{}: {} (detail {:#x})", m_what, errc_name(m_code), *m_detail);
    else
        base = fmt::format("{}: {}", m_what, errc_name(m_code));
    return m_context.empty() ? base : fmt::format("{}: {}", m_context, base);
}

void assert_failed(char const* expression, char const* file, int line)
{
    std::fprintf(stderr, "microvmm: assertion failed: %s at %s:%d\n", expression, file, line);
    std::abort();
}

} // namespace vmm

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

std::string Error::message() const
{
    if (m_code == Errc::Syscall)
        return fmt::format("{}: {}", m_what, std::strerror(m_errno));
    if (m_code == Errc::Config)
        return m_what;
    if (m_detail != 0)
        return fmt::format("{}: {} (detail {:#x})", m_what, errc_name(m_code), m_detail);
    return fmt::format("{}: {}", m_what, errc_name(m_code));
}

void assert_failed(char const* expression, char const* file, int line)
{
    std::fprintf(stderr, "microvmm: assertion failed: %s at %s:%d\n", expression, file, line);
    std::abort();
}

} // namespace vmm

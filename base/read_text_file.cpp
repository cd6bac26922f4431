// SPDX-License-Identifier: MIT
#include "base/read_text_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

#include "base/fd.hpp"

namespace vmm {

Result<std::string> read_text_file(std::filesystem::path const& path)
{
    Fd fd { ::open(path.c_str(), O_RDONLY | O_CLOEXEC) };
    if (!fd.is_open())
        return fail_errno(fmt::format("open {}", path.string()));
    std::string text;
    char buffer[16384];
    for (;;) {
        ssize_t const got = ::read(fd.get(), buffer, sizeof buffer);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return fail_errno(fmt::format("read {}", path.string()));
        if (got == 0)
            return text;
        text.append(buffer, static_cast<std::size_t>(got));
    }
}

} // namespace vmm

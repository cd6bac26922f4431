// SPDX-License-Identifier: MIT
// read_text_file: a whole file into a string, opened O_CLOEXEC (std::ifstream opens without it:
// every fd of microvmm is close-on-exec, SECURITY.md). Works for /proc files (size 0 in stat).
#pragma once

#include <filesystem>
#include <string>

#include "base/error.hpp"

namespace vmm {

// Errors name the path and the errno ("open /proc/self/smaps: ...").
Result<std::string> read_text_file(std::filesystem::path const& path);

} // namespace vmm

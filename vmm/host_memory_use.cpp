// SPDX-License-Identifier: MIT
#include "vmm/host_memory_use.hpp"

#include <charconv>
#include <string>

#include "base/read_text_file.hpp"

namespace vmm {

namespace {

// "7f12a000-7f12b000 rw-p ..." -> the two hex bounds; false for any other line.
bool parse_mapping_header(std::string_view line, std::uintptr_t& start, std::uintptr_t& end)
{
    auto const dash = line.find('-');
    auto const space = line.find(' ');
    if (dash == std::string_view::npos || space == std::string_view::npos || dash > space)
        return false;
    auto const* first = line.data();
    auto parsed = std::from_chars(first, first + dash, start, 16);
    if (parsed.ec != std::errc {} || parsed.ptr != first + dash)
        return false;
    parsed = std::from_chars(first + dash + 1, first + space, end, 16);
    return parsed.ec == std::errc {} && parsed.ptr == first + space && start < end;
}

// "Rss:                 123 kB" -> 123 * 1024; false for any other line.
bool parse_rss(std::string_view line, std::uint64_t& bytes)
{
    constexpr std::string_view key = "Rss:";
    if (!line.starts_with(key))
        return false;
    line.remove_prefix(key.size());
    auto const digits = line.find_first_not_of(' ');
    if (digits == std::string_view::npos)
        return false;
    std::uint64_t kib = 0;
    auto parsed = std::from_chars(line.data() + digits, line.data() + line.size(), kib);
    if (parsed.ec != std::errc {} || std::string_view(parsed.ptr, line.data() + line.size()) != " kB")
        return false;
    bytes = kib * 1024;
    return true;
}

} // namespace

std::uint64_t smaps_resident_bytes(std::string_view smaps, std::uintptr_t begin, std::uintptr_t end)
{
    std::uint64_t total = 0;
    bool inside = false;
    while (!smaps.empty()) {
        auto const newline = smaps.find('\n');
        auto const line = smaps.substr(0, newline);
        smaps.remove_prefix(newline == std::string_view::npos ? smaps.size() : newline + 1);
        std::uintptr_t start = 0, stop = 0;
        std::uint64_t rss = 0;
        if (parse_mapping_header(line, start, stop))
            inside = start < end && begin < stop;
        else if (inside && parse_rss(line, rss))
            total += rss;
    }
    return total;
}

Result<HostMemoryUse> read_host_memory_use(mem::BootRam const& boot_ram, Mapping const& hot_add_window)
{
    HostMemoryUse use;
    use.boot_ram_resident_bytes = VMM_TRY(boot_ram.allocated_bytes());
    if (!hot_add_window.is_mapped())
        return use;
    std::string const text = VMM_TRY(read_text_file("/proc/self/smaps"));
    auto const begin = reinterpret_cast<std::uintptr_t>(hot_add_window.base());
    use.hot_add_resident_bytes = smaps_resident_bytes(text, begin, begin + hot_add_window.size_bytes());
    return use;
}

} // namespace vmm

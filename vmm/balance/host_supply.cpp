// SPDX-License-Identifier: MIT
// HostFree: MemAvailable or a cgroup's limit minus usage (host_supply.hpp).
#include "vmm/balance/host_supply.hpp"

#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace vmm::balance {

namespace {

constexpr std::uint64_t MIB = 1ull << 20;
// cgroup v1 reports "no limit" as PAGE_COUNTER_MAX * PAGE_SIZE (LONG_MAX rounded down to a page,
// 9223372036854771712 on x86-64: mm/page_counter.c, include/linux/page_counter.h). Anything at
// or above 2^62 is no real limit.
constexpr std::uint64_t UNLIMITED_FROM = 1ull << 62;

std::string_view trim(std::string_view text)
{
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
        text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\n' || text.back() == '\t' || text.back() == '\r'))
        text.remove_suffix(1);
    return text;
}

std::optional<std::uint64_t> decimal(std::string_view text)
{
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty())
        return std::nullopt;
    return value;
}

Result<std::string> slurp(std::string const& path)
{
    std::ifstream file(path);
    if (!file)
        return fail(Errc::InvalidArgument, fmt::format("cannot read {}", path));
    std::ostringstream text;
    text << file.rdbuf();
    return text.str();
}

} // namespace

Result<std::uint64_t> parse_meminfo_available(std::string_view meminfo)
{
    constexpr std::string_view KEY = "MemAvailable:";
    for (std::size_t pos = 0; pos < meminfo.size();) {
        auto const end = std::min(meminfo.find('\n', pos), meminfo.size());
        auto line = meminfo.substr(pos, end - pos);
        pos = end + 1;
        if (!line.starts_with(KEY))
            continue;
        auto value = trim(line.substr(KEY.size()));
        if (!value.ends_with("kB"))
            return fail(Errc::InvalidArgument, fmt::format("MemAvailable line without kB: '{}'", line));
        auto kib = decimal(trim(value.substr(0, value.size() - 2)));
        if (!kib || *kib > (UINT64_MAX >> 10))
            return fail(Errc::InvalidArgument, fmt::format("MemAvailable is not a number: '{}'", line));
        return *kib << 10;
    }
    return fail(Errc::InvalidArgument, "no MemAvailable line in meminfo (Linux 3.14 or later has it)");
}

Result<std::optional<std::uint64_t>> parse_cgroup_bytes(std::string_view text)
{
    auto value = trim(text);
    if (value == "max")
        return std::optional<std::uint64_t> {};
    auto bytes = decimal(value);
    if (!bytes)
        return fail(Errc::InvalidArgument, fmt::format("not a byte count: '{}'", value.substr(0, 64)));
    if (*bytes >= UNLIMITED_FROM)
        return std::optional<std::uint64_t> {};
    return std::optional<std::uint64_t> { *bytes };
}

Result<HostFree> read_meminfo(std::string const& meminfo_path)
{
    auto const text = VMM_TRY(slurp(meminfo_path));
    auto const available = VMM_TRY(parse_meminfo_available(text));
    return HostFree { SupplySource::MemInfo, available };
}

Result<HostFree> read_cgroup(std::string const& cgroup_dir)
{
    // v2 names first (unified hierarchy), then v1's memory controller.
    struct Names { char const* limit; char const* usage; };
    for (auto names : { Names { "memory.max", "memory.current" }, Names { "memory.limit_in_bytes", "memory.usage_in_bytes" } }) {
        auto limit_text = slurp(cgroup_dir + "/" + names.limit);
        if (!limit_text)
            continue;
        auto const usage_text = VMM_TRY(slurp(cgroup_dir + "/" + names.usage));
        auto const limit = VMM_TRY(parse_cgroup_bytes(*limit_text));
        auto const usage = VMM_TRY(parse_cgroup_bytes(usage_text));
        if (!limit)
            return fail(Errc::InvalidArgument, fmt::format("cgroup {} has no memory limit ({} is unlimited)", cgroup_dir, names.limit));
        std::uint64_t const used = usage.value_or(0);
        return HostFree { SupplySource::Cgroup, *limit > used ? *limit - used : 0 };
    }
    return fail(Errc::InvalidArgument,
        fmt::format("{} has neither memory.max (cgroup v2) nor memory.limit_in_bytes (cgroup v1)", cgroup_dir));
}

std::uint64_t supply_mib(HostFree const& free, std::uint64_t vms_resident_mib, std::uint64_t reserve_mib)
{
    std::uint64_t const free_mib = free.free_bytes / MIB;
    std::uint64_t const total = free.source == SupplySource::Fixed ? free_mib
        : free_mib > UINT64_MAX - vms_resident_mib                 ? UINT64_MAX
                                                                    : free_mib + vms_resident_mib;
    return total > reserve_mib ? total - reserve_mib : 0;
}

} // namespace vmm::balance

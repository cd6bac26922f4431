// SPDX-License-Identifier: MIT
// Report: what every benchmark program prints on stdout, one JSON object the aggregator
// (bench/aggregate.py) merges into bench/results.json. Progress goes to stderr.
//   {"figures": {"balloon.ours_gb_per_min": {"samples": [...], "unit": "GB/min"}, ...},
//    "notes": {"balloon.ours_gb_per_min": "not measured: ..."}}
// A figure has either per-run `samples` (the aggregator takes min/median/max), one `value`
// (sizes, counts) or `null` plus a note saying what is missing: never an invented number.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace vmm::bench {

class Report {
public:
    void samples(std::string const& key, std::vector<double> const& values, std::string const& unit)
    {
        m_doc["figures"][key] = { { "samples", values }, { "unit", unit } };
    }
    template<typename T>
    void value(std::string const& key, T value, std::string const& unit)
    {
        m_doc["figures"][key] = { { "value", value }, { "unit", unit } };
    }
    // The figure could not be measured: the key stays null and the note says why.
    void missing(std::string const& key, std::string const& why)
    {
        m_doc["figures"][key] = { { "value", nullptr } };
        note(key, "not measured: " + why);
        fmt::print(stderr, "  {}: not measured: {}\n", key, why);
    }
    // The figure is the ratio of two medians (computed by the aggregator).
    void ratio(std::string const& key, std::string const& numerator, std::string const& denominator)
    {
        m_doc["figures"][key] = { { "ratio_of", { numerator, denominator } } };
    }
    // The figure repeats another one under its headline name (same samples and stats).
    void same_as(std::string const& key, std::string const& source)
    {
        m_doc["figures"][key] = { { "same_as", source } };
    }
    void note(std::string const& key, std::string const& text) { m_doc["notes"][key] = text; }

    // Printed once at exit; nlohmann never throws on dump of numbers and ASCII strings.
    void print() const { fmt::print("{}\n", m_doc.dump(1)); }

private:
    nlohmann::json m_doc = { { "figures", nlohmann::json::object() }, { "notes", nlohmann::json::object() } };
};

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start)
{
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// Runs `runs` times; `one_run` returns the seconds of the part it timed (setup excluded).
template<typename F>
std::vector<double> repeat(int runs, F&& one_run)
{
    std::vector<double> seconds;
    seconds.reserve(static_cast<std::size_t>(runs));
    for (int run = 0; run < runs; ++run)
        seconds.push_back(one_run());
    return seconds;
}

template<typename F>
std::vector<double> map_samples(std::vector<double> const& in, F&& f)
{
    std::vector<double> out;
    out.reserve(in.size());
    for (double x : in)
        out.push_back(f(x));
    return out;
}

// Live bytes allocated through operator new, as malloc charges them (usable size + chunk
// header), for metadata cost. report.cpp replaces the global operator new/delete to count them.
std::size_t heap_bytes_in_use();

// Runs of a figure from the environment (BENCH_RUNS), at least `minimum`.
int runs_from_env(int fallback, int minimum);

} // namespace vmm::bench

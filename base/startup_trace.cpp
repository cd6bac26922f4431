// SPDX-License-Identifier: MIT
#include "base/startup_trace.hpp"

#include <time.h>

#include <array>
#include <atomic>

#include <fmt/format.h>

namespace vmm::startup {

namespace {

std::uint64_t now_ns()
{
    timespec ts {};
    ::clock_gettime(CLOCK_MONOTONIC, &ts); // steady_clock's clock on Linux/glibc.
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

constexpr std::size_t PHASES = static_cast<std::size_t>(Phase::Count);
constexpr std::size_t CALLS = static_cast<std::size_t>(KvmCall::Count);

std::atomic<std::uint64_t> g_origin_ns { 0 };
std::array<std::atomic<std::uint64_t>, PHASES> g_phase_ns {};  // 0 = not reached.
std::array<std::atomic<std::uint64_t>, CALLS> g_kvm_ns {};     // Until the first KVM_RUN.
std::atomic<bool> g_running { false };                          // FirstRun marked: stop counting.

constexpr std::array<char const*, PHASES> PHASE_NAMES { "kvm_opened", "config_loaded", "loop_ready", "vm_created",
    "platform_ready", "memory_ready", "devices_ready", "vcpus_ready", "guest_loaded", "machine_ready", "first_run" };
constexpr std::array<char const*, CALLS> CALL_NAMES { "create_vm", "memslots", "create_vcpu", "other" };

std::uint64_t since_origin_us(std::uint64_t ns)
{
    std::uint64_t origin = g_origin_ns.load(std::memory_order_relaxed);
    return ns > origin ? (ns - origin) / 1000 : 0;
}

} // namespace

void set_origin(std::chrono::steady_clock::time_point origin)
{
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(origin.time_since_epoch()).count();
    g_origin_ns.store(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
}

void mark(Phase phase)
{
    std::uint64_t expected = 0;
    std::uint64_t const now = now_ns();
    g_origin_ns.compare_exchange_strong(expected, now, std::memory_order_relaxed);
    expected = 0;
    g_phase_ns[static_cast<std::size_t>(phase)].compare_exchange_strong(expected, now, std::memory_order_relaxed);
    if (phase == Phase::FirstRun)
        g_running.store(true, std::memory_order_relaxed);
}

KvmScope::KvmScope(KvmCall call)
    : m_call(call)
    , m_start_ns(now_ns())
{
}

KvmScope::~KvmScope()
{
    if (!g_running.load(std::memory_order_relaxed))
        g_kvm_ns[static_cast<std::size_t>(m_call)].fetch_add(now_ns() - m_start_ns, std::memory_order_relaxed);
}

std::string report()
{
    std::uint64_t const first_run_ns = g_phase_ns[static_cast<std::size_t>(Phase::FirstRun)].load();
    std::uint64_t const first_run_us = first_run_ns ? since_origin_us(first_run_ns) : 0;
    std::string kvm;
    std::uint64_t kvm_total_ns = 0;
    for (std::size_t i = 0; i < CALLS; ++i) {
        std::uint64_t ns = g_kvm_ns[i].load();
        kvm_total_ns += ns;
        kvm += fmt::format("{}\"{}\":{}", i ? "," : "", CALL_NAMES[i], ns / 1000);
    }
    std::string phases;
    for (std::size_t i = 0; i < PHASES; ++i) {
        std::uint64_t ns = g_phase_ns[i].load();
        if (ns != 0)
            phases += fmt::format("{}\"{}\":{}", phases.empty() ? "" : ",", PHASE_NAMES[i], since_origin_us(ns));
    }
    std::uint64_t const kvm_total_us = kvm_total_ns / 1000;
    return fmt::format("{{\"first_run_us\":{},\"kvm_us\":{{{}}},\"kvm_total_us\":{},\"vmm_own_us\":{},\"phases_us\":{{{}}}}}",
        first_run_us, kvm, kvm_total_us, first_run_us > kvm_total_us ? first_run_us - kvm_total_us : 0, phases);
}

} // namespace vmm::startup

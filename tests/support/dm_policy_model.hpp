// SPDX-License-Identifier: MIT
// DmPolicy test helpers shared by dm_policy_test and dm_ceiling_test: MiB page counts, an
// auto-mode config, and ModelGuest, a Linux guest fed report sequences shaped like Linux 6.1's
// post_status(): committed = use + ballooned + linux floor (drivers/hv/hv_balloon.c:1130). The
// model follows each target at once, as the engine does when the guest answers promptly.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "devices/hv_balloon/dm_arbiter.hpp"
#include "devices/hv_balloon/dm_policy.hpp"
#include "devices/hv_balloon/dm_status.hpp"

namespace vmm::test {

inline constexpr std::uint64_t POLICY_MIB = (1ull << 20) / mem::PAGE_SIZE;
inline mem::PageCount mib(std::uint64_t n) { return mem::PageCount { n * POLICY_MIB }; }

// Auto mode, 256..4096 MiB, the policy's defaults otherwise (buffer 20 %, min_step 16 MiB,
// min_interval 2 s, hysteresis 5 %, shrink_delay 10 s), spelled out so a default change shows here.
inline hv_balloon::PolicyConfig auto_config(std::uint32_t weight = 50)
{
    hv_balloon::PolicyConfig c;
    c.mode = hv_balloon::PolicyMode::Auto;
    c.min = mib(256);
    c.max = mib(4096);
    c.weight = weight;
    c.buffer_percent = 20;
    c.min_step = mib(16);
    c.min_interval = std::chrono::seconds { 2 };
    c.hysteresis_percent = 5;
    c.shrink_delay = std::chrono::seconds { 10 };
    return c;
}

// A Linux guest using `use` MiB (Committed_AS), sized `current`, `reachable` at most.
struct ModelGuest {
    hv_balloon::DmPolicy policy;
    mem::PageCount current = mib(512);
    mem::PageCount ballooned; // Host's balloon (current < boot).
    mem::PageCount boot = mib(512);
    mem::PageCount reachable = mib(4096);
    hv_balloon::Instant now { std::chrono::seconds { 100 } };
    hv_balloon::GuestStatusReport report;
    std::vector<mem::PageCount> targets; // Every decision.
    std::vector<hv_balloon::Instant> decided_at;

    explicit ModelGuest(hv_balloon::PolicyConfig c) : policy(c) {}

    void report_use(mem::PageCount use, mem::PageCount extra = mem::PageCount { 0 })
    {
        report = hv_balloon::GuestStatusReport {};
        report.num_committed = use + ballooned + hv_balloon::linux_balloon_floor(current) + extra;
        report.received_at = now;
        evaluate();
    }
    // The same at `at` (several guests on one clock).
    void report_use_at(hv_balloon::Instant at, mem::PageCount use)
    {
        now = at;
        report_use(use);
    }
    void evaluate()
    {
        hv_balloon::PolicyView v;
        v.now = now;
        v.connected = true;
        v.current = current;
        v.ballooned = ballooned;
        v.reachable = reachable;
        v.report = &report;
        if (auto t = policy.evaluate(v)) {
            targets.push_back(*t);
            decided_at.push_back(now);
            ballooned = *t < boot ? boot - *t : mem::PageCount { 0 };
            current = *t; // The guest follows at once.
            policy.on_operation_finished(true);
        }
    }
    void evaluate_at(hv_balloon::Instant at)
    {
        now = at;
        evaluate();
    }
    // One report per second for `n` seconds, with deadlines honoured in between.
    void run(mem::PageCount use, int n)
    {
        for (int i = 0; i < n; ++i) {
            now += std::chrono::seconds { 1 };
            report_use(use);
        }
    }
    // What `microvmm balance` reads from this VM: its wish without the ceiling, min, max, weight.
    hv_balloon::ArbiterVm arbiter_input() const
    {
        auto const& d = policy.last_decision();
        return hv_balloon::ArbiterVm { (d.wanted ? *d.wanted : current).mib(), policy.config().min.mib(),
            policy.config().max.mib(), policy.config().weight };
    }
};

} // namespace vmm::test

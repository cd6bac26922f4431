// SPDX-License-Identifier: MIT
// IcIntegration: per-boot integration services, their deadline timer, graceful shutdown and the
// REST decoration; see ic_integration.hpp.
#include "vmm/ic_integration.hpp"

#include <time.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/log.hpp"
#include "vmm/hyperv/partition.hpp"

namespace vmm {

namespace {

using Clock = std::chrono::steady_clock;

// Instance GUIDs: fixed per IC so the guest's device names stay stable across boots.
constexpr vmbus::Guid SHUTDOWN_INSTANCE { { 'm', 'i', 'c', 'r', 'o', 'v', 'm', 'm', '-', 'i', 'c', '-', 's', 'h', 'u', 't' } };
constexpr vmbus::Guid HEARTBEAT_INSTANCE { { 'm', 'i', 'c', 'r', 'o', 'v', 'm', 'm', '-', 'i', 'c', '-', 'h', 'b', 'e', 'a' } };
constexpr vmbus::Guid TIMESYNC_INSTANCE { { 'm', 'i', 'c', 'r', 'o', 'v', 'm', 'm', '-', 'i', 'c', '-', 't', 'i', 'm', 'e' } };
constexpr vmbus::Guid KVP_INSTANCE { { 'm', 'i', 'c', 'r', 'o', 'v', 'm', 'm', '-', 'i', 'c', '-', 'k', 'v', 'p', '0' } };

// Host wall-clock time as FILETIME (the time sync IC's unit).
u64 host_filetime()
{
    timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    return ic::TimeSyncIc::filetime_from_unix_ns(static_cast<i64>(now.tv_sec) * 1'000'000'000 + now.tv_nsec);
}

u64 ms(u64 ns) { return ns / 1'000'000; }

} // namespace

IcIntegration::IcIntegration(Config const& config, EventLoop& loop, api::EventHub& hub, api::ApiBackend& inner)
    : ForwardingApiBackend(inner)
    , m_config(config)
    , m_loop(loop)
    , m_hub(hub)
{
}

IcIntegration::~IcIntegration() = default;

u64 IcIntegration::now_ns()
{
    return static_cast<u64>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

void IcIntegration::attach(Machine& machine)
{
    if (!m_config.integration.enabled || machine.vmbus() == nullptr)
        return;
    m_deadline_gate.begin(); // A new machine: nothing armed for it yet.
    auto per = std::make_unique<PerMachine>();
    if (auto built = build(*per, machine); !built) {
        // The guest still boots; it just has no integration services this time.
        log::error("ic", "integration services not offered: {}", built.error());
        return;
    }
    std::lock_guard guard { m_lock };
    m_current = std::move(per);
}

Result<void> IcIntegration::build(PerMachine& per, Machine& machine)
{
    per.machine = &machine;
    per.shutdown = std::make_unique<ic::ShutdownIc>(SHUTDOWN_INSTANCE);
    ic::HeartbeatConfig heartbeat_config { m_config.integration.heartbeat_interval_ms * 1'000'000,
        m_config.integration.heartbeat_late_ms * 1'000'000 };
    per.heartbeat = std::make_unique<ic::HeartbeatIc>(HEARTBEAT_INSTANCE, heartbeat_config);
    if (m_config.integration.time_sync) {
        // Samples carry the guest's reference time (service 4.0), and Linux reads its reference
        // counter for every sample whatever the version (hv_util.c adj_guesttime): no reference
        // time, no time sync.
        auto const* clock = machine.partition() ? machine.partition()->reference_clock() : nullptr;
        if (clock && clock->valid()) {
            per.timesync = std::make_unique<ic::TimeSyncIc>(TIMESYNC_INSTANCE,
                ic::TimeSyncConfig { m_config.integration.time_sync_period_ms * 1'000'000 }, &host_filetime,
                [clock] { return clock->now(); });
        } else {
            log::warn("ic", "time sync not offered: the partition has no reference time (hyperv.reference_time)");
        }
    }
    if (m_config.integration.kvp) {
        ic::KvpConfig kvp_config;
        kvp_config.refresh_ns = m_config.integration.kvp_refresh_ms * 1'000'000;
        for (auto const& [key, value] : m_config.guest_info.pairs)
            kvp_config.host_pairs.push_back({ key, value });
        per.kvp = std::make_unique<ic::KvpIc>(KVP_INSTANCE, std::move(kvp_config));
    }
    for (ic::IcChannel* channel : per.channels()) {
        channel->set_clock(&IcIntegration::now_ns);
        // A guest answer that only moves its channel's deadline later (every heartbeat and time
        // sample an idle guest answers) needs no loop wake-up: the armed timer comes first and
        // on_deadline() recomputes every channel then.
        channel->set_deadline_hook([this](std::optional<u64> next) {
            if (m_deadline_gate.must_rearm(next))
                post_rearm();
        });
    }
    // Engine callbacks run under the VMBus host lock: publish and post only.
    per.heartbeat->set_late_handler([this, heartbeat = per.heartbeat.get()] {
        auto age = heartbeat->age_ns(now_ns());
        log::warn("ic", "guest heartbeat late ({} ms since the last answer)", age ? ms(*age) : 0);
        m_hub.publish("heartbeat_late", nlohmann::json { { "age_ms", age ? ms(*age) : 0 } });
    });
    per.shutdown->set_outcome_handler([this](ic::ShutdownOutcome outcome) {
        log::info("ic", "guest answered the shutdown request: {}", ic::shutdown_outcome_name(outcome));
        m_hub.publish("shutdown_answered", nlohmann::json { { "answer", std::string { ic::shutdown_outcome_name(outcome) } } });
    });
    per.deadline = VMM_TRY(m_loop.create_timer([this] { on_deadline(); }));
    per.force = VMM_TRY(m_loop.create_timer([this] {
        std::function<void()> force;
        {
            std::lock_guard guard { m_lock };
            if (!m_current || !m_current->force_action)
                return;
            m_current->shutdown_phase = "forced";
            force = std::exchange(m_current->force_action, {});
        }
        log::warn("ic", "guest did not power off in time: stopping it");
        m_hub.publish("shutdown_forced", nlohmann::json { { "reason", "timeout" } });
        force();
    }));
    VMM_TRY(machine.vmbus()->with_host([&](vmbus::VmbusHost& host) -> Result<void> {
        for (ic::IcChannel* channel : per.channels())
            VMM_TRY(host.add_device(*channel));
        return {};
    }));
    return {};
}

void IcIntegration::detach(Machine& machine)
{
    std::unique_ptr<PerMachine> per;
    {
        std::lock_guard guard { m_lock };
        if (!m_current || m_current->machine != &machine)
            return;
        per = std::move(m_current);
    }
    per->deadline = {};
    per->force = {};
    m_deadline_gate.begin();
    // Rescind first: the host never calls a device again after rescind() returns.
    machine.vmbus()->with_host([&](vmbus::VmbusHost& host) {
        for (ic::IcChannel* channel : per->channels())
            host.rescind(*channel);
    });
}

void IcIntegration::post_rearm()
{
    if (m_rearm_posted.exchange(true))
        return;
    if (!m_loop.post([this] {
            m_rearm_posted = false;
            rearm();
        }))
        m_rearm_posted = false; // Queue full: the next hook call tries again.
}

void IcIntegration::rearm()
{
    std::lock_guard guard { m_lock };
    // Before the channels are read (under the VMBus host lock, as the hooks run): a hook that
    // runs after that read sees UNKNOWN or what is armed below (vmm/deadline_gate.hpp).
    m_deadline_gate.begin();
    if (!m_current)
        return;
    std::optional<u64> deadline;
    m_current->machine->vmbus()->with_host([&](vmbus::VmbusHost&) {
        for (ic::IcChannel* channel : m_current->channels()) {
            auto next = channel->next_deadline();
            if (next && (!deadline || *next < *deadline))
                deadline = next;
        }
    });
    if (!deadline) {
        if (m_current->deadline.disarm())
            m_deadline_gate.disarmed();
        return;
    }
    u64 now = now_ns();
    // At least 1 ms: a zero delay would disarm the timerfd.
    u64 delay = *deadline > now + 1'000'000 ? *deadline - now : 1'000'000;
    if (auto armed = m_current->deadline.arm(std::chrono::nanoseconds(delay)); !armed)
        log::error("ic", "IC timer: {}", armed.error()); // The gate stays UNKNOWN: every hook posts.
    else
        // The deadline itself (or now + 1 ms), not a clock read after the arm: a channel whose
        // deadline is the one armed (the heartbeat answered: its next send is the same moment)
        // then compares equal and posts nothing. The timerfd fires at most microseconds later.
        m_deadline_gate.armed(now + delay);
}

void IcIntegration::on_deadline()
{
    {
        std::lock_guard guard { m_lock };
        if (!m_current)
            return;
        m_current->machine->vmbus()->with_host([&](vmbus::VmbusHost& host) {
            for (ic::IcChannel* channel : m_current->channels())
                channel->on_timer();
            host.close_broken_channels(); // A send may have found a broken ring.
        });
    }
    rearm();
}

std::optional<std::string> IcIntegration::start_graceful(PerMachine& per, bool reboot, u64 timeout_ms,
    std::function<void()> force)
{
    if (per.shutdown_phase)
        return std::string("a shutdown is already under way");
    if (timeout_ms == 0)
        return std::string("timeout_ms is 0");
    Result<void> sent = per.machine->vmbus()->with_host([&](vmbus::VmbusHost& host) {
        auto result = per.shutdown->request(reboot);
        host.close_broken_channels();
        return result;
    });
    if (!sent)
        return fmt::format("the guest's shutdown service cannot be asked ({})", sent.error().what());
    per.shutdown_phase = "requested";
    per.force_action = std::move(force);
    if (auto armed = per.force.arm(std::chrono::milliseconds(timeout_ms)); !armed) {
        log::error("ic", "shutdown timer: {}", armed.error());
        per.force_action(); // Without a timer there is no forced stop later: force now.
        per.force_action = {};
        per.shutdown_phase = "forced";
        return std::string("no timer for the forced stop");
    }
    post_rearm(); // The request's response timeout is a new deadline.
    return std::nullopt;
}

bool IcIntegration::request_shutdown_for_signal(std::function<void()> force)
{
    u64 timeout = m_config.integration.shutdown_timeout_ms;
    std::lock_guard guard { m_lock };
    if (!m_current)
        return false;
    auto refused = start_graceful(*m_current, false, timeout, std::move(force));
    if (refused) {
        log::info("ic", "SIGTERM: no graceful shutdown ({})", *refused);
        return false;
    }
    m_hub.publish("shutdown_requested", nlohmann::json { { "origin", "sigterm" }, { "timeout_ms", timeout }, { "reboot", false } });
    return true;
}

std::expected<api::ShutdownStarted, std::string> IcIntegration::shutdown(api::ShutdownRequest const& request)
{
    api::ShutdownStarted started;
    started.reboot = request.reboot;
    started.timeout_ms = request.timeout_ms.value_or(m_config.integration.shutdown_timeout_ms);
    std::lock_guard guard { m_lock };
    if (!m_current)
        return std::unexpected(std::string("no guest with integration services is running"));
    PerMachine& per = *m_current;
    if (per.shutdown_phase)
        return std::unexpected(fmt::format("a shutdown is already under way ({})", *per.shutdown_phase));
    Machine* machine = per.machine;
    bool reboot = request.reboot;
    auto force = [machine, reboot] { machine->request_stop(reboot ? StopReason::Reset : StopReason::Poweroff); };
    // The force timer belongs to the loop thread's EventLoop, but arming a timerfd is a plain
    // syscall on an fd that lives as long as `per` (guarded by m_lock): safe from this thread.
    auto refused = start_graceful(per, reboot, started.timeout_ms, force);
    m_hub.publish("shutdown_requested", nlohmann::json { { "origin", "api" }, { "timeout_ms", started.timeout_ms }, { "reboot", reboot } });
    if (!refused) {
        started.method = "guest";
        return started;
    }
    started.method = "forced";
    started.reason = *refused;
    per.shutdown_phase = "forced";
    m_hub.publish("shutdown_forced", nlohmann::json { { "reason", *refused } });
    log::info("api", "shutdown: stopping the guest now ({})", *refused);
    force();
    return started;
}

api::GuestHealth IcIntegration::health(PerMachine& per)
{
    api::GuestHealth out;
    u64 now = now_ns();
    per.machine->vmbus()->with_host([&](vmbus::VmbusHost&) {
        out.heartbeat = std::string { ic::heartbeat_status_name(per.heartbeat->status(now)) };
        if (auto age = per.heartbeat->age_ns(now))
            out.heartbeat_age_ms = ms(*age);
        out.shutdown_service = std::string { ic::ic_state_name(per.shutdown->state()) };
        if (per.timesync) {
            out.time_sync = api::GuestTimeSync { std::string { ic::ic_state_name(per.timesync->state()) },
                per.timesync->synced(), per.timesync->time_counters().samples_acknowledged };
        }
        if (per.kvp) {
            auto const& snapshot = per.kvp->snapshot();
            api::GuestInfo info;
            info.service = std::string { ic::ic_state_name(per.kvp->state()) };
            if (snapshot.updated_at)
                info.age_ms = ms(now - std::min(now, *snapshot.updated_at));
            info.intrinsic = snapshot.intrinsic;
            info.guest = snapshot.guest;
            out.info = std::move(info);
        }
    });
    out.shutdown = per.shutdown_phase;
    return out;
}

std::vector<ic::IcChannel*> IcIntegration::PerMachine::channels() const
{
    std::vector<ic::IcChannel*> out { shutdown.get(), heartbeat.get() };
    if (timesync)
        out.push_back(timesync.get());
    if (kvp)
        out.push_back(kvp.get());
    return out;
}

api::VmInfo IcIntegration::vm_info()
{
    auto info = m_inner.vm_info();
    if (!m_config.integration.enabled)
        return info;
    std::lock_guard guard { m_lock };
    info.guest = m_current ? health(*m_current) : api::GuestHealth {};
    return info;
}

std::string IcIntegration::extra_metrics()
{
    std::string out = m_inner.extra_metrics();
    if (!m_config.integration.enabled)
        return out;
    api::GuestHealth guest;
    {
        std::lock_guard guard { m_lock };
        if (m_current)
            guest = health(*m_current);
    }
    int status = guest.heartbeat == "ok" ? 1 : guest.heartbeat == "late" ? 2 : 0;
    out += "# HELP microvmm_guest_heartbeat Guest heartbeat (heartbeat IC): 0 none, 1 ok, 2 late.\n"
           "# TYPE microvmm_guest_heartbeat gauge\n";
    out += fmt::format("microvmm_guest_heartbeat {}\n", status);
    out += "# HELP microvmm_guest_heartbeat_age_seconds Age of the guest's last heartbeat answer.\n"
           "# TYPE microvmm_guest_heartbeat_age_seconds gauge\n";
    if (guest.heartbeat_age_ms)
        out += fmt::format("microvmm_guest_heartbeat_age_seconds {:.3f}\n", static_cast<double>(*guest.heartbeat_age_ms) / 1000.0);
    return out;
}

} // namespace vmm

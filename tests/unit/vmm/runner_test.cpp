// SPDX-License-Identifier: MIT
// Runner over a fake machine (no KVM): BasicRunner<FakeMachine> with the real EventLoop. A fake
// boot "runs" a vCPU thread that reports the guest's stop reason the way Machine does (first
// reason wins, on_stop once, from another thread); the journal records every call in order,
// so the tests check the exit status, that each machine is joined before its observers run and
// before it is destroyed, that a reset builds a fresh machine, and the signal paths.
#include "vmm/runner.hpp"

#include <signal.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace vmm {
namespace {

using namespace std::chrono_literals;

class Journal {
public:
    void add(std::string entry)
    {
        std::lock_guard guard { m_lock };
        m_entries.push_back(std::move(entry));
    }
    std::vector<std::string> entries()
    {
        std::lock_guard guard { m_lock };
        return m_entries;
    }

private:
    std::mutex m_lock;
    std::vector<std::string> m_entries;
};

struct FakePartition {
    // Loop thread (the SynIC re-kick timer); true = a slot is still occupied (re-arm).
    std::function<bool()> on_kick;
    int kicks = 0;
    bool kick_pending_messages()
    {
        ++kicks;
        return on_kick ? on_kick() : false;
    }
};

struct FakeVmbus {
    std::function<void()> message_hook;
    void set_message_hook(std::function<void()> hook) { message_hook = std::move(hook); }
};

// What the guest of one boot does once started.
struct BootScript {
    std::optional<StopReason> guest_stops_with; // Reported from the fake vCPU thread; none: runs until stopped.
    bool report_inside_start = false;           // Report on the loop thread from start() itself.
};

class FakeMachine {
public:
    FakeMachine(int boot, BootScript script, MachineCallbacks callbacks, Journal& journal)
        : m_boot(boot)
        , m_script(script)
        , m_callbacks(std::move(callbacks))
        , m_journal(journal)
    {
    }
    ~FakeMachine()
    {
        // The Runner joins a machine before it destroys it; a running thread here is a bug.
        EXPECT_FALSE(m_thread.joinable()) << "boot " << m_boot << " destroyed unjoined";
        if (m_thread.joinable()) {
            report(StopReason::Error);
            m_thread.join();
        }
        m_journal.add(fmt::format("destroy {}", m_boot));
    }

    void start()
    {
        m_journal.add(fmt::format("start {}", m_boot));
        if (m_script.report_inside_start && m_script.guest_stops_with) {
            report(*m_script.guest_stops_with);
            return;
        }
        m_thread = std::thread([this] {
            if (m_script.guest_stops_with) {
                report(*m_script.guest_stops_with);
                return;
            }
            while (!m_stopped.load(std::memory_order_acquire)) { // "In KVM_RUN" until stopped.
                if (int event = m_guest_event.load(std::memory_order_acquire); event >= 0) {
                    report(static_cast<StopReason>(event));
                    return;
                }
                std::this_thread::sleep_for(100us);
            }
        });
    }
    void request_stop(StopReason reason)
    {
        m_journal.add(fmt::format("request_stop {} {}", m_boot, runner_detail::reason_name(reason)));
        report(reason);
    }
    void join()
    {
        if (m_thread.joinable())
            m_thread.join();
        m_joined = true;
        m_journal.add(fmt::format("join {}", m_boot));
    }
    // The guest does something that stops the machine: reported at once on the calling thread
    // (guest_event), or by the running vCPU thread (schedule_guest_event, any thread).
    void guest_event(StopReason reason) { report(reason); }
    void schedule_guest_event(StopReason reason) { m_guest_event.store(static_cast<int>(reason), std::memory_order_release); }

    MemoryLayout const& layout() const { return m_layout; }
    FakePartition* partition() { return &m_partition; }
    FakeVmbus* vmbus() { return &m_vmbus; }
    bool joined() const { return m_joined; }
    int boot() const { return m_boot; }

private:
    // Machine::request_stop's contract: the first reason reaches on_stop, once.
    void report(StopReason reason)
    {
        if (!m_stopped.exchange(true, std::memory_order_acq_rel) && m_callbacks.on_stop)
            m_callbacks.on_stop(reason);
    }

    int m_boot;
    BootScript m_script;
    MachineCallbacks m_callbacks;
    Journal& m_journal;
    MemoryLayout m_layout { 64 * MIB, 64 * MIB, 0, 0 };
    FakePartition m_partition;
    FakeVmbus m_vmbus;
    std::atomic<bool> m_stopped { false };
    std::atomic<int> m_guest_event { -1 };
    bool m_joined { false };
    std::thread m_thread;
};

static_assert(RunnerMachine<FakeMachine>);
static_assert(RunnerMachine<Machine>);

struct Rig {
    explicit Rig(std::deque<std::optional<BootScript>> boots, OnReboot on_reboot = OnReboot::Reset)
        : scripts(std::move(boots))
    {
        config.machine.on_reboot = on_reboot;
        runner = std::make_unique<BasicRunner<FakeMachine>>(config, factory(), *loop, std::chrono::steady_clock::now());
        runner->on_machine_created([this](FakeMachine& machine) {
            journal.add(fmt::format("created {}", machine.boot()));
            current = &machine;
            if (on_created)
                on_created(machine);
        });
        runner->on_guest_reset([this](FakeMachine& machine) {
            EXPECT_TRUE(machine.joined()) << "reset observer before join";
            journal.add(fmt::format("reset {}", machine.boot()));
        });
        runner->on_machine_exit([this](FakeMachine& machine) {
            EXPECT_TRUE(machine.joined()) << "exit observer before join";
            journal.add(fmt::format("exit {}", machine.boot()));
        });
    }

    // Each boot takes the next script; an empty one fails to build (Machine::create failing).
    BasicRunner<FakeMachine>::MachineFactory factory()
    {
        return [this](Config const&, devices::ByteSink&, MachineCallbacks callbacks) -> Result<std::unique_ptr<FakeMachine>> {
            int const boot = ++builds;
            if (scripts.empty() || !scripts.front()) {
                if (!scripts.empty())
                    scripts.pop_front();
                journal.add(fmt::format("create {} failed", boot));
                return fail(Errc::Unsupported, "fake machine refused to build");
            }
            auto script = *scripts.front();
            scripts.pop_front();
            journal.add(fmt::format("create {}", boot));
            return std::make_unique<FakeMachine>(boot, script, std::move(callbacks), journal);
        };
    }

    Config config;
    std::unique_ptr<EventLoop> loop { EventLoop::create().value() };
    std::deque<std::optional<BootScript>> scripts;
    int builds = 0;
    Journal journal;
    FakeMachine* current = nullptr;
    std::function<void(FakeMachine&)> on_created; // Loop thread, before the machine starts.
    std::unique_ptr<BasicRunner<FakeMachine>> runner;
};

using Entries = std::vector<std::string>;

TEST(Runner, PoweroffJoinsTheMachineThenExitsWithStatus0)
{
    Rig rig { { BootScript { StopReason::Poweroff } } };
    EXPECT_EQ(rig.runner->run(), EXIT_GUEST_DONE);
    EXPECT_EQ(rig.runner->boot_count(), 1u);
    EXPECT_EQ(rig.runner->machine(), nullptr);
    EXPECT_EQ(rig.journal.entries(), (Entries { "create 1", "created 1", "start 1", "join 1", "exit 1", "destroy 1" }));
}

TEST(Runner, ResetBuildsAFreshMachineOnlyAfterTheOldOneWasJoinedAndDestroyed)
{
    Rig rig { { BootScript { StopReason::Reset }, BootScript { StopReason::Poweroff } } };
    EXPECT_EQ(rig.runner->run(), EXIT_GUEST_DONE);
    EXPECT_EQ(rig.runner->boot_count(), 2u);
    EXPECT_EQ(rig.journal.entries(), (Entries { "create 1", "created 1", "start 1", "join 1", "reset 1", "destroy 1",
                                         "create 2", "created 2", "start 2", "join 2", "exit 2", "destroy 2" }));
}

TEST(Runner, ResetWithOnRebootExitEndsWithoutAnotherBoot)
{
    Rig rig { { BootScript { StopReason::Reset }, BootScript { StopReason::Poweroff } }, OnReboot::Exit };
    EXPECT_EQ(rig.runner->run(), EXIT_GUEST_DONE);
    EXPECT_EQ(rig.runner->boot_count(), 1u);
    EXPECT_EQ(rig.journal.entries(), (Entries { "create 1", "created 1", "start 1", "join 1", "exit 1", "destroy 1" }));
}

TEST(Runner, AVcpuErrorExitsWithHostFailure)
{
    Rig rig { { BootScript { StopReason::Error } } };
    EXPECT_EQ(rig.runner->run(), EXIT_FAILURE_HOST);
    EXPECT_EQ(rig.journal.entries(), (Entries { "create 1", "created 1", "start 1", "join 1", "exit 1", "destroy 1" }));
}

TEST(Runner, AFirstBootThatFailsExitsWithHostFailureAndNoObserverRuns)
{
    Rig rig { { std::nullopt } };
    EXPECT_EQ(rig.runner->run(), EXIT_FAILURE_HOST);
    EXPECT_EQ(rig.runner->boot_count(), 0u);
    EXPECT_EQ(rig.journal.entries(), (Entries { "create 1 failed" }));
}

TEST(Runner, ARebootThatFailsExitsWithHostFailureAfterTheOldMachineWent)
{
    Rig rig { { BootScript { StopReason::Reset }, std::nullopt } };
    EXPECT_EQ(rig.runner->run(), EXIT_FAILURE_HOST);
    EXPECT_EQ(rig.runner->boot_count(), 1u);
    EXPECT_EQ(rig.journal.entries(), (Entries { "create 1", "created 1", "start 1", "join 1", "reset 1", "destroy 1",
                                         "create 2 failed" }));
}

TEST(Runner, StopForSignalStopsARunningGuestWithStatus143)
{
    Rig rig { { BootScript {} } }; // Runs until stopped.
    rig.on_created = [&](FakeMachine&) { ASSERT_TRUE(rig.loop->post([&] { rig.runner->stop_for_signal(); })); };
    EXPECT_EQ(rig.runner->run(), EXIT_SIGNAL_BASE + SIGTERM);
    EXPECT_EQ(rig.journal.entries(),
        (Entries { "create 1", "created 1", "start 1", "request_stop 1 signal", "join 1", "exit 1", "destroy 1" }));
}

// The guest's reset was recorded first (the machine's first reason), the signal came before the
// loop handled it: the VMM still exits as for the signal and never reboots.
TEST(Runner, ASignalThatRacesWithAGuestResetNeverReboots)
{
    Rig rig { { BootScript { StopReason::Reset, true }, BootScript { StopReason::Poweroff } } };
    rig.on_created = [&](FakeMachine&) { ASSERT_TRUE(rig.loop->post([&] { rig.runner->stop_for_signal(); })); };
    EXPECT_EQ(rig.runner->run(), EXIT_SIGNAL_BASE + SIGTERM);
    EXPECT_EQ(rig.runner->boot_count(), 1u);
    EXPECT_EQ(rig.journal.entries(),
        (Entries { "create 1", "created 1", "start 1", "request_stop 1 signal", "join 1", "exit 1", "destroy 1" }));
}

// SIGTERM through the real signalfd (blocked in this thread, raised at it): the first goes to
// the terminate hook, which starts a graceful shutdown; the guest then powers off, and the
// status is still the signal's.
TEST(Runner, TheFirstSigtermGoesToTheTerminateHookAndTheGuestsPoweroffExitsAsTheSignal)
{
    ASSERT_TRUE(block_termination_signals());
    Rig rig { { BootScript {} } };
    int hook_calls = 0;
    rig.runner->on_terminate_request([&] {
        ++hook_calls;
        // The guest's shutdown IC would make it power off: its vCPU thread reports it.
        rig.current->schedule_guest_event(StopReason::Poweroff);
        return true;
    });
    rig.on_created = [&](FakeMachine&) { ASSERT_TRUE(rig.loop->post([] { ::raise(SIGTERM); })); };
    EXPECT_EQ(rig.runner->run(), EXIT_SIGNAL_BASE + SIGTERM);
    EXPECT_EQ(hook_calls, 1);
    EXPECT_EQ(rig.journal.entries(), (Entries { "create 1", "created 1", "start 1", "join 1", "exit 1", "destroy 1" }));
}

TEST(Runner, ASecondSigtermStopsAtOnceWhileTheGracefulShutdownRuns)
{
    ASSERT_TRUE(block_termination_signals());
    Rig rig { { BootScript {} } };
    int hook_calls = 0;
    rig.runner->on_terminate_request([&] {
        ++hook_calls;
        EXPECT_TRUE(rig.loop->post([] { ::raise(SIGTERM); })); // The user insists.
        return true;
    });
    rig.on_created = [&](FakeMachine&) { ASSERT_TRUE(rig.loop->post([] { ::raise(SIGTERM); })); };
    EXPECT_EQ(rig.runner->run(), EXIT_SIGNAL_BASE + SIGTERM);
    EXPECT_EQ(hook_calls, 1);
    EXPECT_EQ(rig.journal.entries(),
        (Entries { "create 1", "created 1", "start 1", "request_stop 1 signal", "join 1", "exit 1", "destroy 1" }));
}

// A VMBus post arms the 1 s SynIC re-kick once; it re-arms only while a slot stays occupied.
TEST(Runner, AVmbusPostArmsTheSynicReKickWhichRepeatsOnlyWhileASlotIsOccupied)
{
    Rig rig { { BootScript {} } };
    rig.on_created = [&](FakeMachine& machine) {
        machine.partition()->on_kick = [&machine] {
            if (machine.partition()->kicks == 1)
                return true; // Still occupied: kick again in 1 s.
            machine.guest_event(StopReason::Poweroff);
            return false;
        };
        ASSERT_TRUE(machine.vmbus()->message_hook);
        // Posts from a vCPU thread, several times: one timer.
        std::thread([hook = machine.vmbus()->message_hook] {
            for (int i = 0; i < 5; ++i)
                hook();
        }).join();
    };
    auto const start = std::chrono::steady_clock::now();
    EXPECT_EQ(rig.runner->run(), EXIT_GUEST_DONE);
    EXPECT_GE(std::chrono::steady_clock::now() - start, 2s); // Two periods: not a busy loop.
    EXPECT_EQ(rig.journal.entries(), (Entries { "create 1", "created 1", "start 1", "join 1", "exit 1", "destroy 1" }));
}

} // namespace
} // namespace vmm

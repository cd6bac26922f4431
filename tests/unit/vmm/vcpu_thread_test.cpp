// SPDX-License-Identifier: MIT
// VcpuThread over a scripted fake vCPU (no KVM): exits reach the buses and the stop reasons,
// and stopping races with joining without ever signalling an ended thread (issue 16 item 1; the
// TSan build of this test reported the old unsynchronised joinable()/native_handle() reads).
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "vmm/vcpu_thread.hpp"
#include "vmm/vcpu_hooks.hpp"

namespace vmm {
namespace {

using namespace std::chrono_literals;

// Returns the scripted exits, then "sits in KVM_RUN" until the kick handler asks for an
// immediate exit, like KVM_RUN with kvm_run->immediate_exit.
class FakeVcpu final : public kvm::RunnableVcpu {
public:
    explicit FakeVcpu(std::deque<kvm::VcpuExit> script = {}, std::optional<Error> fail_after_script = {})
        : m_script(std::move(script))
        , m_fail(std::move(fail_after_script))
    {
    }
    u32 index() const override { return 0; }
    Result<kvm::VcpuExit> run() override
    {
        runs.fetch_add(1, std::memory_order_relaxed);
        {
            std::lock_guard guard { m_lock };
            if (!m_script.empty()) {
                auto exit = m_script.front();
                m_script.pop_front();
                return exit;
            }
        }
        if (m_fail)
            return std::unexpected(*m_fail);
        while (!m_immediate_exit.load(std::memory_order_acquire))
            std::this_thread::sleep_for(50us);
        return kvm::Interrupted {};
    }
    void request_immediate_exit() const override { m_immediate_exit.store(true, std::memory_order_release); }
    void clear_immediate_exit() const override { m_immediate_exit.store(false, std::memory_order_release); }
    std::string describe_internal_error() const override { return "fake"; }
    Result<kvm::Regs> get_regs() const override { return regs; }
    Result<void> set_regs(kvm::Regs const& written) override
    {
        regs_written.push_back(written);
        regs = written;
        return {};
    }
    Result<kvm::SpecialRegs> get_sregs() const override { return sregs; }

    std::atomic<u64> runs { 0 };
    // Register state for the hypercall port (read by the vCPU thread after the OUT exit).
    kvm::Regs regs {};
    kvm::SpecialRegs sregs {};
    std::vector<kvm::Regs> regs_written;

private:
    std::mutex m_lock;
    std::deque<kvm::VcpuExit> m_script;
    std::optional<Error> m_fail;
    mutable std::atomic<bool> m_immediate_exit { false };
};

class RecordingPort final : public IoDevice {
public:
    std::string_view name() const override { return "recording"; }
    IoStatus read(u64, std::span<std::byte> data) override
    {
        std::ranges::fill(data, std::byte { 0x5a });
        ++reads;
        return IoStatus::Ok;
    }
    IoStatus write(u64 offset, std::span<std::byte const> data) override
    {
        for (auto byte : data)
            written.push_back({ offset, std::to_integer<u8>(byte) });
        return IoStatus::Ok;
    }
    int reads = 0;
    std::vector<std::pair<u64, u8>> written;
};

// A platform extension that knows one MSR and treats port 0x1234 as its hypercall port.
class RecordingHooks final : public VcpuHooks {
public:
    static constexpr u32 KNOWN_MSR = 0x4000'0000;
    static constexpr u16 PORT = 0x1234;
    std::optional<u64> read_msr(u32 vp, u32 msr) override
    {
        reads.push_back({ vp, msr });
        return msr == KNOWN_MSR ? std::optional<u64> { 0x1122'3344'5566'7788 } : std::nullopt;
    }
    bool write_msr(u32 vp, u32 msr, u64 value) override
    {
        writes.push_back({ vp, msr, value });
        return msr == KNOWN_MSR;
    }
    bool is_hypercall_port(u16 port) const override { return port == PORT; }
    void hypercall(u32 vp, u8 cpl, kvm::Regs& regs) override
    {
        calls.push_back({ vp, cpl, regs.rcx });
        regs.rax = cpl == 0 ? 0 : 2; // HV_STATUS_SUCCESS / INVALID_HYPERCALL_CODE, as the partition answers.
    }
    struct Write {
        u32 vp, msr;
        u64 value;
    };
    struct Call {
        u32 vp;
        u8 cpl;
        u64 control;
    };
    std::vector<std::pair<u32, u32>> reads;
    std::vector<Write> writes;
    std::vector<Call> calls;
};

struct Rig {
    Rig()
    {
        EXPECT_TRUE(VcpuThread::install_kick_handler());
        EXPECT_TRUE(pio.attach({ 0x3f8, 8 }, port));
        pio.freeze();
        mmio.freeze();
    }
    // The Machine's role: remember the first reason, stop the thread.
    VcpuDispatch dispatch(VcpuThread*& thread, VcpuHooks* hooks = nullptr)
    {
        return VcpuDispatch { pio, mmio, hooks,
            [this, &thread](StopReason reason) {
                {
                    std::lock_guard guard { lock };
                    reasons.push_back(reason);
                }
                thread->request_stop();
            },
            [this] { first_runs.fetch_add(1); } };
    }
    std::vector<StopReason> stop_reasons()
    {
        std::lock_guard guard { lock };
        return reasons;
    }

    RecordingPort port;
    Bus pio { "pio" };
    Bus mmio { "mmio" };
    std::mutex lock;
    std::vector<StopReason> reasons;
    std::atomic<int> first_runs { 0 };
};

TEST(VcpuThread, ExitsReachTheBusAndAResetStops)
{
    Rig rig;
    std::array<std::byte, 2> out { std::byte { 'h' }, std::byte { 'i' } };
    std::array<std::byte, 1> in {};
    FakeVcpu vcpu { {
        kvm::PioOut { 0x3f8, 1, 2, out }, // `rep outsb` of two bytes: two writes.
        kvm::PioIn { 0x3f9, 1, 1, in },
        kvm::MmioWrite { mem::Gpa { 0xfed0'0000 }, out }, // Unclaimed: ignored.
        kvm::SystemEvent { kvm::SystemEventType::Reset, 2 },
    } };
    VcpuThread* self = nullptr;
    auto dispatch = rig.dispatch(self);
    VcpuThread thread { vcpu, dispatch };
    self = &thread;
    thread.start();
    thread.join();
    EXPECT_EQ(rig.stop_reasons(), std::vector { StopReason::Reset });
    EXPECT_EQ(rig.first_runs.load(), 1);
    ASSERT_EQ(rig.port.written.size(), 2u);
    EXPECT_EQ(rig.port.written[0], (std::pair<u64, u8> { 0, 'h' }));
    EXPECT_EQ(rig.port.written[1], (std::pair<u64, u8> { 0, 'i' }));
    EXPECT_EQ(rig.port.reads, 1);
    EXPECT_EQ(in[0], std::byte { 0x5a });
}

TEST(VcpuThread, ShutdownAndErrorsStopWithTheirReason)
{
    for (auto [exit, reason] : std::vector<std::pair<kvm::VcpuExit, StopReason>> {
             { kvm::Shutdown {}, StopReason::Reset },
             { kvm::SystemEvent { kvm::SystemEventType::Shutdown, 1 }, StopReason::Poweroff },
             { kvm::InternalError { 1 }, StopReason::Error },
             { kvm::FailEntry { 0x21 }, StopReason::Error },
             { kvm::Unknown { 99 }, StopReason::Error },
         }) {
        Rig rig;
        FakeVcpu vcpu { { exit } };
        VcpuThread* self = nullptr;
        auto dispatch = rig.dispatch(self);
        VcpuThread thread { vcpu, dispatch };
        self = &thread;
        thread.start();
        thread.join();
        EXPECT_EQ(rig.stop_reasons(), std::vector { reason });
    }
}

TEST(VcpuThread, RunFailureStopsWithError)
{
    Rig rig;
    FakeVcpu vcpu { {}, Error::from_errno("KVM_RUN", EFAULT) };
    VcpuThread* self = nullptr;
    auto dispatch = rig.dispatch(self);
    VcpuThread thread { vcpu, dispatch };
    self = &thread;
    thread.start();
    thread.join();
    EXPECT_EQ(rig.stop_reasons(), std::vector { StopReason::Error });
}

// Other threads (vCPUs hitting a power event, the signal path) stop the machine while the loop
// thread joins it: every request_stop() before, during and after the join is safe, and the one
// that matters ends the run loop.
TEST(VcpuThread, StopRacesWithJoin)
{
    for (int round = 0; round < 20; ++round) {
        Rig rig;
        FakeVcpu vcpu;
        VcpuThread* self = nullptr;
        auto dispatch = rig.dispatch(self);
        auto thread = std::make_unique<VcpuThread>(vcpu, dispatch);
        self = thread.get();
        thread->start();
        while (vcpu.runs.load() == 0)
            std::this_thread::yield();
        std::atomic<bool> joined { false };
        std::vector<std::thread> stoppers;
        for (int i = 0; i < 3; ++i)
            stoppers.emplace_back([&] {
                // Keep stopping until well after the join returned.
                for (int n = 0; n < 200 || !joined.load(); ++n) {
                    thread->request_stop();
                    std::this_thread::yield();
                }
            });
        std::this_thread::sleep_for(std::chrono::microseconds { 100 * round });
        thread->request_stop();
        thread->join();
        joined = true;
        for (auto& stopper : stoppers)
            stopper.join();
        EXPECT_TRUE(rig.stop_reasons().empty()); // A requested stop is not a guest event.
    }
}

// User-space MSR exits go to the hooks; what they refuse, and every MSR without hooks, gets #GP.
TEST(VcpuThread, MsrExitsGoToTheHooksAndRefusalsInjectGp)
{
    struct Reply {
        u64 value = 0;
        u8 error = 0;
        kvm::MsrReply reply() { return kvm::MsrReply { &value, &error }; }
    };
    Reply known_read, unknown_read, known_write, unknown_write, unhooked;
    auto run = [](std::deque<kvm::VcpuExit> script, VcpuHooks* hooks) {
        script.push_back(kvm::SystemEvent { kvm::SystemEventType::Shutdown, 1 });
        Rig rig;
        FakeVcpu vcpu { std::move(script) };
        VcpuThread* self = nullptr;
        auto dispatch = rig.dispatch(self, hooks);
        VcpuThread thread { vcpu, dispatch };
        self = &thread;
        thread.start();
        thread.join();
        EXPECT_EQ(rig.stop_reasons(), std::vector { StopReason::Poweroff });
    };
    RecordingHooks hooks;
    run({ kvm::MsrRead { RecordingHooks::KNOWN_MSR, known_read.reply() }, kvm::MsrRead { 0x4000'0099, unknown_read.reply() },
            kvm::MsrWrite { RecordingHooks::KNOWN_MSR, 42, known_write.reply() },
            kvm::MsrWrite { 0x4000'0099, 7, unknown_write.reply() } },
        &hooks);
    run({ kvm::MsrRead { RecordingHooks::KNOWN_MSR, unhooked.reply() } }, nullptr);

    EXPECT_EQ(known_read.value, 0x1122'3344'5566'7788u);
    EXPECT_EQ(known_read.error, 0);
    EXPECT_EQ(unknown_read.error, 1);
    EXPECT_EQ(known_write.error, 0);
    EXPECT_EQ(unknown_write.error, 1);
    EXPECT_EQ(unhooked.error, 1);
    ASSERT_EQ(hooks.writes.size(), 2u);
    EXPECT_EQ(hooks.writes[0].value, 42u);
    EXPECT_EQ(hooks.reads.size(), 2u);
}

// An OUT to the hypercall port is a hypercall with the vCPU's registers and CPL (CS.RPL); the
// hook's RAX is written back with RIP unchanged. Other ports still reach the bus.
TEST(VcpuThread, HypercallPortOutCallsTheHookWithTheCplAndWritesRaxBack)
{
    Rig rig;
    RecordingHooks hooks;
    std::array<std::byte, 1> byte { std::byte { 0 } };
    FakeVcpu vcpu { {
        kvm::PioOut { RecordingHooks::PORT, 1, 1, byte },
        kvm::PioOut { 0x3f8, 1, 1, byte },
        kvm::SystemEvent { kvm::SystemEventType::Reset, 2 },
    } };
    vcpu.regs.rcx = 0x1'005D; // The hypercall control word.
    vcpu.regs.rip = 0x1000;
    vcpu.sregs.cs.selector = 0x33; // CPL 3: guest user space that was given the port by ioperm().
    VcpuThread* self = nullptr;
    auto dispatch = rig.dispatch(self, &hooks);
    VcpuThread thread { vcpu, dispatch };
    self = &thread;
    thread.start();
    thread.join();
    ASSERT_EQ(hooks.calls.size(), 1u);
    EXPECT_EQ(hooks.calls[0].cpl, 3);
    EXPECT_EQ(hooks.calls[0].control, 0x1'005Du);
    ASSERT_EQ(vcpu.regs_written.size(), 1u);
    EXPECT_EQ(vcpu.regs_written[0].rax, 2u);
    EXPECT_EQ(vcpu.regs_written[0].rip, 0x1000u);
    EXPECT_EQ(rig.port.written.size(), 1u); // The second OUT went to the UART's port.
}

// A stop requested before the thread starts: it never enters KVM_RUN.
TEST(VcpuThread, AStopRequestedBeforeStartNeverRuns)
{
    Rig rig;
    FakeVcpu vcpu;
    VcpuThread* self = nullptr;
    auto dispatch = rig.dispatch(self);
    VcpuThread thread { vcpu, dispatch };
    self = &thread;
    thread.request_stop();
    thread.start();
    thread.join();
    EXPECT_EQ(vcpu.runs.load(), 0u);
    EXPECT_TRUE(rig.stop_reasons().empty());
}

// Destroying a VcpuThread whose vCPU sits in KVM_RUN kicks it out and joins it (the Machine's
// destructor relies on this).
TEST(VcpuThread, DestructionKicksARunningVcpuAndJoinsIt)
{
    Rig rig;
    FakeVcpu vcpu;
    VcpuThread* self = nullptr;
    auto dispatch = rig.dispatch(self);
    {
        VcpuThread thread { vcpu, dispatch };
        self = &thread;
        thread.start();
        while (vcpu.runs.load() == 0)
            std::this_thread::yield();
    } // ~VcpuThread: request_stop + join.
    u64 const runs = vcpu.runs.load();
    std::this_thread::sleep_for(std::chrono::milliseconds { 5 });
    EXPECT_EQ(vcpu.runs.load(), runs); // The thread is gone: nothing runs any more.
    EXPECT_TRUE(rig.stop_reasons().empty());
}

} // namespace
} // namespace vmm

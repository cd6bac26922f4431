// SPDX-License-Identifier: MIT
#include "vmm/runner.hpp"

namespace vmm {

namespace runner_detail {

std::string_view reason_name(StopReason reason)
{
    switch (reason) {
    case StopReason::Poweroff: return "poweroff";
    case StopReason::Reset: return "reset";
    case StopReason::Signal: return "signal";
    case StopReason::Error: return "error";
    }
    return "?";
}

u64 elapsed_ms(std::chrono::steady_clock::time_point since)
{
    return static_cast<u64>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - since).count());
}

} // namespace runner_detail

Runner::MachineFactory machine_factory(kvm::KvmSystem const& kvm, DiskImages const& disks)
{
    return [&kvm, &disks](Config const& config, devices::ByteSink& serial, MachineCallbacks callbacks) {
        return Machine::create(config, kvm, serial, std::move(callbacks), disks);
    };
}

template class BasicRunner<Machine>;

} // namespace vmm

// SPDX-License-Identifier: MIT
// Machine: one boot of one guest. Owns the KVM VM and vCPUs, guest RAM (a memfd) and the
// hot-add window, the buses and devices, and the vCPU threads. A guest reset destroys the
// Machine and builds a fresh one (vmm/runner.*): no state survives a reboot by construction.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/mapping.hpp"
#include "mem/boot_ram.hpp"
#include "mem/guest_memory.hpp"
#include "vmm/bus.hpp"
#include "vmm/config.hpp"
#include "vmm/devices/acpi_pm.hpp"
#include "vmm/devices/cmos_rtc.hpp"
#include "vmm/devices/uart16550.hpp"
#include "vmm/guest_ram_backends.hpp"
#include "vmm/host_memory_use.hpp"
#include "vmm/hyperv/timer_thread.hpp"
#include "vmm/hyperv_glue.hpp"
#include "vmm/pci_glue.hpp"
#include "vmm/vmbus_glue.hpp"
#include "vmm/kvm/kvm_system.hpp"
#include "vmm/kvm/kvm_vcpu.hpp"
#include "vmm/kvm/kvm_vm.hpp"
#include "vmm/vcpu_hooks.hpp"
#include "vmm/vcpu_thread.hpp"

namespace vmm::firmware {
struct BootCpuState;
}

namespace vmm {

// Guest-physical layout decisions that depend only on the configuration (unit-tested).
struct MemoryLayout {
    u64 ram_bytes;           // Boot RAM (memory_mib).
    u64 ram_end_gpa;         // One past the highest boot RAM byte (above 4 GiB if RAM crosses the hole).
    u64 hot_add_base_gpa;    // 128 MiB aligned; 0 size means no window.
    u64 hot_add_size_bytes;  // max_memory - memory, rounded down to 128 MiB chunks.
};
inline constexpr u64 HOT_ADD_CHUNK_BYTES = 128 * MIB; // Linux 6.1 hv_balloon HA_CHUNK (guest-interface §9.1).
inline constexpr u32 FIRST_HOT_ADD_SLOT = 8;         // KVM slots 0..7 are boot RAM.
MemoryLayout plan_memory(u64 memory_mib, u64 max_memory_mib);

struct MachineCallbacks {
    // Called from any thread (vCPU threads, devices) at most once per Machine, with the first
    // stop reason; it must only post work to the event loop.
    std::function<void(StopReason)> on_stop;
    // Called on vCPU 0's thread just before its first KVM_RUN (timing and logging).
    std::function<void()> on_first_run;
    // Called on a vCPU thread when the guest reports a crash through the Hyper-V crash MSRs;
    // it must only publish or post (the API's guest_crashed event).
    std::function<void(hyperv::CrashReport const&)> on_guest_crash;
};

class Machine {
public:
    // `disks`: each [[disk]]'s image, opened once per VMM (vmm/main.cpp); empty: opened per boot.
    static Result<std::unique_ptr<Machine>> create(Config const&, kvm::KvmSystem const&, devices::ByteSink& serial,
        MachineCallbacks callbacks, DiskImages disks = {});
    Machine(Machine const&) = delete;
    Machine& operator=(Machine const&) = delete;
    ~Machine(); // Stops and joins the vCPU threads first.

    // Starts the vCPU threads (the BSP runs, APs wait for INIT/SIPI in the kernel).
    void start();
    // Any thread: records `reason` (first one wins), stops and kicks every vCPU.
    void request_stop(StopReason reason);
    // Loop thread: waits until every vCPU thread has ended.
    void join();

    // Guest RAM as the rest of the VMM sees it (boot RAM + pluggable hot-add window).
    mem::GuestMemory const& guest_memory() const { return m_memory; }
    mem::GuestMemory& guest_memory() { return m_memory; }
    // Boot RAM's memfd (mem::BootRam): discard() gives ballooned pages back to the host.
    mem::BootRam const& boot_ram() const { return m_boot_ram; }
    // What the host holds for guest RAM now (memfd blocks, hot-add window Rss). Any thread.
    Result<HostMemoryUse> host_memory_use() const { return read_host_memory_use(m_boot_ram, m_hot_add_window); }
    // The hot-add window: reserved address space (PROT_NONE) at layout().hot_add_base_gpa.
    Mapping const& hot_add_window() const { return m_hot_add_window; }
    MemoryLayout const& layout() const { return m_layout; }
    kvm::KvmVm& vm() { return m_vm; }
    Bus& pio_bus() { return m_pio_bus; }
    Bus& mmio_bus() { return m_mmio_bus; }
    u32 vcpu_count() const { return static_cast<u32>(m_vcpus.size()); }
    // The PCI root with [pci] enabled, else null.
    pci::PciRoot* pci_root() { return m_pci ? &m_pci->root() : nullptr; }
    PciGlue* pci() { return m_pci.get(); }

    // KVM slots for the hot-add window (for mem::OnDemandMemslots, slots from
    // FIRST_HOT_ADD_SLOT) and page discard for ballooned pages (boot RAM and window).
    mem::MemslotSink& memslot_sink() { return *m_memslot_sink; }
    mem::DiscardBackend& discard_backend() { return *m_discard; }

    // The Hyper-V partition when [hyperv] enabled, else null. The VMBus host posts through it
    // (vmbus::SynicPort) and registers with set_hypercall_sink() before start().
    hyperv::Partition* partition() { return m_partition.get(); }
    // The VMBus host (with [hyperv] enabled, else null). Devices register through
    // vmbus()->with_host([&](vmbus::VmbusHost& host) { host.add_device(device); }) before start().
    VmbusGlue* vmbus() { return m_vmbus.get(); }

    // Replaces the MSR/hypercall seam before start() (default: the partition's hooks, if any).
    void set_vcpu_hooks(VcpuHooks* hooks) { m_hooks = hooks; }

private:
    Machine(Config const&, kvm::KvmVm, devices::ByteSink&, MachineCallbacks);
    Result<void> create_memory();
    Result<void> create_devices();
    Result<void> create_vcpus(kvm::KvmSystem const&);
    Result<void> create_partition();
    Result<CpuidTable> guest_cpuid(kvm::KvmSystem const&) const;
    Result<void> load_guest();
    Result<void> setup_boot_cpu(firmware::BootCpuState const&);

    // Members are destroyed bottom-up: the vCPU threads (declared last) are joined first,
    // then the vCPU fds, the devices and buses, the VM fd, and only then the RAM mappings
    // its memory slots point at, so KVM never holds a slot over unmapped memory.
    Config m_config;
    MemoryLayout m_layout;
    MachineCallbacks m_callbacks;
    DiskImages m_disk_images;
    std::atomic<bool> m_stop_requested { false };

    mem::BootRam m_boot_ram;    // memfd "guest-ram", all of boot RAM mapped MAP_SHARED.
    Mapping m_hot_add_window;   // Reserved, PROT_NONE until the DM device plugs chunks.
    kvm::KvmVm m_vm;            // Destroyed before the mappings above (declared after them).
    mem::GuestMemory m_memory;  // Views into m_boot_ram / m_hot_add_window.
    std::unique_ptr<KvmMemslotSink> m_memslot_sink;
    std::unique_ptr<GuestRamDiscard> m_discard;

    devices::ByteSink& m_serial_sink;
    std::unique_ptr<devices::Uart16550> m_uart;
    std::unique_ptr<devices::AcpiSleepControl> m_sleep_control;
    std::unique_ptr<devices::AcpiSleepStatus> m_sleep_status;
    std::unique_ptr<devices::AcpiResetRegister> m_reset_register;
    std::unique_ptr<devices::I8042ResetPort> m_i8042;
    std::unique_ptr<devices::PostCodePort> m_post_code;
    std::unique_ptr<devices::CmosRtc> m_rtc;
    std::unique_ptr<PciGlue> m_pci; // [pci] enabled: the root, its devices and bus faces.
    Bus m_pio_bus { "pio" };    // After the devices: holds references to them.
    Bus m_mmio_bus { "mmio" };

    // Hyper-V (only with [hyperv] enabled): references m_memory and m_vm.
    std::unique_ptr<MsiInterruptSink> m_interrupts;
    std::unique_ptr<hyperv::Partition> m_partition;
    std::unique_ptr<PartitionHooks> m_partition_hooks;
    std::unique_ptr<PartitionPlatform> m_platform;
    std::unique_ptr<VmbusGlue> m_vmbus; // Uses m_partition as its SynicPort.
    // The host timer source of the synthetic timers: stopped (destroyed) after the vCPU threads
    // and before the partition and VM it injects into.
    std::unique_ptr<hyperv::TimerThread> m_timer_thread;

    VcpuHooks* m_hooks { nullptr };
    std::vector<std::unique_ptr<kvm::KvmVcpu>> m_vcpus; // Before the VM fd closes (declared after m_vm).
    std::unique_ptr<VcpuDispatch> m_dispatch;
    std::vector<std::unique_ptr<VcpuThread>> m_threads; // Last: joined first.
};

} // namespace vmm

// SPDX-License-Identifier: MIT
// Building one boot of the guest: memory, platform devices, vCPUs, then the kernel.
#include "vmm/machine.hpp"

#include <unistd.h>
#include <x86intrin.h>


#include "base/log.hpp"
#include "base/startup_trace.hpp"
#include "firmware/acpi/acpi_tables.hpp"
#include "firmware/boot_info.hpp"
#include "firmware/e820.hpp"
#include "firmware/kernel_image.hpp"
#include "firmware/layout.hpp"
#include "vmm/backends/traffic_recorder.hpp"
#include "vmm/hyperv/synthetic_timers.hpp"
#include "vmm/guest_images.hpp"

namespace vmm {

namespace {

// KVM_SET_TSS_ADDR needs three pages and KVM_SET_IDENTITY_MAP_ADDR one page of guest-physical
// space that is neither RAM nor a device: just below the 4 GiB BIOS area, inside the MMIO
// hole and clear of the IOAPIC (0xFEC00000) and LAPIC (0xFEE00000). Firecracker uses the same.
constexpr mem::Gpa TSS_GPA { 0xFFFB'D000 };
constexpr mem::Gpa IDENTITY_MAP_GPA { 0xFFFB'C000 };

constexpr u64 align_up(u64 value, u64 alignment) { return (value + alignment - 1) / alignment * alignment; }

kvm::Segment to_segment(firmware::SegmentState const& in)
{
    return kvm::Segment { in.base, in.limit, in.selector, in.type, in.present, in.dpl, in.db, in.s, in.l, in.g };
}

} // namespace

MemoryLayout plan_memory(u64 memory_mib, u64 max_memory_mib)
{
    MemoryLayout layout {};
    layout.ram_bytes = memory_mib * MIB;
    layout.ram_end_gpa = layout.ram_bytes <= firmware::MMIO_HOLE_START
        ? layout.ram_bytes
        : firmware::HIGH_RAM_RELOCATED_START + (layout.ram_bytes - firmware::MMIO_HOLE_START);
    u64 const extra_bytes = max_memory_mib > memory_mib ? (max_memory_mib - memory_mib) * MIB : 0;
    // Whole 128 MiB chunks only: the guest adds hot-plugged memory in HA_CHUNK blocks.
    layout.hot_add_size_bytes = extra_bytes / HOT_ADD_CHUNK_BYTES * HOT_ADD_CHUNK_BYTES;
    // Above all boot RAM, 128 MiB aligned, and never overlapping the [3 GiB, 4 GiB) hole
    // (docs/guest-interface.md §9.4 "Address choice").
    layout.hot_add_base_gpa = align_up(layout.ram_end_gpa, HOT_ADD_CHUNK_BYTES);
    if (layout.hot_add_base_gpa < firmware::MMIO_HOLE_END
        && layout.hot_add_base_gpa + layout.hot_add_size_bytes > firmware::MMIO_HOLE_START)
        layout.hot_add_base_gpa = firmware::MMIO_HOLE_END;
    return layout;
}

Result<std::unique_ptr<Machine>> Machine::create(Config const& config, kvm::KvmSystem const& system,
    devices::ByteSink& serial, MachineCallbacks callbacks, DiskImages disks)
{
    auto vm = VMM_TRY(system.create_vm().context("creating the VM"));
    startup::mark(startup::Phase::VmCreated);
    std::unique_ptr<Machine> machine { new Machine(config, std::move(vm), serial, std::move(callbacks)) }; // Private constructor.
    machine->m_disk_images = std::move(disks);
    VMM_TRY(machine->m_vm.create_platform(TSS_GPA, IDENTITY_MAP_GPA).context("setting up the VM platform (TSS, in-kernel irqchip, PIT)"));
    startup::mark(startup::Phase::PlatformReady);
    VMM_TRY(machine->create_memory().context("creating {} MiB of guest RAM (hot-add window {} MiB at {:#x})",
        config.machine.memory_mib, machine->m_layout.hot_add_size_bytes / MIB, machine->m_layout.hot_add_base_gpa));
    startup::mark(startup::Phase::MemoryReady);
    VMM_TRY(machine->create_devices().context("creating the devices"));
    startup::mark(startup::Phase::DevicesReady);
    VMM_TRY(machine->create_vcpus(system).context("creating {} vCPU(s)", config.machine.vcpus));
    startup::mark(startup::Phase::VcpusReady);
    VMM_TRY(machine->load_guest());
    startup::mark(startup::Phase::GuestLoaded);
    return machine;
}

Machine::Machine(Config const& config, kvm::KvmVm vm, devices::ByteSink& serial, MachineCallbacks callbacks)
    : m_config(config)
    , m_layout(plan_memory(config.machine.memory_mib, config.machine.max_memory_mib))
    , m_callbacks(std::move(callbacks))
    , m_vm(std::move(vm))
    , m_serial_sink(serial)
{
}

Machine::~Machine()
{
    // Teardown is not a guest event: stop the threads without reporting a reason.
    m_stop_requested.store(true, std::memory_order_release);
    for (auto& thread : m_threads)
        thread->request_stop();
    join();
}

Result<void> Machine::create_memory()
{
    VMM_TRY(firmware::check_ram_bytes(m_layout.ram_bytes));
    std::vector<mem::BootRam::Range> ranges;
    for (auto const& range : firmware::ram_ranges(m_layout.ram_bytes))
        ranges.push_back({ range.start, range.size_bytes });
    m_boot_ram = VMM_TRY(mem::BootRam::create(ranges));

    auto regions = m_boot_ram.regions();
    u32 slot = 0;
    for (auto const& region : regions)
        VMM_TRY(m_vm.set_user_memory_region(slot++, region.start, region.host));
    VMM_ASSERT(m_boot_ram.size_bytes() == m_layout.ram_bytes && slot < FIRST_HOT_ADD_SLOT);
    if (m_layout.hot_add_size_bytes > 0) {
        m_hot_add_window = VMM_TRY(Mapping::reserve(m_layout.hot_add_size_bytes));
        regions.push_back(mem::RamRegion { mem::Gpa { m_layout.hot_add_base_gpa }, m_hot_add_window.bytes() });
    }
    m_memory = VMM_TRY(mem::GuestMemory::from_regions(std::move(regions)));
    if (m_layout.hot_add_size_bytes > 0)
        VMM_TRY(m_memory.make_pluggable(m_memory.regions().size() - 1, HOT_ADD_CHUNK_BYTES));
    m_memslot_sink = std::make_unique<KvmMemslotSink>(m_vm, m_hot_add_window);
    m_discard = std::make_unique<GuestRamDiscard>(*this);
    return {};
}

Result<void> Machine::create_devices()
{
    auto power = [this](devices::PowerEvent event) {
        request_stop(event == devices::PowerEvent::Poweroff ? StopReason::Poweroff : StopReason::Reset);
    };
    m_uart = std::make_unique<devices::Uart16550>(m_serial_sink, [this](bool level) {
        // Edge-triggered ISA IRQ 4 on the in-kernel IOAPIC: forwarding the level makes the
        // 0 -> 1 transition the interrupt (a failure here only loses one interrupt).
        if (auto done = m_vm.irq_line(firmware::COM1_GSI, level); !done)
            VMM_GUEST_WARN("uart", "irq_line: {}", done.error());
    });
    m_sleep_control = std::make_unique<devices::AcpiSleepControl>(power, firmware::ACPI_S5_SLP_TYP);
    m_sleep_status = std::make_unique<devices::AcpiSleepStatus>();
    m_reset_register = std::make_unique<devices::AcpiResetRegister>(power, firmware::ACPI_RESET_VALUE);
    m_i8042 = std::make_unique<devices::I8042ResetPort>(power);
    m_post_code = std::make_unique<devices::PostCodePort>();
    m_rtc = std::make_unique<devices::CmosRtc>([] { return std::chrono::system_clock::now(); });

    constexpr u16 I8042_COMMAND_PORT = 0x64; // PC/AT keyboard controller command/status.
    constexpr u16 POST_CODE_PORT = 0x80;
    VMM_TRY(m_pio_bus.attach({ firmware::COM1_PORT, firmware::COM1_PORT_COUNT }, *m_uart));
    VMM_TRY(m_pio_bus.attach({ firmware::ACPI_SLEEP_CONTROL_PORT, 1 }, *m_sleep_control));
    VMM_TRY(m_pio_bus.attach({ firmware::ACPI_SLEEP_STATUS_PORT, 1 }, *m_sleep_status));
    VMM_TRY(m_pio_bus.attach({ firmware::ACPI_RESET_PORT, 1 }, *m_reset_register));
    VMM_TRY(m_pio_bus.attach({ I8042_COMMAND_PORT, 1 }, *m_i8042));
    VMM_TRY(m_pio_bus.attach({ POST_CODE_PORT, 1 }, *m_post_code));
    VMM_TRY(m_pio_bus.attach({ firmware::CMOS_PORT, firmware::CMOS_PORT_COUNT }, *m_rtc));
    if (m_config.pci.enabled) {
        m_pci = std::make_unique<PciGlue>(m_vm);
        VMM_TRY(m_pci->create(m_config, m_disk_images, m_memory, m_pio_bus, m_mmio_bus).context("creating the PCI root"));
    }
    m_pio_bus.freeze();
    m_mmio_bus.freeze(); // LAPIC and IOAPIC MMIO are handled in the kernel.
    return {};
}

Result<void> Machine::create_vcpus(kvm::KvmSystem const& system)
{
    u32 const count = m_config.machine.vcpus;
    for (u32 index = 0; index < count; ++index) {
        auto vcpu = std::make_unique<kvm::KvmVcpu>(VMM_TRY(m_vm.create_vcpu(index)));
        // APs sleep until the BSP's INIT/SIPI reaches them through the in-kernel LAPIC.
        if (index > 0)
            VMM_TRY(vcpu->set_mp_state(kvm::MpState::Uninitialized));
        m_vcpus.push_back(std::move(vcpu));
    }
    if (m_config.hyperv.enabled)
        VMM_TRY(create_partition());
    CpuidTable const base = VMM_TRY(guest_cpuid(system));
    for (auto& vcpu : m_vcpus) {
        CpuidTable table = base;
        set_topology(table, vcpu->index(), count); // APIC id = vCPU index (KVM_CREATE_VCPU id).
        VMM_TRY(vcpu->set_cpuid(table));
    }
    return {};
}

Result<CpuidTable> Machine::guest_cpuid(kvm::KvmSystem const& system) const
{
    CpuidTable table = VMM_TRY(system.supported_cpuid());
    set_hypervisor_bit(table);
    VMM_TRY(hide_features(table, m_config.cpu.hide_features));
    if (!m_partition) {
        restrict_kvm_leaves(table);
        return table;
    }
    // A visible KVM signature makes Linux pick KVM over Hyper-V (guest-interface §1.1): every
    // hypervisor leaf is replaced by the partition's.
    std::vector<CpuidEntry> leaves;
    for (auto const& leaf : m_partition->cpuid_leaves())
        leaves.push_back(CpuidEntry { leaf.function, leaf.index, false, leaf.eax, leaf.ebx, leaf.ecx, leaf.edx });
    replace_hypervisor_leaves(table, leaves);
    return table;
}

Result<void> Machine::create_partition()
{
    // KVM's LAPIC timer runs at 1 GHz (arch/x86/kvm/lapic.h APIC_BUS_CYCLE_NS_DEFAULT = 1);
    // the partition reports it through the Hyper-V frequency MSRs with the TSC rate.
    constexpr u64 KVM_APIC_BUS_HZ = 1'000'000'000;
    u64 tsc_hz = 0;
    if (auto khz = m_vcpus.front()->tsc_khz())
        tsc_hz = u64 { *khz } * 1000;
    else
        log::warn("machine", "{}: Hyper-V frequency MSRs not offered", khz.error());
    hyperv::PartitionConfig partition_config { m_config.machine.vcpus, tsc_hz, KVM_APIC_BUS_HZ };
    partition_config.enlightenments = m_config.hyperv.enlightenments;
    // Reference time runs on the guest-visible TSC. KVM matches the TSC offsets of vCPUs
    // created together (arch/x86/kvm/x86.c kvm_synchronize_tsc), so vCPU 0's offset is every
    // VP's; the reader then needs no vCPU ioctl and works on any thread.
    if (auto offset = m_vcpus.front()->guest_tsc_offset(); offset && tsc_hz != 0) {
        partition_config.read_guest_tsc = [offset = static_cast<u64>(*offset)] { return __rdtsc() + offset; };
    } else if (m_config.hyperv.enlightenments.reference_time) {
        log::warn("machine", "guest TSC unknown ({}): Hyper-V reference time and synthetic timers not offered",
            offset ? std::string { "no TSC frequency" } : offset.error().message());
    }
    m_interrupts = std::make_unique<MsiInterruptSink>(m_vm);
    m_partition = std::make_unique<hyperv::Partition>(m_memory, *m_interrupts, std::move(partition_config));
    m_partition_hooks = std::make_unique<PartitionHooks>(*m_partition);
    // HV_X64_MSR_RESET behaves like the ACPI reset register (devices::AcpiResetRegister).
    m_platform = std::make_unique<PartitionPlatform>([this] { request_stop(StopReason::Reset); },
        m_callbacks.on_guest_crash);
    m_partition->set_platform_sink(m_platform.get());
    if (auto* timers = m_partition->synthetic_timers()) {
        m_timer_thread = VMM_TRY(hyperv::TimerThread::create(*timers, *m_partition->reference_clock()));
        timers->set_rearm([thread = m_timer_thread.get()](std::optional<u64> earliest) { thread->rearm(earliest); });
    }
    m_vmbus = std::make_unique<VmbusGlue>(m_memory, *m_partition, m_config.machine.vcpus);
    m_partition->set_hypercall_sink(m_vmbus.get());
    if (auto* recorder = backends::TrafficRecorder::instance()) {
        m_vmbus->with_host([recorder](vmbus::VmbusHost& host) { host.set_traffic_tap(recorder); });
        m_partition->set_traffic_tap(recorder);
    }
    m_hooks = m_partition_hooks.get();
    return m_vm.set_msr_filter(hyperv::Partition::msrs());
}

Result<void> Machine::load_guest()
{
    auto const& boot = m_config.boot;
    if (boot.firmware == BootFirmware::Uefi)
        return fail(Errc::Unsupported, "UEFI boot is not implemented; Windows guests need it");
    bool const vmbus = m_config.dynamic_memory.enabled || m_config.hyperv.enabled;
    auto state = VMM_TRY(load_guest_images(m_memory, boot,
        GuestImageParams { m_layout.ram_bytes, m_config.machine.vcpus, vmbus, m_config.pci.enabled }));
    return setup_boot_cpu(state).context("setting up the boot vCPU");
}

Result<void> Machine::setup_boot_cpu(firmware::BootCpuState const& state)
{
    auto& bsp = *m_vcpus.front();
    kvm::SpecialRegs sregs = VMM_TRY(bsp.get_sregs());
    sregs.cs = to_segment(state.cs);
    sregs.ds = to_segment(state.ds);
    sregs.es = to_segment(state.es);
    sregs.fs = to_segment(state.fs);
    sregs.gs = to_segment(state.gs);
    sregs.ss = to_segment(state.ss);
    if (state.tr.present)
        sregs.tr = to_segment(state.tr);
    sregs.gdt = { state.gdt_base, state.gdt_limit };
    sregs.idt = { state.idt_base, state.idt_limit };
    sregs.cr0 = state.cr0;
    sregs.cr3 = state.cr3;
    sregs.cr4 = state.cr4;
    sregs.efer = state.efer;
    VMM_TRY(bsp.set_sregs(sregs));
    kvm::Regs regs {};
    regs.rip = state.rip;
    regs.rsp = state.rsp;
    regs.rbx = state.rbx;
    regs.rsi = state.rsi;
    regs.rflags = state.rflags;
    return bsp.set_regs(regs);
}

void Machine::start()
{
    m_dispatch = std::make_unique<VcpuDispatch>(VcpuDispatch {
        m_pio_bus, m_mmio_bus, m_hooks, [this](StopReason reason) { request_stop(reason); },
        m_callbacks.on_first_run });
    // The vector is complete before any thread runs: request_stop() walks it from vCPU threads.
    for (auto& vcpu : m_vcpus)
        m_threads.push_back(std::make_unique<VcpuThread>(*vcpu, *m_dispatch));
    if (m_timer_thread)
        m_timer_thread->start();
    for (auto& thread : m_threads)
        thread->start();
}

void Machine::request_stop(StopReason reason)
{
    bool const first = !m_stop_requested.exchange(true, std::memory_order_acq_rel);
    for (auto& thread : m_threads)
        thread->request_stop();
    if (first && m_callbacks.on_stop)
        m_callbacks.on_stop(reason);
}

void Machine::join()
{
    for (auto& thread : m_threads)
        thread->join();
}

} // namespace vmm

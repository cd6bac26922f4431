// SPDX-License-Identifier: MIT
// Hot-add and memslots: a 1 TiB maximum-memory guest (1 GiB boot RAM + hot-add window) asked
// to grow by 4 GiB. Times set_target() -> first hot-add request in the ring and -> its memslot
// live (KVM_SET_USER_MEMORY_REGION returned), with the real DM engine and OnDemandMemslots on
// a real KVM VM; then compares the slots and slot bytes against one slot over the whole window
// (BENCHMARKS.md §4). KVM only through vmm/kvm and the VMM's own KvmMemslotSink.
#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "base/fd.hpp"
#include "base/log.hpp"
#include "base/mapping.hpp"
#include "base/types.hpp"
#include "bench/dm_bench_guest.hpp"
#include "bench/memfd_ram.hpp"
#include "bench/report.hpp"
#include "devices/hv_balloon/dynamic_memory.hpp"
#include "mem/guest_physical_map.hpp"
#include "mem/memslots.hpp"
#include "vmm/guest_ram_backends.hpp"
#include "vmm/kvm/kvm_system.hpp"
#include "vmm/kvm/kvm_vm.hpp"
#include "vmm/machine.hpp"

namespace {

using namespace vmm;
using namespace vmm::bench;
using mem::Gpa;
using mem::Gpn;
using mem::PageCount;
using mem::PageRange;

constexpr u64 MAX_MEMORY_BYTES = 1024 * GIB;
constexpr u64 BOOT_BYTES = 1 * GIB;
constexpr u64 HOT_ADD_BYTES = 4 * GIB;
// The window starts above the 32-bit hole, 128 MiB aligned (hv_balloon.c HA_CHUNK).
constexpr Gpa WINDOW_START { 4 * GIB };
constexpr u64 WINDOW_BYTES = MAX_MEMORY_BYTES - BOOT_BYTES;

// A KVM VM (no vCPU: memslots only) through vmm/kvm, and the VMM's own hot-add sink
// (vmm::KvmMemslotSink: mprotect then KVM_SET_USER_MEMORY_REGION, and its removal order),
// counted. Without /dev/kvm the sink only records.
class CountingSink final : public mem::MemslotSink {
public:
    // `window` is the reserved hot-add window mapping every add() lies in.
    static Result<std::unique_ptr<CountingSink>> open(Mapping const& window)
    {
        auto sink = std::unique_ptr<CountingSink>(new CountingSink());
        if (auto system = kvm::KvmSystem::open()) {
            sink->m_system.emplace(std::move(*system));
            sink->m_vm.emplace(VMM_TRY(sink->m_system->create_vm()));
            sink->m_inner.emplace(*sink->m_vm, window);
        }
        return sink;
    }

    Result<void> add(std::uint32_t slot, Gpa gpa, std::span<std::byte> host) override
    {
        if (m_inner)
            VMM_TRY(m_inner->add(slot, gpa, host));
        ++adds;
        bytes_mapped += host.size();
        last_add_done = Clock::now();
        return {};
    }
    Result<void> remove(std::uint32_t slot) override { return m_inner ? m_inner->remove(slot) : Result<void> {}; }
    // Boot RAM's slot (below FIRST_HOT_ADD_SLOT, outside the window), as Machine does.
    Result<void> add_boot_ram(std::span<std::byte> host)
    {
        return m_vm ? m_vm->set_user_memory_region(0, Gpa { 0 }, host) : Result<void> {};
    }
    bool real() const { return m_inner.has_value(); }

    u32 adds = 0;
    u64 bytes_mapped = 0;
    Clock::time_point last_add_done {};

private:
    CountingSink() = default;
    std::optional<kvm::KvmSystem> m_system;
    std::optional<kvm::KvmVm> m_vm;
    std::optional<KvmMemslotSink> m_inner;
};

// Kernel memory that KVM's per-slot metadata (rmap, lpage_info, dirty bitmap) lands in:
// kvcalloc() -> vmalloc for large slots, slab for small ones (virt/kvm/kvm_main.c,
// arch/x86/kvm/x86.c kvm_alloc_memslot_metadata). /proc/meminfo, KiB.
long meminfo_kib(std::string const& field)
{
    std::ifstream in("/proc/meminfo");
    std::string name;
    long value = 0;
    std::string unit;
    while (in >> name >> value) {
        std::getline(in, unit);
        if (name == field + ":")
            return value;
    }
    return -1;
}
long kernel_metadata_kib() { return meminfo_kib("VmallocUsed") + meminfo_kib("Slab"); }

struct Run {
    double request_us;
    double memslot_us;
    double done_us;
    u32 slots_used;
    u64 slot_bytes_mapped;
    u64 slot_bytes;
    long kernel_kib;
    bool real_kvm;
};

Result<Run> run_ours()
{
    PageRange const boot { Gpn { 0 }, PageCount::from_bytes_floor(BOOT_BYTES) };
    PageRange const window { WINDOW_START.page(), PageCount::from_bytes_floor(WINDOW_BYTES) };
    mem::GuestPhysicalMap map = VMM_TRY(mem::GuestPhysicalMap::create(std::span { &boot, 1 }, window));
    Mapping window_host = VMM_TRY(Mapping::reserve(WINDOW_BYTES));
    auto sink_owner = VMM_TRY(CountingSink::open(window_host));
    CountingSink& sink = *sink_owner;
    // Boot RAM gets its slot first, as in the VMM (no page is touched: nothing runs).
    Mapping boot_host = VMM_TRY(Mapping::reserve(BOOT_BYTES));
    VMM_TRY(boot_host.protect(0, BOOT_BYTES, PROT_READ | PROT_WRITE));
    VMM_TRY(sink.add_boot_ram(boot_host.bytes()));
    mem::MemslotPlan plan = VMM_TRY(mem::MemslotPlan::make(window, mem::DEFAULT_MAX_HOT_ADD_MEMSLOTS, FIRST_HOT_ADD_SLOT));
    mem::OnDemandMemslots memslots = VMM_TRY(mem::OnDemandMemslots::create(sink, plan, window_host.bytes()));
    NullDiscard discard;
    hv_balloon::DynamicMemory engine { map, discard, &memslots, hv_balloon::DmConfig::linux_profile() };
    auto transport = make_transport();
    BenchDmGuest guest { engine, *transport };
    VMM_TRY(guest.connect());

    long const kernel_before = kernel_metadata_kib();
    auto const start = Clock::now();
    engine.on_tick(start);
    VMM_TRY(engine.set_target(map.current_pages() + PageCount::from_bytes_floor(HOT_ADD_BYTES)));
    // set_target() sends the first request; the guest then answers every request.
    guest.run_until_quiet();
    if (guest.hot_add_requests == 0)
        return fail(Errc::InvalidArgument, "set_target sent no hot-add request");
    auto const first_request = guest.first_hot_add_at;
    auto const done = Clock::now();
    long const kernel_after = kernel_metadata_kib();
    if (guest.hot_add_pages * mem::PAGE_SIZE != HOT_ADD_BYTES || map.hot_added_pages().bytes() != HOT_ADD_BYTES)
        return fail(Errc::InvalidArgument, "hot-add did not complete", guest.hot_add_pages);
    auto us = [start](Clock::time_point at) { return std::chrono::duration<double, std::micro>(at - start).count(); };
    return Run { us(first_request), us(sink.last_add_done), us(done), memslots.mapped_count(), sink.bytes_mapped,
        plan.slot_bytes, kernel_after - kernel_before, sink.real() };
}

struct OneBig {
    double memslot_us;
    long kernel_kib;
    u32 slots;
    u64 bytes_mapped;
};

// The alternative: one slot spanning the whole window, registered up front.
Result<OneBig> run_one_big()
{
    Mapping window_host = VMM_TRY(Mapping::reserve(WINDOW_BYTES));
    auto sink_owner = VMM_TRY(CountingSink::open(window_host));
    CountingSink& sink = *sink_owner;
    if (!sink.real())
        return fail(Errc::Unsupported, "no /dev/kvm");
    long const kernel_before = kernel_metadata_kib();
    auto const start = Clock::now();
    VMM_TRY(sink.add(FIRST_HOT_ADD_SLOT, WINDOW_START, window_host.bytes()));
    double const us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
    long const kernel_after = kernel_metadata_kib();
    return OneBig { us, kernel_after - kernel_before, sink.adds, sink.bytes_mapped };
}

} // namespace

int main()
{
    log::set_level(log::Level::Warn);
    int const runs = runs_from_env(5, 5);
    Report report;
    fmt::print(stderr, "hot_add: 1 TiB max memory, +4 GiB, {} runs\n", runs);
    std::vector<double> request_us, memslot_us, done_us, big_us;
    Run last {};
    std::vector<double> kernel_ours, kernel_big;
    OneBig big_last {};
    for (int run = 0; run < runs; ++run) {
        auto r = run_ours();
        if (!r) {
            fmt::print(stderr, "hot_add: {}\n", r.error().message());
            return 1;
        }
        request_us.push_back(r->request_us);
        memslot_us.push_back(r->memslot_us);
        done_us.push_back(r->done_us);
        kernel_ours.push_back(static_cast<double>(r->kernel_kib));
        last = *r;
    }
    report.samples("hot_add.request_us", request_us, "us");
    report.samples("hot_add.memslot_us", memslot_us, "us");
    report.samples("hot_add.done_us", done_us, "us");
    report.value("hot_add.slots_used", last.slots_used, "slots");
    report.value("hot_add.slot_bytes", last.slot_bytes, "B");
    report.value("hot_add.slot_bytes_mapped", last.slot_bytes_mapped, "B");
    report.value("hot_add.transport", make_transport()->name(), "");
    report.note("hot_add.request_us", "set_target() -> first DM_MEM_HOT_ADD_REQUEST written into the "
                                      "host->guest ring (the engine maps the memslot before it sends)");
    if (!last.real_kvm) {
        report.note("hot_add.memslot_us", "no /dev/kvm: memslot registration recorded, not issued to KVM");
        report.missing("hot_add.memslot_us_one_big", "no /dev/kvm");
        report.missing("hot_add.slots_one_big", "no /dev/kvm");
        report.missing("hot_add.kernel_kib_one_big", "no /dev/kvm");
    } else {
        for (int run = 0; run < runs; ++run) {
            auto big = run_one_big();
            if (!big) {
                fmt::print(stderr, "hot_add: one big slot: {}\n", big.error().message());
                return 1;
            }
            big_us.push_back(big->memslot_us);
            big_last = *big;
            kernel_big.push_back(static_cast<double>(big->kernel_kib));
        }
        report.samples("hot_add.memslot_us_one_big", big_us, "us");
        report.value("hot_add.slots_one_big", big_last.slots, "slots");
        report.value("hot_add.slot_bytes_mapped_one_big", big_last.bytes_mapped, "B");
        report.samples("hot_add.kernel_kib_ours", kernel_ours, "KiB");
        report.samples("hot_add.kernel_kib_one_big", kernel_big, "KiB");
        report.ratio("hot_add.one_big_vs_ours_memslot_time", "hot_add.memslot_us_one_big", "hot_add.memslot_us");
        report.ratio("hot_add.one_big_vs_ours_kernel_kib", "hot_add.kernel_kib_one_big", "hot_add.kernel_kib_ours");
        report.note("hot_add.kernel_kib_one_big",
            "VmallocUsed + Slab growth across the ioctl (system-wide, so noisy): KVM's per-slot metadata");
    }
    report.print();
    return 0;
}

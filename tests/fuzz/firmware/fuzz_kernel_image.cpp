// SPDX-License-Identifier: MIT
// libFuzzer target for the kernel loaders (firmware/kernel_image.hpp) and write_boot_info():
// the kernel file, command line and initrd are user input, and a bad file must be refused
// without crashing and without writing guest memory.
//
// Input layout: byte 0 picks a base image (raw input, a synthetic ELF with or without a PVH
// note, a synthetic bzImage), byte 1 a truncation; then (offset u16, value u8) patches applied
// to the base, so mutations reach deep into well-formed headers instead of dying at the magic.
// The tail after a 0xFF 0xFF 0xFF marker feeds the command line and initrd size.
//
// Invariants (checked with mincore() on a fresh lazily-allocated guest RAM per input):
//  - a refused image leaves every guest page untouched;
//  - an accepted image lies inside RAM above 1 MiB, its entry inside RAM, and every page the
//    loader touched lies inside [load_start, load_end).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "base/log.hpp"
#include "firmware/boot_info.hpp"
#include "firmware/e820.hpp"
#include "firmware/kernel_image.hpp"
#include "tests/support/fake_guest_memory.hpp"
#include "tests/unit/firmware/synthetic_images.hpp"

using namespace vmm;
using namespace vmm::firmware;

namespace {

constexpr std::uint64_t RAM_BYTES = 64 * MIB; // One low range: ram_ranges() gives [0, 64 MiB).
constexpr std::uint64_t PAGE = 4096;

std::vector<std::byte> base_image(std::uint8_t kind, FuzzedDataProvider& input)
{
    switch (kind % 4) {
    case 1:
    case 2: {
        firmware::test::SyntheticElf elf;
        elf.e_entry = 0x100'0000;
        elf.segments.push_back({ 0x100'0000, 0xFFFF'FFFF'8100'0000, std::vector<std::byte>(512, std::byte { 0xCC }), 0x2000 });
        elf.segments.push_back({ 0x120'0000, 0xFFFF'FFFF'8120'0000, std::vector<std::byte>(256, std::byte { 0x90 }), 0x1000 });
        if (kind % 4 == 1)
            elf.pvh_entry = 0x100'0100;
        return elf.build();
    }
    case 3: {
        firmware::test::SyntheticBzImage bz;
        bz.init_size = 0x40'0000;
        return bz.build();
    }
    default: {
        auto raw = input.ConsumeBytes<std::byte>(input.ConsumeIntegralInRange<std::size_t>(0, 8192));
        return raw;
    }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    static bool quiet = (log::set_level(log::Level::Off), true);
    (void)quiet;
    FuzzedDataProvider input { data, size };
    auto image = base_image(input.ConsumeIntegral<std::uint8_t>(), input);
    auto truncate = input.ConsumeIntegral<std::uint8_t>();
    if (truncate >= 0xF0 && !image.empty())
        image.resize(image.size() * (truncate - 0xF0) / 16);
    while (input.remaining_bytes() >= 3) {
        auto offset = input.ConsumeIntegral<std::uint16_t>();
        auto value = input.ConsumeIntegral<std::uint8_t>();
        if (offset == 0xFFFF && value == 0xFF)
            break;
        if (offset < image.size())
            image[offset] = std::byte { value };
    }

    // One RAM for every input (lazily backed: resident only where written), emptied after each
    // (FakeGuestMemory::reset drops a range this large with MADV_DONTNEED): a fresh 64 MiB
    // mapping per input cost more than the loader under test.
    static vmm::test::FakeGuestMemory ram = [] {
        auto ranges = ram_ranges(RAM_BYTES);
        if (ranges.size() != 1 || ranges[0].start.raw() != 0 || ranges[0].size_bytes != RAM_BYTES)
            __builtin_trap();
        return vmm::test::FakeGuestMemory { { 0, RAM_BYTES } };
    }();
    struct Empty { // Whatever the input did, the next one starts with untouched RAM.
        ~Empty() { ram.reset(); }
    } empty_after;

    auto kernel = load_kernel(ram.memory(), image);
    auto const resident = ram.resident_pages(); // mincore: the pages anything wrote.
    if (!kernel) {
        if (!resident.empty())
            __builtin_trap(); // A refused image wrote guest memory.
        return 0;
    }
    if (kernel->load_start < MIB || kernel->load_end > RAM_BYTES || kernel->load_start >= kernel->load_end)
        __builtin_trap();
    if (kernel->entry >= RAM_BYTES)
        __builtin_trap();
    for (std::uint64_t page : resident)
        if (page * PAGE + PAGE <= kernel->load_start || page * PAGE >= kernel->load_end)
            __builtin_trap(); // The loader wrote outside the range it reports.

    // Boot info with a fuzzed command line (may hold NULs, may be too long) and initrd size.
    auto cmdline = input.ConsumeRandomLengthString(4096);
    std::vector<std::byte> initrd(input.ConsumeIntegralInRange<std::size_t>(0, 64 * 1024), std::byte { 0x5A });
    SpanSource initrd_source { initrd };
    BootRequest request { cmdline, &initrd_source, RAM_BYTES, 0 };
    auto state = write_boot_info(ram.memory(), *kernel, request);
    if (state && !initrd.empty()) {
        auto placement = place_initrd(*kernel, RAM_BYTES, initrd.size());
        if (!placement || placement->gpa < kernel->load_end || placement->gpa + placement->size_bytes > RAM_BYTES)
            __builtin_trap(); // The initrd overlaps the kernel or leaves RAM.
    }
    return 0;
}

// SPDX-License-Identifier: MIT
// libFuzzer target for the PCI core (devices/pci/): a PciRoot with its host bridge, a function
// with a 64-bit BAR holding 70 MSI-X vectors, a 32-bit and an I/O BAR (tests/unit/pci/pci_fakes.hpp)
// and a second, MSI-X-less function. The input scripts config reads and writes of every size at
// any offset through ECAM and 0xCF8/0xCFC (present and absent functions), BAR sizing and
// relocation, command-register decode changes, MSI-X control bits, table writes, vector raises,
// and MMIO/port accesses inside and around the BARs. Invariants after every step:
//   - every implemented BAR reads back its fixed flag bits and a base aligned to its size (the
//     sizing protocol of PCI 3.0 §6.2.5.1); unimplemented BARs read 0;
//   - identity, header type, capability pointer and the MSI-X capability's table/PBA registers
//     never change; absent functions read all ones (PCI 3.0 §6.1), the unimplemented registers
//     (BIST, CardBus CIS, expansion ROM, 0x38) and extended config space read 0;
//   - a write to one function never changes another function's config space;
//   - the device sees BAR accesses only inside its BAR and never in the MSI-X table or PBA;
//   - every MSI delivered is the address/data of an unmasked vector while MSI-X is enabled and
//     not function-masked; no unmasked vector stays pending while delivery is possible.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "base/log.hpp"
#include "tests/support/fuzz_script.hpp"
#include "tests/unit/pci/pci_fakes.hpp"

using namespace vmm;
using namespace vmm::pci;
using namespace vmm::pci::testing;

namespace {

// A second function: a 32-bit 256-byte memory BAR at index 1 and a 4-byte I/O BAR at 5, no MSI-X.
class SmallFunction final : public PciFunction {
public:
    std::string_view name() const override { return "small"; }
    PciIdentity identity() const override { return { 0x1AF4, 0x1000, 1, 0x02, 0x00, 0x00, 0x1AF4, 0x0001 }; }
    BarLayouts bars() const override
    {
        BarLayouts bars {};
        bars[1] = BarLayout { BarKind::Memory32, 256, false };
        bars[5] = BarLayout { BarKind::Io, 4, false };
        return bars;
    }
    void bar_read(u8 bar, u64 offset, std::span<std::byte> data) override
    {
        FUZZ_CHECK((bar == 1 && offset + data.size() <= 256) || (bar == 5 && offset + data.size() <= 4));
        std::memset(data.data(), 0xA5, data.size());
    }
    void bar_write(u8 bar, u64 offset, std::span<std::byte const> data) override
    {
        FUZZ_CHECK((bar == 1 && offset + data.size() <= 256) || (bar == 5 && offset + data.size() <= 4));
    }
};

constexpr std::array<std::size_t, 4> SIZES { 1, 2, 4, 8 };
constexpr u8 ABSENT_DEVICE = 3;

struct World {
    RecordingMsi msi;
    RecordingIoEvents ioevents;
    PciRoot root { test_windows(), msi, &ioevents };
    FakeFunction fake;
    SmallFunction small;
    u8 fake_device = 0;
    u8 small_device = 0;
    std::array<std::array<u32, 64>, 3> config {}; // First 256 bytes of devices 0..2, as last seen.
    std::array<std::array<u32, 5>, 3> fixed {};   // Identity dwords that never change.
    std::size_t messages_checked = 0;

    World()
    {
        fake_device = root.add(fake).value();
        small_device = root.add(small).value();
        FUZZ_CHECK(fake_device == 1 && small_device == 2);
        for (u8 d = 0; d < 3; ++d) {
            snapshot(d);
            fixed[d] = { ecam_read(root, d, VENDOR_ID), ecam_read(root, d, REVISION_ID), ecam_read(root, d, SUBSYSTEM_VENDOR_ID),
                ecam_read(root, d, CAPABILITIES_POINTER), ecam_read(root, d, 0x0C) & 0x00FF'0000u };
        }
    }
    void snapshot(u8 device)
    {
        for (u16 i = 0; i < 64; ++i)
            config[device][i] = ecam_read(root, device, static_cast<u16>(4 * i));
    }
    // Config space of every device but `written` is what it was.
    void check_others(u8 written)
    {
        for (u8 d = 0; d < 3; ++d) {
            if (d == written)
                continue;
            for (u16 i = 0; i < 64; ++i)
                FUZZ_CHECK(ecam_read(root, d, static_cast<u16>(4 * i)) == config[d][i]);
        }
        if (written < 3)
            snapshot(written);
    }
    u16 msix_control() { return static_cast<u16>(ecam_read(root, fake_device, FIRST_CAPABILITY + 2, 2)); }
    void check()
    {
        for (u8 d = 0; d < 3; ++d) {
            std::array<u32, 5> now { ecam_read(root, d, VENDOR_ID), ecam_read(root, d, REVISION_ID),
                ecam_read(root, d, SUBSYSTEM_VENDOR_ID), ecam_read(root, d, CAPABILITIES_POINTER),
                ecam_read(root, d, 0x0C) & 0x00FF'0000u };
            FUZZ_CHECK(now == fixed[d]);
            if (d == 0)
                continue;
            for (u16 reg : { u16 { 0x28 }, EXPANSION_ROM, u16 { 0x38 }, u16 { 0x100 }, u16 { 0xFFC } })
                FUZZ_CHECK(ecam_read(root, d, reg) == 0);
            FUZZ_CHECK((ecam_read(root, d, 0x0C) >> 24) == 0); // BIST
        }
        // The MSI-X capability's id and table/PBA registers (BIR 0, offsets 0x2000 and 0x3000).
        FUZZ_CHECK((ecam_read(root, fake_device, FIRST_CAPABILITY) & 0x07FF'00FFu)
            == (u32 { CAP_ID_MSIX } | (u32 { FakeFunction::VECTORS - 1u } << 16)));
        FUZZ_CHECK(ecam_read(root, fake_device, FIRST_CAPABILITY + 4) == 0x2000u);
        FUZZ_CHECK(ecam_read(root, fake_device, FIRST_CAPABILITY + 8) == 0x3000u);
        for (u8 d : { fake_device, small_device }) {
            auto const& layouts = d == fake_device ? fake.bars() : small.bars();
            for (u8 i = 0; i < BAR_COUNT; ++i) {
                u32 const reg = ecam_read(root, d, static_cast<u16>(BAR0 + 4 * i));
                if (!layouts[i]) {
                    bool const upper = i > 0 && layouts[i - 1] && layouts[i - 1]->kind == BarKind::Memory64;
                    if (!upper)
                        FUZZ_CHECK(reg == 0);
                    continue;
                }
                auto const& bar = *layouts[i];
                u32 const flags = bar.kind == BarKind::Io ? BAR_IO_SPACE
                    : (bar.kind == BarKind::Memory64 ? BAR_MEMORY_64 : 0) | (bar.prefetchable ? BAR_PREFETCHABLE : 0);
                u32 const flag_mask = bar.kind == BarKind::Io ? 0x3 : 0xF;
                FUZZ_CHECK((reg & flag_mask) == flags);
                u64 base = reg & ~u64 { flag_mask };
                if (bar.kind == BarKind::Memory64)
                    base |= u64 { ecam_read(root, d, static_cast<u16>(BAR0 + 4 * i + 4)) } << 32;
                FUZZ_CHECK(base % bar.size_bytes == 0);
            }
        }
        // The device never sees its MSI-X table or PBA, nor anything outside a BAR.
        for (auto const& access : fake.reads)
            check_access(access);
        for (auto const& access : fake.writes)
            check_access(access);
        fake.reads.clear();
        fake.writes.clear();
        // Delivered messages belong to unmasked vectors while delivery is allowed.
        auto* vectors = fake.interrupts;
        u16 const control = msix_control();
        bool const deliverable = (control & MSIX_CONTROL_ENABLE) && !(control & MSIX_CONTROL_FUNCTION_MASK);
        for (; messages_checked < msi.messages.size(); ++messages_checked) {
            FUZZ_CHECK(deliverable);
            auto const& message = msi.messages[messages_checked];
            bool found = false;
            for (u16 v = 0; v < FakeFunction::VECTORS && !found; ++v) {
                std::array<u32, 4> entry {};
                for (u64 field = 0; field < 4; ++field) // Only 4- and 8-byte accesses are defined.
                    vectors->table_read(v * MSIX_ENTRY_BYTES + 4 * field, std::as_writable_bytes(std::span { &entry[field], 1 }));
                found = !(entry[3] & MSIX_VECTOR_MASKED) && entry[2] == message.data
                    && (u64 { entry[1] } << 32 | entry[0]) == message.address;
            }
            FUZZ_CHECK(found);
        }
        if (deliverable) {
            for (u16 v = 0; v < FakeFunction::VECTORS; ++v) {
                u32 vector_control = 0;
                vectors->table_read(v * MSIX_ENTRY_BYTES + MSIX_ENTRY_VECTOR_CONTROL, std::as_writable_bytes(std::span { &vector_control, 1 }));
                if (!(vector_control & MSIX_VECTOR_MASKED))
                    FUZZ_CHECK(!vectors->pending(v));
            }
        }
    }
    static void check_access(FakeFunction::Access const& access)
    {
        u64 const size = access.bar == 0 ? 16 * 1024 : access.bar == 2 ? 4096 : 32;
        FUZZ_CHECK(access.bar == 0 || access.bar == 2 || access.bar == 3);
        FUZZ_CHECK(access.offset + access.size <= size);
        if (access.bar == 0) {
            FUZZ_CHECK(access.offset + access.size <= 0x2000 || access.offset >= 0x2000 + FakeFunction::VECTORS * MSIX_ENTRY_BYTES);
            FUZZ_CHECK(access.offset + access.size <= 0x3000 || access.offset >= 0x3000 + 16);
        }
    }
    // Where BAR `i` of `device` decodes now (or a guess in its window when it does not).
    u64 bar_address(u8 device, u8 bar)
    {
        u32 const reg = ecam_read(root, device, static_cast<u16>(BAR0 + 4 * bar));
        u64 base = reg & ~u64 { 0xF };
        if (device == fake_device && bar == 0)
            base |= u64 { ecam_read(root, device, BAR0 + 4) } << 32;
        return base;
    }
};

u64 value_of(vmm::test::FuzzScript& in)
{
    u64 value = 0;
    for (int i = 0; i < 8; ++i)
        value |= u64 { in.byte() } << (8 * i);
    return value;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    static bool const quiet = (log::set_level(log::Level::Off), true);
    (void)quiet;
    vmm::test::FuzzScript in { data, size };
    World w;
    std::array<std::byte, 8> buffer {};
    for (int steps = 0; steps < 64 && !in.done(); ++steps) {
        u8 written = 0xFF; // Device a config write may have changed.
        switch (in.byte() % 10) {
        case 0:
        case 1: { // ECAM read or write: any device (3 absent) and function, offset and size.
            bool const write = in.byte() & 1;
            u8 const device = in.byte() % 4;
            u8 const function = in.byte() % 8 == 0 ? 0 : in.byte() % 8;
            std::size_t const width = SIZES[in.byte() % 4];
            u16 const reg = static_cast<u16>(in.u16() % (CONFIG_SPACE_BYTES - width + 1));
            u64 const offset = (u64 { device } << 15) | (u64 { function } << 12) | reg;
            if (write) {
                u64 const value = value_of(in);
                std::memcpy(buffer.data(), &value, 8);
                w.root.ecam_write(offset, std::span { buffer }.first(width));
                written = function == 0 ? device : 0xFF;
            } else {
                w.root.ecam_read(offset, std::span { buffer }.first(width));
                if (device == ABSENT_DEVICE || function != 0)
                    for (std::size_t i = 0; i < width; ++i)
                        FUZZ_CHECK(buffer[i] == std::byte { 0xFF });
            }
            break;
        }
        case 2: { // 0xCF8/0xCFC: latch anything, then a data-port access of any size.
            u32 address = static_cast<u32>(value_of(in));
            if (in.byte() & 1)
                address = 0x8000'0000u | (u32 { in.byte() % 4u } << 11) | (in.byte() & 0xFCu);
            w.root.config_port_write(0, std::as_bytes(std::span { &address, 1 }));
            std::size_t const width = SIZES[in.byte() % 3];
            u64 const port = 4 + in.byte() % (5 - width);
            if (in.byte() & 1) {
                u64 const value = value_of(in);
                std::memcpy(buffer.data(), &value, 8);
                w.root.config_port_write(port, std::span { buffer }.first(width));
                written = (address >> 11) & 0x1F;
            } else {
                w.root.config_port_read(port, std::span { buffer }.first(width));
            }
            break;
        }
        case 3: { // BAR sizing, then relocation to anything (aligned or not).
            u8 const device = in.byte() & 1 ? w.fake_device : w.small_device;
            u16 const reg = static_cast<u16>(BAR0 + 4 * (in.byte() % BAR_COUNT));
            u32 const saved = ecam_read(w.root, device, reg);
            ecam_write(w.root, device, reg, 0xFFFF'FFFFu);
            u32 const mask = ecam_read(w.root, device, reg);
            FUZZ_CHECK(mask == 0 || (mask & 0xFFFF'FFF0u) != 0 || (mask & 1));
            ecam_write(w.root, device, reg, in.byte() & 1 ? saved : static_cast<u32>(value_of(in)));
            written = device;
            break;
        }
        case 4: { // The command register (decode, bus master) and the MSI-X control word.
            u8 const device = in.byte() & 1 ? w.fake_device : w.small_device;
            if (in.byte() & 1)
                ecam_write(w.root, device, COMMAND, in.u16(), 2);
            else
                ecam_write(w.root, device, FIRST_CAPABILITY + 2, in.u16(), 2);
            written = device;
            break;
        }
        case 5: { // MMIO or port access in or around a BAR, any width.
            u8 const device = in.byte() & 1 ? w.fake_device : w.small_device;
            u8 const bar = in.byte() % BAR_COUNT;
            u64 const address = w.bar_address(device, bar) + in.u16() % 0x4100;
            std::size_t const width = SIZES[in.byte() % 4];
            bool const io = in.byte() & 1;
            if (in.byte() & 1) {
                u64 const value = value_of(in);
                std::memcpy(buffer.data(), &value, 8);
                io ? (void)w.root.io_write(address & 0xFFFF, std::span { buffer }.first(width))
                   : (void)w.root.mmio_write(address, std::span { buffer }.first(width));
            } else {
                io ? (void)w.root.io_read(address & 0xFFFF, std::span { buffer }.first(width))
                   : (void)w.root.mmio_read(address, std::span { buffer }.first(width));
            }
            break;
        }
        case 6: { // An MSI-X table entry field, through the BAR when it decodes.
            u16 const vector = in.byte() % FakeFunction::VECTORS;
            u64 const field = 4 * (in.byte() % 4);
            u32 const value = in.byte() & 1 ? static_cast<u32>(value_of(in)) : in.byte() & 1; // Often a mask bit flip.
            (void)mmio_write(w.root, w.bar_address(w.fake_device, 0) + 0x2000 + vector * MSIX_ENTRY_BYTES + field, value);
            break;
        }
        case 7: // The device raises a vector (some out of range).
            w.fake.interrupts->raise(in.byte() % (FakeFunction::VECTORS + 4));
            break;
        case 8: { // The PBA and table read back through the BAR.
            u64 const offset = 0x2000 + in.u16() % 0x1010;
            (void)mmio_read<std::uint64_t>(w.root, w.bar_address(w.fake_device, 0) + (offset & ~u64 { 3 }));
            break;
        }
        default: { // Anywhere in the MMIO windows or port space.
            u64 address = in.byte() & 1 ? 0xC000'0000u + static_cast<u32>(value_of(in) % 0x2000'0000u) : value_of(in);
            std::size_t const width = SIZES[in.byte() % 4];
            (void)w.root.mmio_read(address, std::span { buffer }.first(width));
            (void)w.root.io_read(address & 0xFFFF, std::span { buffer }.first(width));
            break;
        }
        }
        w.check_others(written);
        w.check();
    }
    return 0;
}

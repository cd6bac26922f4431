// SPDX-License-Identifier: MIT
// fuzz_pio_bus: guest IN/OUT instructions on the port-I/O bus as vmm/machine.cpp wires it (16550
// UART on COM1, ACPI sleep control/status and reset ports, i8042 reset, POST code port), plus
// host bytes arriving for the UART. Sizes 1, 2 and 4, ports near each device and anywhere.
//
// Invariants after every access, against a small model of what the guest may rely on:
//  - an unclaimed read (no device, or an access straddling a range) returns all-ones;
//  - UART: LCR, MCR, SCR and the divisor latch read back what was written; the console receives
//    exactly the THR bytes written outside DLAB and loopback, in order; the receive FIFO (host
//    bytes and loopback bytes, 1 or 16 deep, overflow dropped) reads back in order; LSR.DR says
//    whether it holds data; the interrupt line only changes level, starting from low, and IIR
//    bit 0 agrees with it;
//  - a power event happens exactly when the guest writes S5|SLP_EN to the sleep control port,
//    ACPI_RESET_VALUE to the reset register or 0xFE to port 0x64, one byte wide.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "base/log.hpp"
#include "firmware/layout.hpp"
#include "vmm/bus.hpp"
#include "vmm/devices/acpi_pm.hpp"
#include "vmm/devices/uart16550.hpp"

namespace {

using namespace vmm;
using namespace vmm::devices;

constexpr u16 I8042_COMMAND_PORT = 0x64; // As vmm/machine.cpp attaches them.
constexpr u16 POST_CODE_PORT = 0x80;

[[noreturn]] void broken(char const* what)
{
    std::fprintf(stderr, "fuzz_pio_bus invariant broken: %s\n", what);
    __builtin_trap();
}

struct Console final : ByteSink {
    std::vector<std::uint8_t> bytes;
    void write(std::span<std::byte const> data) override
    {
        for (auto byte : data)
            bytes.push_back(std::to_integer<std::uint8_t>(byte));
    }
};

// What the guest can rely on from the UART registers (PC16550D data sheet).
struct UartModel {
    std::uint8_t lcr = 0x03, mcr = 0x08, scr = 0, dll = 0x0C, dlm = 0;
    bool fifo = false;
    std::deque<std::uint8_t> rx;
    std::vector<std::uint8_t> sent;
    void receive(std::uint8_t byte)
    {
        if (rx.size() < (fifo ? 16u : 1u))
            rx.push_back(byte);
    }
};

struct Rig {
    Console console;
    bool irq_level = false;
    std::uint64_t irq_changes = 0;
    std::uint64_t power_events = 0;
    Uart16550 uart { console, [this](bool level) {
                        if (level == irq_level)
                            broken("UART interrupt callback without a level change");
                        irq_level = level;
                        ++irq_changes;
                    } };
    AcpiSleepControl sleep_control { [this](PowerEvent event) {
                                        if (event != PowerEvent::Poweroff)
                                            broken("sleep control raised a reset");
                                        ++power_events;
                                    },
        firmware::ACPI_S5_SLP_TYP };
    AcpiSleepStatus sleep_status;
    AcpiResetRegister reset_register { [this](PowerEvent event) {
                                          if (event != PowerEvent::Reset)
                                              broken("reset register raised a poweroff");
                                          ++power_events;
                                      },
        firmware::ACPI_RESET_VALUE };
    I8042ResetPort i8042 { [this](PowerEvent event) {
        if (event != PowerEvent::Reset)
            broken("i8042 raised a poweroff");
        ++power_events;
    } };
    PostCodePort post_code;
    Bus bus { "pio" };
    UartModel model;

    Rig()
    {
        bool ok = bus.attach({ firmware::COM1_PORT, firmware::COM1_PORT_COUNT }, uart).has_value()
            && bus.attach({ firmware::ACPI_SLEEP_CONTROL_PORT, 1 }, sleep_control).has_value()
            && bus.attach({ firmware::ACPI_SLEEP_STATUS_PORT, 1 }, sleep_status).has_value()
            && bus.attach({ firmware::ACPI_RESET_PORT, 1 }, reset_register).has_value()
            && bus.attach({ I8042_COMMAND_PORT, 1 }, i8042).has_value() && bus.attach({ POST_CODE_PORT, 1 }, post_code).has_value();
        if (!ok)
            broken("attach failed");
        bus.freeze();
    }

    static bool claimed(u64 port, std::size_t size, u64 start, u64 count) { return port >= start && port + size <= start + count; }

    // Expected power events of a write.
    static std::uint64_t power_events_of(u64 port, std::span<std::byte const> data)
    {
        if (data.size() != 1)
            return 0;
        auto value = std::to_integer<std::uint8_t>(data[0]);
        if (port == firmware::ACPI_SLEEP_CONTROL_PORT)
            return (value & firmware::ACPI_SLEEP_ENABLE) && ((value >> firmware::ACPI_SLEEP_TYPE_SHIFT) & 7) == firmware::ACPI_S5_SLP_TYP;
        if (port == firmware::ACPI_RESET_PORT)
            return value == firmware::ACPI_RESET_VALUE;
        if (port == I8042_COMMAND_PORT)
            return value == 0xFE;
        return 0;
    }

    void uart_write(u64 offset, std::uint8_t value)
    {
        bool const dlab = model.lcr & 0x80;
        switch (offset) {
        case 0:
            if (dlab)
                model.dll = value;
            else if (model.mcr & 0x10)
                model.receive(value);
            else
                model.sent.push_back(value);
            break;
        case 1:
            if (dlab)
                model.dlm = value;
            break;
        case 2:
            model.fifo = value & 1;
            if (value & 2)
                model.rx.clear();
            break;
        case 3: model.lcr = value; break;
        case 4: model.mcr = value & 0x1F; break;
        case 7: model.scr = value; break;
        default: break;
        }
    }

    // `level_before`: the line before this register was read (known for the first byte of an access).
    void uart_check_read(u64 offset, std::uint8_t value, std::optional<bool> level_before)
    {
        bool const dlab = model.lcr & 0x80;
        switch (offset) {
        case 0:
            if (dlab) {
                if (value != model.dll)
                    broken("DLL read differs from the write");
            } else {
                std::uint8_t expected = 0;
                if (!model.rx.empty()) {
                    expected = model.rx.front();
                    model.rx.pop_front();
                }
                if (value != expected)
                    broken("RBR returned a byte out of order");
            }
            break;
        case 1:
            if (dlab && value != model.dlm)
                broken("DLM read differs from the write");
            break;
        case 2:
            if (level_before && ((value & 1) == 0) != *level_before)
                broken("IIR bit 0 disagrees with the interrupt line");
            if (((value & 0xC0) == 0xC0) != model.fifo)
                broken("IIR FIFO bits disagree with FCR");
            break;
        case 3:
            if (value != model.lcr)
                broken("LCR read differs from the write");
            break;
        case 4:
            if (value != model.mcr)
                broken("MCR read differs from the write");
            break;
        case 5:
            if (((value & 1) != 0) != !model.rx.empty())
                broken("LSR.DR disagrees with the receive FIFO");
            break;
        case 7:
            if (value != model.scr)
                broken("SCR read differs from the write");
            break;
        default: break;
        }
    }

    void access(FuzzedDataProvider& input)
    {
        static constexpr u64 BASES[] = { firmware::COM1_PORT, firmware::ACPI_SLEEP_CONTROL_PORT, I8042_COMMAND_PORT, POST_CODE_PORT };
        u64 port = input.ConsumeBool() ? BASES[input.ConsumeIntegralInRange<int>(0, 3)] + input.ConsumeIntegralInRange<int>(-2, 9)
                                       : input.ConsumeIntegral<std::uint16_t>();
        port &= 0xFFFF;
        static constexpr std::size_t SIZES[] = { 1, 1, 1, 2, 4 };
        std::size_t const size = SIZES[input.ConsumeIntegralInRange<int>(0, 4)];
        bool const uart = claimed(port, size, firmware::COM1_PORT, firmware::COM1_PORT_COUNT);
        bool const any = uart || claimed(port, size, firmware::ACPI_SLEEP_CONTROL_PORT, 1) || claimed(port, size, firmware::ACPI_SLEEP_STATUS_PORT, 1)
            || claimed(port, size, firmware::ACPI_RESET_PORT, 1) || claimed(port, size, I8042_COMMAND_PORT, 1)
            || claimed(port, size, POST_CODE_PORT, 1);
        std::byte data[4];
        if (input.ConsumeBool()) { // OUT
            for (std::size_t i = 0; i < size; ++i)
                data[i] = std::byte { input.ConsumeIntegral<std::uint8_t>() };
            auto const events = power_events + power_events_of(port, { data, size }) * any;
            auto status = bus.write(port, { data, size });
            if ((status == IoStatus::Unclaimed) == any)
                broken("write claimed by the wrong device (or none)");
            if (power_events != events)
                broken("power event without its write, or a write without its event");
            if (uart)
                for (std::size_t i = 0; i < size; ++i)
                    uart_write(port - firmware::COM1_PORT + i, std::to_integer<std::uint8_t>(data[i]));
        } else { // IN
            std::ranges::fill(data, std::byte { 0x5A });
            std::optional<bool> level = irq_level;
            auto status = bus.read(port, { data, size });
            if ((status == IoStatus::Unclaimed) == any)
                broken("read claimed by the wrong device (or none)");
            if (!any)
                for (std::size_t i = 0; i < size; ++i)
                    if (data[i] != std::byte { 0xFF })
                        broken("unclaimed read is not all-ones");
            if (uart) {
                for (std::size_t i = 0; i < size; ++i) {
                    uart_check_read(port - firmware::COM1_PORT + i, std::to_integer<std::uint8_t>(data[i]), level);
                    level.reset(); // The line between the bytes of a wide read is not observable.
                }
            }
        }
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    static bool const quiet = (log::set_level(log::Level::Off), true);
    (void)quiet;
    FuzzedDataProvider input { data, size };
    Rig rig;
    for (int step = 0; step < 2048 && input.remaining_bytes() > 0; ++step) {
        if (input.ConsumeIntegralInRange<int>(0, 15) == 0) { // Host bytes for the guest.
            auto bytes = input.ConsumeBytes<std::uint8_t>(input.ConsumeIntegralInRange<std::size_t>(0, 20));
            rig.uart.receive(std::as_bytes(std::span { bytes }));
            for (auto byte : bytes)
                rig.model.receive(byte);
        } else {
            rig.access(input);
        }
        if (rig.console.bytes != rig.model.sent)
            broken("console bytes differ from the THR writes");
    }
    return 0;
}

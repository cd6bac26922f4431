// SPDX-License-Identifier: MIT
// 16550A UART (COM1), output only plus an injectable receive FIFO.
//
// Spec:     TI PC16550D data sheet; Linux drivers/tty/serial/8250/8250_port.c (what the guest
//           driver relies on: autoconfig, the THRE test in serial8250_do_startup, IIR looping)
// Done:     all registers, divisor latch, FIFO flag, loopback, THRE/RDI/RLSI/MSI interrupts
// Missing:  baud-rate timing (bytes leave at once), host stdin input, modem-line changes
#pragma once

#include <deque>
#include <functional>
#include <span>

#include "base/fd.hpp"
#include "vmm/io_device.hpp"

namespace vmm::devices {

// Where transmitted bytes go.
class ByteSink {
public:
    virtual ~ByteSink() = default;
    virtual void write(std::span<std::byte const>) = 0;
};

// Writes to a host fd (stdout or a file); not owned when `owned` is empty.
class FdSink final : public ByteSink {
public:
    explicit FdSink(int raw_fd, Fd owned = {})
        : m_raw(raw_fd)
        , m_owned(std::move(owned))
    {
    }
    void write(std::span<std::byte const>) override;

private:
    int m_raw;
    Fd m_owned;
};

class Uart16550 final : public IoDevice {
public:
    static constexpr u64 REGISTER_COUNT = 8;
    // Called with the interrupt output level whenever it changes. The machine forwards it to
    // an IOAPIC pin (edge-triggered ISA IRQ: the 0 -> 1 transition is the interrupt).
    using IrqCallback = std::function<void(bool level)>;

    Uart16550(ByteSink& sink, IrqCallback irq);

    std::string_view name() const override { return "uart16550"; }
    IoStatus read(u64 offset, std::span<std::byte> data) override;
    IoStatus write(u64 offset, std::span<std::byte const> data) override;

    // Host -> guest bytes (into the 16-byte receive FIFO; overflow sets LSR.OE).
    void receive(std::span<std::byte const> bytes);

private:
    u8 read_register(u64 offset);
    void write_register(u64 offset, u8 value);
    void transmit(u8 value);
    u8 modem_status() const;
    void update_irq();

    ByteSink& m_sink;
    IrqCallback m_irq;
    u8 m_ier { 0 };
    u8 m_iir { 0x01 }; // Bit 0 set = no interrupt pending.
    u8 m_lcr { 0x03 }; // 8N1, what firmware leaves behind.
    u8 m_mcr { 0x08 }; // OUT2.
    u8 m_lsr;
    u8 m_msr_deltas { 0 };
    u8 m_scr { 0 };
    u8 m_dll { 0x0C }; // 9600 baud (115200 / 12).
    u8 m_dlm { 0 };
    bool m_fifo_enabled { false };
    bool m_thr_interrupt { false }; // THRE interrupt pending until IIR is read or THR written.
    bool m_irq_level { false };
    std::deque<u8> m_rx;
};

} // namespace vmm::devices

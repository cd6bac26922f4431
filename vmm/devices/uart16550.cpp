// SPDX-License-Identifier: MIT
// Register numbers and bits: PC16550D data sheet, Linux include/uapi/linux/serial_reg.h.
#include "vmm/devices/uart16550.hpp"

#include <unistd.h>

#include <cerrno>

namespace vmm::devices {

namespace {
// Register offsets (serial_reg.h); DLAB = LCR bit 7 switches 0/1 to the divisor latch.
constexpr u64 RBR_THR_DLL = 0;
constexpr u64 IER_DLM = 1;
constexpr u64 IIR_FCR = 2;
constexpr u64 LCR = 3;
constexpr u64 MCR = 4;
constexpr u64 LSR = 5;
constexpr u64 MSR = 6;
constexpr u64 SCR = 7;

constexpr u8 LCR_DLAB = 0x80;
constexpr u8 IER_RDI = 0x01;  // Receive data available.
constexpr u8 IER_THRI = 0x02; // Transmitter holding register empty.
constexpr u8 IER_RLSI = 0x04; // Receiver line status.
constexpr u8 IER_MSI = 0x08;  // Modem status.
constexpr u8 IIR_NO_INT = 0x01;
constexpr u8 IIR_MSI = 0x00;
constexpr u8 IIR_THRI = 0x02;
constexpr u8 IIR_RDI = 0x04;
constexpr u8 IIR_RLSI = 0x06;
constexpr u8 IIR_FIFO_ENABLED = 0xC0; // Both bits set identifies a 16550A (8250_port.c autoconfig).
constexpr u8 FCR_ENABLE_FIFO = 0x01;
constexpr u8 FCR_CLEAR_RCVR = 0x02;
constexpr u8 LSR_DR = 0x01;
constexpr u8 LSR_OE = 0x02;
constexpr u8 LSR_ERRORS = 0x1E; // OE | PE | FE | BI.
constexpr u8 LSR_THRE = 0x20;
constexpr u8 LSR_TEMT = 0x40;
constexpr u8 MCR_DTR = 0x01;
constexpr u8 MCR_RTS = 0x02;
constexpr u8 MCR_OUT1 = 0x04;
constexpr u8 MCR_OUT2 = 0x08;
constexpr u8 MCR_LOOP = 0x10;
constexpr u8 MSR_CTS = 0x10;
constexpr u8 MSR_DSR = 0x20;
constexpr u8 MSR_RI = 0x40;
constexpr u8 MSR_DCD = 0x80;
constexpr std::size_t FIFO_BYTES = 16;
} // namespace

void FdSink::write(std::span<std::byte const> bytes)
{
    while (!bytes.empty()) {
        ssize_t written = ::write(m_raw, bytes.data(), bytes.size());
        if (written < 0 && errno == EINTR)
            continue;
        if (written <= 0)
            return; // A closed or full console must not stop the guest: the bytes are dropped.
        bytes = bytes.subspan(static_cast<std::size_t>(written));
    }
}

Uart16550::Uart16550(ByteSink& sink, IrqCallback irq)
    : m_sink(sink)
    , m_irq(std::move(irq))
    , m_lsr(LSR_THRE | LSR_TEMT)
{
}

IoStatus Uart16550::read(u64 offset, std::span<std::byte> data)
{
    // Wider accesses read consecutive registers (8250 ports are byte-wide, Linux uses inb).
    for (std::size_t i = 0; i < data.size(); ++i)
        data[i] = std::byte { offset + i < REGISTER_COUNT ? read_register(offset + i) : u8 { 0xFF } };
    return IoStatus::Ok;
}

IoStatus Uart16550::write(u64 offset, std::span<std::byte const> data)
{
    for (std::size_t i = 0; i < data.size() && offset + i < REGISTER_COUNT; ++i)
        write_register(offset + i, std::to_integer<u8>(data[i]));
    return IoStatus::Ok;
}

void Uart16550::receive(std::span<std::byte const> bytes)
{
    for (auto byte : bytes) {
        if (m_rx.size() >= (m_fifo_enabled ? FIFO_BYTES : 1)) {
            m_lsr |= LSR_OE;
            continue;
        }
        m_rx.push_back(std::to_integer<u8>(byte));
    }
    if (!m_rx.empty())
        m_lsr |= LSR_DR;
    update_irq();
}

u8 Uart16550::modem_status() const
{
    if (m_mcr & MCR_LOOP) {
        // Loopback wires the modem outputs to the inputs (data sheet 8.6): the 8250 probe
        // checks this (8250_port.c autoconfig, "UART_MCR_LOOP").
        u8 status = 0;
        status |= (m_mcr & MCR_RTS) ? MSR_CTS : 0;
        status |= (m_mcr & MCR_DTR) ? MSR_DSR : 0;
        status |= (m_mcr & MCR_OUT1) ? MSR_RI : 0;
        status |= (m_mcr & MCR_OUT2) ? MSR_DCD : 0;
        return status | m_msr_deltas;
    }
    // A terminal is always attached: carrier, DSR and CTS up.
    return MSR_DCD | MSR_DSR | MSR_CTS | m_msr_deltas;
}

u8 Uart16550::read_register(u64 offset)
{
    switch (offset) {
    case RBR_THR_DLL: {
        if (m_lcr & LCR_DLAB)
            return m_dll;
        u8 value = 0;
        if (!m_rx.empty()) {
            value = m_rx.front();
            m_rx.pop_front();
        }
        if (m_rx.empty())
            m_lsr &= static_cast<u8>(~LSR_DR);
        update_irq();
        return value;
    }
    case IER_DLM: return (m_lcr & LCR_DLAB) ? m_dlm : m_ier;
    case IIR_FCR: {
        u8 value = m_iir | (m_fifo_enabled ? IIR_FIFO_ENABLED : 0);
        // Reading IIR while it reports THRI acknowledges that interrupt (data sheet table 4).
        if ((m_iir & 0x0F) == IIR_THRI) {
            m_thr_interrupt = false;
            update_irq();
        }
        return value;
    }
    case LCR: return m_lcr;
    case MCR: return m_mcr;
    case LSR: {
        u8 value = m_lsr;
        m_lsr &= static_cast<u8>(~LSR_ERRORS); // Error bits clear on read.
        update_irq();
        return value;
    }
    case MSR: {
        u8 value = modem_status();
        m_msr_deltas = 0;
        update_irq();
        return value;
    }
    case SCR: return m_scr;
    default: return 0xFF;
    }
}

void Uart16550::write_register(u64 offset, u8 value)
{
    switch (offset) {
    case RBR_THR_DLL:
        if (m_lcr & LCR_DLAB)
            m_dll = value;
        else
            transmit(value);
        return;
    case IER_DLM:
        if (m_lcr & LCR_DLAB) {
            m_dlm = value;
            return;
        }
        {
            u8 const previous = m_ier;
            m_ier = value & 0x0F;
            // Enabling THRI with an empty THR raises THRI at once: Linux's THRE test
            // (serial8250_do_startup) and its start_tx depend on it.
            if ((m_ier & IER_THRI) && !(previous & IER_THRI) && (m_lsr & LSR_THRE))
                m_thr_interrupt = true;
            update_irq();
        }
        return;
    case IIR_FCR:
        m_fifo_enabled = value & FCR_ENABLE_FIFO;
        if (value & FCR_CLEAR_RCVR) {
            m_rx.clear();
            m_lsr &= static_cast<u8>(~LSR_DR);
        }
        update_irq();
        return;
    case LCR: m_lcr = value; return;
    case MCR: m_mcr = value & 0x1F; return;
    case SCR: m_scr = value; return;
    default: return; // LSR and MSR are read-only; writes are ignored as on hardware.
    }
}

void Uart16550::transmit(u8 value)
{
    m_thr_interrupt = false;
    if (m_mcr & MCR_LOOP) {
        auto byte = std::byte { value };
        receive({ &byte, 1 });
    } else {
        auto byte = std::byte { value };
        m_sink.write({ &byte, 1 });
    }
    // The byte left at once: THR is empty again, which is a new THRE event.
    m_lsr |= LSR_THRE | LSR_TEMT;
    m_thr_interrupt = true;
    update_irq();
}

void Uart16550::update_irq()
{
    u8 iid = IIR_NO_INT;
    if ((m_ier & IER_RLSI) && (m_lsr & LSR_ERRORS))
        iid = IIR_RLSI;
    else if ((m_ier & IER_RDI) && (m_lsr & LSR_DR))
        iid = IIR_RDI;
    else if ((m_ier & IER_THRI) && m_thr_interrupt)
        iid = IIR_THRI;
    else if ((m_ier & IER_MSI) && (m_msr_deltas & 0x0F))
        iid = IIR_MSI;
    m_iir = iid;
    bool const level = iid != IIR_NO_INT;
    if (level != m_irq_level) {
        m_irq_level = level;
        if (m_irq)
            m_irq(level);
    }
}

} // namespace vmm::devices

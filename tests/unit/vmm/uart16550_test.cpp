// SPDX-License-Identifier: MIT
#include "vmm/devices/uart16550.hpp" // Header under test first.

#include <array>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace vmm::devices {
namespace {

constexpr u64 THR = 0, IER = 1, IIR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;

class StringSink final : public ByteSink {
public:
    void write(std::span<std::byte const> bytes) override
    {
        for (auto byte : bytes)
            text.push_back(static_cast<char>(byte));
    }
    std::string text;
};

struct UartFixture : ::testing::Test {
    StringSink sink;
    std::vector<bool> irq_levels;
    Uart16550 uart { sink, [this](bool level) { irq_levels.push_back(level); } };

    u8 in(u64 offset)
    {
        std::array<std::byte, 1> data {};
        EXPECT_EQ(uart.read(offset, data), IoStatus::Ok);
        return std::to_integer<u8>(data[0]);
    }
    void out(u64 offset, u8 value)
    {
        std::array<std::byte, 1> data { std::byte { value } };
        EXPECT_EQ(uart.write(offset, data), IoStatus::Ok);
    }
    bool irq() const { return !irq_levels.empty() && irq_levels.back(); }
};

TEST_F(UartFixture, ResetStateHasEmptyTransmitterAndNoInterrupt)
{
    EXPECT_EQ(in(LSR), 0x60); // THRE | TEMT.
    EXPECT_EQ(in(IIR), 0x01);
    EXPECT_EQ(in(IER), 0x00);
    EXPECT_FALSE(irq());
}

TEST_F(UartFixture, TransmittedBytesReachTheSink)
{
    for (char c : std::string("INIT: up\n"))
        out(THR, static_cast<u8>(c));
    EXPECT_EQ(sink.text, "INIT: up\n");
    EXPECT_EQ(in(LSR) & 0x60, 0x60);
}

TEST_F(UartFixture, DivisorLatchShadowsThrAndIer)
{
    out(LCR, 0x83); // DLAB | 8N1.
    out(THR, 0x01); // DLL: 115200 baud.
    out(IER, 0x00); // DLM.
    EXPECT_EQ(in(THR), 0x01);
    EXPECT_EQ(in(IER), 0x00);
    EXPECT_TRUE(sink.text.empty()); // Divisor writes are not data.
    EXPECT_FALSE(irq());
    out(LCR, 0x03);
    EXPECT_EQ(in(LCR), 0x03);
    out(THR, 'x');
    EXPECT_EQ(sink.text, "x");
}

TEST_F(UartFixture, EnablingThriRaisesThreInterruptUntilIirIsRead)
{
    out(IER, 0x02);
    EXPECT_TRUE(irq());
    EXPECT_EQ(in(IIR) & 0x0F, 0x02); // THRI identified ...
    EXPECT_FALSE(irq());             // ... and acknowledged by the read.
    EXPECT_EQ(in(IIR) & 0x0F, 0x01);
}

TEST_F(UartFixture, LinuxThreTestSeesTheInterruptTwice)
{
    // serial8250_do_startup: IER=THRI, read IIR, IER=0, IER=THRI, read IIR. A UART whose
    // second read shows no interrupt gets UART_BUG_THRE and a polling timer.
    out(IER, 0x02);
    u8 const iir1 = in(IIR);
    out(IER, 0x00);
    out(IER, 0x02);
    u8 const iir2 = in(IIR);
    out(IER, 0x00);
    EXPECT_EQ(iir1 & 0x01, 0);
    EXPECT_EQ(iir2 & 0x01, 0);
}

TEST_F(UartFixture, EachTransmittedByteRaisesThreAgainWhileThriIsEnabled)
{
    out(IER, 0x02);
    EXPECT_EQ(in(IIR) & 0x0F, 0x02);
    EXPECT_FALSE(irq());
    out(THR, 'a');
    EXPECT_TRUE(irq());
    EXPECT_EQ(in(IIR) & 0x0F, 0x02);
    EXPECT_FALSE(irq());
    out(IER, 0x00); // __stop_tx.
    out(THR, 'b');
    EXPECT_FALSE(irq());
    EXPECT_EQ(sink.text, "ab");
}

TEST_F(UartFixture, FifoEnableShowsIn16550AIirBits)
{
    out(IIR, 0x07); // FCR: enable + clear both FIFOs.
    EXPECT_EQ(in(IIR) & 0xC0, 0xC0);
    out(IIR, 0x00);
    EXPECT_EQ(in(IIR) & 0xC0, 0x00);
}

TEST_F(UartFixture, ScratchRegisterHoldsItsValue)
{
    out(SCR, 0xA5);
    EXPECT_EQ(in(SCR), 0xA5);
}

TEST_F(UartFixture, LoopbackWiresModemLinesAndDataBack)
{
    // 8250_port.c autoconfig: MCR = LOOP | OUT2 | RTS, expects MSR & 0xF0 == DCD | CTS.
    out(MCR, 0x10 | 0x0A);
    EXPECT_EQ(in(MSR) & 0xF0, 0x90);
    out(THR, 'z');
    EXPECT_TRUE(sink.text.empty());
    EXPECT_EQ(in(LSR) & 0x01, 0x01);
    EXPECT_EQ(in(THR), 'z');
    out(MCR, 0x0B);
    EXPECT_EQ(in(MSR) & 0xF0, 0xB0); // Not in loopback: a terminal is attached.
}

TEST_F(UartFixture, ReceivedBytesRaiseRdiUntilDrained)
{
    out(IIR, 0x01);
    out(IER, 0x01);
    std::array<std::byte, 2> input { std::byte { 'h' }, std::byte { 'i' } };
    uart.receive(input);
    EXPECT_TRUE(irq());
    EXPECT_EQ(in(IIR) & 0x0F, 0x04);
    EXPECT_EQ(in(THR), 'h');
    EXPECT_TRUE(irq());
    EXPECT_EQ(in(THR), 'i');
    EXPECT_FALSE(irq());
    EXPECT_EQ(in(LSR) & 0x01, 0);
}

TEST_F(UartFixture, ReceiveOverflowSetsOverrunOnceAndClearsOnLsrRead)
{
    std::array<std::byte, 2> input { std::byte { '1' }, std::byte { '2' } }; // No FIFO: 1 byte holds.
    uart.receive(input);
    EXPECT_EQ(in(LSR) & 0x02, 0x02);
    EXPECT_EQ(in(LSR) & 0x02, 0x00);
}

TEST_F(UartFixture, WideAccessesCoverConsecutiveRegistersWithoutOverrun)
{
    std::array<std::byte, 2> data {};
    EXPECT_EQ(uart.read(6, data), IoStatus::Ok); // MSR, SCR.
    std::array<std::byte, 4> past {};
    EXPECT_EQ(uart.read(6, past), IoStatus::Ok); // Bytes past SCR read as 0xFF.
    EXPECT_EQ(past[3], std::byte { 0xFF });
}

} // namespace
} // namespace vmm::devices

// SPDX-License-Identifier: MIT
// CMOS RTC: the registers Linux's mc146818_get_time() reads (drivers/rtc/rtc-mc146818-lib.c),
// BCD/binary and 12/24 h formats, UIP timing, guest clock writes and bad values.
#include "vmm/devices/cmos_rtc.hpp" // Header under test first.

#include <gtest/gtest.h>

namespace vmm::devices {
namespace {

using namespace std::chrono;

class CmosRtcTest : public ::testing::Test {
protected:
    // 2026-12-04 22:59:58.5 UTC, a Friday.
    system_clock::time_point host = sys_days { year { 2026 } / 12 / 4 } + hours { 22 } + minutes { 59 } + seconds { 58 }
        + milliseconds { 500 };
    CmosRtc rtc { [this] { return host; } };

    std::uint8_t read(std::uint8_t index)
    {
        std::byte value { static_cast<std::uint8_t>(index) };
        EXPECT_EQ(rtc.write(0, std::span { &value, 1 }), IoStatus::Ok);
        EXPECT_EQ(rtc.read(1, std::span { &value, 1 }), IoStatus::Ok);
        return std::to_integer<std::uint8_t>(value);
    }
    void write(std::uint8_t index, std::uint8_t data)
    {
        std::byte value { index };
        EXPECT_EQ(rtc.write(0, std::span { &value, 1 }), IoStatus::Ok);
        value = std::byte { data };
        EXPECT_EQ(rtc.write(1, std::span { &value, 1 }), IoStatus::Ok);
    }
};

TEST_F(CmosRtcTest, ReadsTheHostTimeInBcd24HourWithCenturyAndValidRam)
{
    EXPECT_EQ(read(0x00), 0x58);
    EXPECT_EQ(read(0x02), 0x59);
    EXPECT_EQ(read(0x04), 0x22);
    EXPECT_EQ(read(0x06), 0x06); // Friday (1 = Sunday)
    EXPECT_EQ(read(0x07), 0x04);
    EXPECT_EQ(read(0x08), 0x12);
    EXPECT_EQ(read(0x09), 0x26);
    EXPECT_EQ(read(0x32), 0x20); // Century, where the FADT points.
    EXPECT_EQ(read(0x0B) & 0x06, 0x02); // BCD, 24 h.
    EXPECT_EQ(read(0x0D), 0x80);        // VRT
    EXPECT_EQ(read(0x0C), 0x00);
    EXPECT_EQ(read(0x0A) & 0x80, 0); // Not updating at .5 s.
}

TEST_F(CmosRtcTest, UipIsSetInTheLast244MicrosecondsOfASecond)
{
    host = floor<seconds>(host) + microseconds { 999'800 };
    EXPECT_EQ(read(0x0A) & 0x80, 0x80);
    host = floor<seconds>(host) + microseconds { 999'700 };
    EXPECT_EQ(read(0x0A) & 0x80, 0);
}

TEST_F(CmosRtcTest, BinaryAnd12HourModesFollowRegisterB)
{
    write(0x0B, 0x04); // Binary, 12 h.
    EXPECT_EQ(read(0x00), 58);
    EXPECT_EQ(read(0x04), 0x80 | 10); // 22 h = 10 PM
    EXPECT_EQ(read(0x09), 26);
}

TEST_F(CmosRtcTest, GuestWritesMoveTheClockAndKeepItRunning)
{
    write(0x09, 0x30); // Year 2030 (BCD)
    write(0x04, 0x05); // 05 h
    EXPECT_EQ(read(0x09), 0x30);
    EXPECT_EQ(read(0x04), 0x05);
    host += seconds { 1 };
    EXPECT_EQ(read(0x00), 0x59); // Still ticking with the host.
    write(0x32, 0x21);           // Century 21 -> 2130
    EXPECT_EQ(read(0x32), 0x21);
}

TEST_F(CmosRtcTest, InvalidTimesAreRefusedAndReadOnlyRegistersIgnoreWrites)
{
    write(0x04, 0x25); // Hour 25
    write(0x08, 0x13); // Month 13
    write(0x07, 0x31); // 31 December is fine...
    write(0x08, 0x11); // ...but then November 31 is not: refused, month stays 12.
    EXPECT_EQ(read(0x04), 0x22);
    EXPECT_EQ(read(0x08), 0x12);
    EXPECT_EQ(read(0x07), 0x31);
    write(0x0C, 0xFF);
    write(0x0D, 0x00);
    EXPECT_EQ(read(0x0C), 0x00);
    EXPECT_EQ(read(0x0D), 0x80);
    write(0x0A, 0xFF); // UIP is not writable.
    host = floor<seconds>(host) + milliseconds { 100 };
    EXPECT_EQ(read(0x0A) & 0x80, 0);
}

TEST_F(CmosRtcTest, CmosRamKeepsBytesAndTheNmiBitIsNotPartOfTheIndex)
{
    write(0x40, 0xAB);
    EXPECT_EQ(read(0x40), 0xAB);
    EXPECT_EQ(read(0x80 | 0x40), 0xAB); // Bit 7 of port 0x70 masks NMIs.
    std::byte wide[2] {};
    EXPECT_EQ(rtc.read(1, wide), IoStatus::BadSize);
}

} // namespace
} // namespace vmm::devices

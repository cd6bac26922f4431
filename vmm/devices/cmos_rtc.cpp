// SPDX-License-Identifier: MIT
// MC146818A registers (Motorola data sheet, "Address Map" and registers A-D).
#include "vmm/devices/cmos_rtc.hpp"

#include "base/log.hpp"
#include "firmware/layout.hpp"

namespace vmm::devices {
namespace {

using namespace std::chrono;
using firmware::CMOS_CENTURY_INDEX;

// Register indexes (include/linux/mc146818rtc.h:59-84).
constexpr u8 RTC_SECONDS = 0x00;
constexpr u8 RTC_MINUTES = 0x02;
constexpr u8 RTC_HOURS = 0x04;
constexpr u8 RTC_DAY_OF_WEEK = 0x06;
constexpr u8 RTC_DAY_OF_MONTH = 0x07;
constexpr u8 RTC_MONTH = 0x08;
constexpr u8 RTC_YEAR = 0x09;
constexpr u8 RTC_REG_A = 0x0A;
constexpr u8 RTC_REG_B = 0x0B;
constexpr u8 RTC_REG_C = 0x0C;
constexpr u8 RTC_REG_D = 0x0D;
constexpr u8 INDEX_MASK = 0x7F; // Bit 7 of port 0x70 is the NMI mask on PCs, not an index bit.

constexpr u8 REG_A_UIP = 0x80;
constexpr u8 REG_A_DIVIDER_32KHZ = 0x20;  // DV2-0 = 010: 32.768 kHz time base, oscillator on.
constexpr u8 REG_A_RATE_1024HZ = 0x06;    // RS3-0 = 0110 (power-on rate used by PC BIOSes).
constexpr u8 REG_B_SET = 0x80;            // Updates halted while the guest sets the clock.
constexpr u8 REG_B_DM_BINARY = 0x04;
constexpr u8 REG_B_24H = 0x02;
constexpr u8 REG_D_VRT = 0x80;            // Valid RAM and time.
constexpr u8 HOUR_PM = 0x80;              // 12-hour mode: bit 7 = PM.
// UIP is high for 244 us before each update (data sheet, "Update Cycle", tBUC).
constexpr microseconds UIP_WINDOW { 244 };

struct Civil {
    unsigned second, minute, hour, weekday, day, month, year; // weekday 1 = Sunday
};

Civil civil_from(system_clock::time_point tp)
{
    auto const day = floor<days>(tp);
    year_month_day const ymd { day };
    hh_mm_ss const time { floor<seconds>(tp - day) };
    return Civil {
        static_cast<unsigned>(time.seconds().count()),
        static_cast<unsigned>(time.minutes().count()),
        static_cast<unsigned>(time.hours().count()),
        weekday { day }.c_encoding() + 1,
        static_cast<unsigned>(ymd.day()),
        static_cast<unsigned>(ymd.month()),
        static_cast<unsigned>(static_cast<int>(ymd.year())),
    };
}

} // namespace

CmosRtc::CmosRtc(WallClock clock)
    : m_clock(std::move(clock))
{
    m_ram[RTC_REG_A] = REG_A_DIVIDER_32KHZ | REG_A_RATE_1024HZ;
    m_ram[RTC_REG_B] = REG_B_24H; // BCD, 24 h: what PC firmware leaves (Linux handles both).
}

system_clock::time_point CmosRtc::guest_now() const { return m_clock() + m_offset; }

u8 CmosRtc::encode(unsigned value) const
{
    if ((m_ram[RTC_REG_B] & REG_B_DM_BINARY) != 0)
        return static_cast<u8>(value);
    return static_cast<u8>(((value / 10) << 4) | (value % 10));
}

unsigned CmosRtc::decode(u8 value) const
{
    if ((m_ram[RTC_REG_B] & REG_B_DM_BINARY) != 0)
        return value;
    return (value >> 4) * 10 + (value & 0x0F);
}

u8 CmosRtc::encode_hour(unsigned hour) const
{
    if ((m_ram[RTC_REG_B] & REG_B_24H) != 0)
        return encode(hour);
    unsigned const twelve = hour % 12 == 0 ? 12 : hour % 12;
    return static_cast<u8>(encode(twelve) | (hour >= 12 ? HOUR_PM : 0));
}

unsigned CmosRtc::decode_hour(u8 value) const
{
    if ((m_ram[RTC_REG_B] & REG_B_24H) != 0)
        return decode(value);
    unsigned const twelve = decode(value & ~HOUR_PM) % 12;
    return twelve + ((value & HOUR_PM) != 0 ? 12 : 0);
}

u8 CmosRtc::read_register(u8 index)
{
    auto const now = guest_now();
    Civil const c = civil_from(now);
    switch (index) {
    case RTC_SECONDS: return encode(c.second);
    case RTC_MINUTES: return encode(c.minute);
    case RTC_HOURS: return encode_hour(c.hour);
    case RTC_DAY_OF_WEEK: return encode(c.weekday);
    case RTC_DAY_OF_MONTH: return encode(c.day);
    case RTC_MONTH: return encode(c.month);
    case RTC_YEAR: return encode(c.year % 100);
    case CMOS_CENTURY_INDEX: return encode(c.year / 100);
    case RTC_REG_A: {
        auto const into_second = now - floor<seconds>(now);
        bool const updating = (m_ram[RTC_REG_B] & REG_B_SET) == 0 && into_second >= seconds { 1 } - UIP_WINDOW;
        return static_cast<u8>((m_ram[RTC_REG_A] & ~REG_A_UIP) | (updating ? REG_A_UIP : 0));
    }
    case RTC_REG_C: return 0; // No interrupt flags: no interrupt sources are emulated.
    case RTC_REG_D: return REG_D_VRT;
    default: return m_ram[index];
    }
}

void CmosRtc::write_register(u8 index, u8 value)
{
    // A time or date write replaces that field of the current guest time; the rest keeps
    // running. Out-of-range values (hour 25, month 13) are refused with a log: the chip's
    // behaviour for them is undefined (data sheet) and a hostile guest must not wrap the clock.
    auto set_field = [&](auto&& change) {
        auto const now = guest_now();
        auto const day = floor<days>(now);
        year_month_day ymd { day };
        hh_mm_ss time { floor<seconds>(now - day) };
        unsigned h = static_cast<unsigned>(time.hours().count());
        unsigned m = static_cast<unsigned>(time.minutes().count());
        unsigned s = static_cast<unsigned>(time.seconds().count());
        if (!change(ymd, h, m, s) || !ymd.ok() || h > 23 || m > 59 || s > 59) {
            VMM_GUEST_WARN("rtc", "CMOS register {:#x} = {:#x} refused (not a valid time)", index, value);
            return;
        }
        auto const wanted = sys_days { ymd } + hours { h } + minutes { m } + seconds { s };
        m_offset = duration_cast<seconds>(wanted - floor<seconds>(m_clock()));
    };
    switch (index) {
    case RTC_SECONDS: set_field([&](auto&, unsigned&, unsigned&, unsigned& s) { s = decode(value); return true; }); return;
    case RTC_MINUTES: set_field([&](auto&, unsigned&, unsigned& m, unsigned&) { m = decode(value); return true; }); return;
    case RTC_HOURS: set_field([&](auto&, unsigned& h, unsigned&, unsigned&) { h = decode_hour(value); return true; }); return;
    case RTC_DAY_OF_MONTH:
        set_field([&](year_month_day& ymd, unsigned&, unsigned&, unsigned&) {
            ymd = ymd.year() / ymd.month() / day { decode(value) };
            return true;
        });
        return;
    case RTC_MONTH:
        set_field([&](year_month_day& ymd, unsigned&, unsigned&, unsigned&) {
            ymd = ymd.year() / month { decode(value) } / ymd.day();
            return true;
        });
        return;
    case RTC_YEAR:
    case CMOS_CENTURY_INDEX:
        set_field([&](year_month_day& ymd, unsigned&, unsigned&, unsigned&) {
            int const current = static_cast<int>(ymd.year());
            int const y = index == RTC_YEAR ? current / 100 * 100 + static_cast<int>(decode(value))
                                            : static_cast<int>(decode(value)) * 100 + current % 100;
            ymd = year { y } / ymd.month() / ymd.day();
            return true;
        });
        return;
    case RTC_DAY_OF_WEEK: return; // Derived from the date (Linux ignores it too, rtc-mc146818-lib.c).
    case RTC_REG_A: m_ram[RTC_REG_A] = static_cast<u8>(value & ~REG_A_UIP); return; // UIP is read-only.
    case RTC_REG_C:
    case RTC_REG_D: return; // Read-only.
    default: m_ram[index] = value; return; // Register B, alarms, CMOS RAM.
    }
}

IoStatus CmosRtc::read(u64 offset, std::span<std::byte> data)
{
    if (data.size() != 1)
        return IoStatus::BadSize;
    std::lock_guard lock { m_mutex };
    data[0] = std::byte { offset == 0 ? m_index : read_register(m_index) };
    return IoStatus::Ok;
}

IoStatus CmosRtc::write(u64 offset, std::span<std::byte const> data)
{
    if (data.size() != 1)
        return IoStatus::BadSize;
    std::lock_guard lock { m_mutex };
    auto const value = std::to_integer<u8>(data[0]);
    if (offset == 0)
        m_index = value & INDEX_MASK;
    else
        write_register(m_index, value);
    return IoStatus::Ok;
}

} // namespace vmm::devices

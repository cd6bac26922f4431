// SPDX-License-Identifier: MIT
// CmosRtc: an MC146818-compatible real-time clock and its CMOS RAM at ports 0x70 (index) and
// 0x71 (data), reading the host's wall clock (UTC), so the guest's time starts at the host's.
//
// Spec:     Motorola MC146818A data sheet (registers 0x00-0x0D, UIP timing); ACPI 6.5 §5.2.9
//           (FADT CENTURY) and the PNP0B00 device in the DSDT (firmware/acpi/dsdt.cpp).
//           Linux reader: arch/x86/kernel/rtc.c:57-78 mach_get_cmos_time() ->
//           drivers/rtc/rtc-mc146818-lib.c mc146818_get_time() (UIP, seconds re-check, century
//           from acpi_gbl_FADT.century, BCD/binary and 12/24 h from register B).
// Done:     time and date in BCD or binary, 12 or 24 h; guest writes move the clock (kept as an
//           offset from host time); UIP during the last 244 us of each second as on the chip;
//           register D VRT; century at CMOS_CENTURY_INDEX; 114 bytes of CMOS RAM.
// Missing:  alarm, periodic and update-ended interrupts (IRQ 8 is not wired and not in _CRS, so
//           Linux's rtc-cmos reports "no alarms"); daylight saving (DSE) is stored, not applied.
#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <mutex>

#include "vmm/io_device.hpp"

namespace vmm::devices {

class CmosRtc final : public IoDevice {
public:
    using WallClock = std::function<std::chrono::system_clock::time_point()>;
    explicit CmosRtc(WallClock clock);

    std::string_view name() const override { return "cmos-rtc"; }
    IoStatus read(u64 offset, std::span<std::byte> data) override;
    IoStatus write(u64 offset, std::span<std::byte const> data) override;

private:
    u8 read_register(u8 index);
    void write_register(u8 index, u8 value);
    std::chrono::system_clock::time_point guest_now() const;
    u8 encode(unsigned value) const;    // To BCD unless register B selects binary.
    unsigned decode(u8 value) const;    // From BCD unless register B selects binary.
    u8 encode_hour(unsigned hour) const;
    unsigned decode_hour(u8 value) const;

    WallClock m_clock;
    std::mutex m_mutex; // Every vCPU may access the ports.
    u8 m_index { 0 };
    std::array<u8, 128> m_ram {};
    std::chrono::seconds m_offset { 0 }; // Guest time - host time, moved by guest writes.
};

} // namespace vmm::devices

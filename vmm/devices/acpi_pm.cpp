// SPDX-License-Identifier: MIT
#include "vmm/devices/acpi_pm.hpp"

#include <algorithm>

#include "base/log.hpp"

namespace vmm::devices {

namespace {
constexpr u8 SLP_EN = 0x20;      // ACPI 6.4 table 4.22, bit 5.
constexpr u8 SLP_TYP_SHIFT = 2;  // Bits 4:2.
constexpr u8 SLP_TYP_MASK = 0x7;
constexpr u8 I8042_PULSE_RESET = 0xFE; // 8042 command "pulse output line 0" (CPU reset).

void fill_zero(std::span<std::byte> data) { std::ranges::fill(data, std::byte { 0 }); }
} // namespace

IoStatus AcpiSleepControl::read(u64, std::span<std::byte> data)
{
    fill_zero(data);
    return IoStatus::Ok;
}

IoStatus AcpiSleepControl::write(u64 offset, std::span<std::byte const> data)
{
    if (offset != 0 || data.size() != 1)
        return IoStatus::BadSize;
    u8 const value = std::to_integer<u8>(data[0]);
    if (!(value & SLP_EN))
        return IoStatus::Ok;
    u8 const slp_typ = (value >> SLP_TYP_SHIFT) & SLP_TYP_MASK;
    if (slp_typ == m_s5_slp_typ) {
        m_callback(PowerEvent::Poweroff);
        return IoStatus::Ok;
    }
    // Only \_S5 is in the DSDT; any other state is a guest bug we ignore.
    VMM_GUEST_WARN("acpi", "sleep request for unsupported SLP_TYP {} ignored", slp_typ);
    return IoStatus::Ok;
}

IoStatus AcpiSleepStatus::read(u64, std::span<std::byte> data)
{
    fill_zero(data);
    return IoStatus::Ok;
}

IoStatus AcpiSleepStatus::write(u64, std::span<std::byte const>) { return IoStatus::Ok; }

IoStatus AcpiResetRegister::read(u64, std::span<std::byte> data)
{
    fill_zero(data);
    return IoStatus::Ok;
}

IoStatus AcpiResetRegister::write(u64 offset, std::span<std::byte const> data)
{
    if (offset != 0 || data.size() != 1)
        return IoStatus::BadSize;
    if (std::to_integer<u8>(data[0]) == m_reset_value)
        m_callback(PowerEvent::Reset);
    return IoStatus::Ok;
}

IoStatus I8042ResetPort::read(u64, std::span<std::byte> data)
{
    fill_zero(data);
    return IoStatus::Ok;
}

IoStatus I8042ResetPort::write(u64 offset, std::span<std::byte const> data)
{
    if (offset == 0 && data.size() == 1 && std::to_integer<u8>(data[0]) == I8042_PULSE_RESET)
        m_callback(PowerEvent::Reset);
    return IoStatus::Ok;
}

IoStatus PostCodePort::read(u64, std::span<std::byte> data)
{
    std::ranges::fill(data, std::byte { 0xFF });
    return IoStatus::Ok;
}

} // namespace vmm::devices

// SPDX-License-Identifier: MIT
// ACPI hardware-reduced sleep and reset registers (the ports the FADT names), and the two
// legacy reset paths Linux falls back to.
//
// Spec:     ACPI 6.4 §4.8.3.7 (sleep control/status registers), §4.8.3.6 (reset register);
//           Linux drivers/acpi/acpica/hwesleep.c (acpi_hw_extended_sleep), arch/x86/kernel/reboot.c
// Done:     S5 poweroff, reset register, i8042 pulse-reset (0xFE to port 0x64), POST port 0x80
// Missing:  S1-S4 (not advertised in the DSDT, so the guest never asks)
#pragma once

#include <functional>

#include "vmm/io_device.hpp"

namespace vmm::devices {

enum class PowerEvent : u8 { Poweroff, Reset };
using PowerCallback = std::function<void(PowerEvent)>;

// Sleep control register (1 byte): SLP_TYP in bits 4:2, SLP_EN bit 5 (ACPI 6.4 table 4.22).
class AcpiSleepControl final : public IoDevice {
public:
    AcpiSleepControl(PowerCallback callback, u8 s5_slp_typ)
        : m_callback(std::move(callback))
        , m_s5_slp_typ(s5_slp_typ)
    {
    }
    std::string_view name() const override { return "acpi-sleep-control"; }
    IoStatus read(u64 offset, std::span<std::byte> data) override;
    IoStatus write(u64 offset, std::span<std::byte const> data) override;

private:
    PowerCallback m_callback;
    u8 m_s5_slp_typ;
};

// Sleep status register (1 byte): WAK_STS bit 7 is write-1-to-clear; we never sleep, so 0.
class AcpiSleepStatus final : public IoDevice {
public:
    std::string_view name() const override { return "acpi-sleep-status"; }
    IoStatus read(u64 offset, std::span<std::byte> data) override;
    IoStatus write(u64 offset, std::span<std::byte const> data) override;
};

// Reset register: writing the FADT's RESET_VALUE resets the machine.
class AcpiResetRegister final : public IoDevice {
public:
    AcpiResetRegister(PowerCallback callback, u8 reset_value)
        : m_callback(std::move(callback))
        , m_reset_value(reset_value)
    {
    }
    std::string_view name() const override { return "acpi-reset"; }
    IoStatus read(u64 offset, std::span<std::byte> data) override;
    IoStatus write(u64 offset, std::span<std::byte const> data) override;

private:
    PowerCallback m_callback;
    u8 m_reset_value;
};

// i8042 command port 0x64 reduced to what Linux's reboot fallback uses: status reads 0
// (input buffer empty, so kb_wait() returns at once) and command 0xFE pulses the reset line
// (arch/x86/kernel/reboot.c, BOOT_KBD).
class I8042ResetPort final : public IoDevice {
public:
    explicit I8042ResetPort(PowerCallback callback)
        : m_callback(std::move(callback))
    {
    }
    std::string_view name() const override { return "i8042-reset"; }
    IoStatus read(u64 offset, std::span<std::byte> data) override;
    IoStatus write(u64 offset, std::span<std::byte const> data) override;

private:
    PowerCallback m_callback;
};

// Port 0x80 (POST codes, and Linux's native io_delay): writes are accepted and dropped.
class PostCodePort final : public IoDevice {
public:
    std::string_view name() const override { return "post-code"; }
    IoStatus read(u64 offset, std::span<std::byte> data) override;
    IoStatus write(u64, std::span<std::byte const>) override { return IoStatus::Ok; }
};

} // namespace vmm::devices

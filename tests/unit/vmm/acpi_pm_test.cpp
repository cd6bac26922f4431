// SPDX-License-Identifier: MIT
#include "vmm/devices/acpi_pm.hpp" // Header under test first.

#include <array>
#include <vector>

#include <gtest/gtest.h>

#include "firmware/layout.hpp"

namespace vmm::devices {
namespace {

struct Recorder {
    std::vector<PowerEvent> events;
    PowerCallback callback()
    {
        return [this](PowerEvent event) { events.push_back(event); };
    }
};

std::array<std::byte, 1> byte(u8 value) { return { std::byte { value } }; }

TEST(AcpiSleepControl, LinuxS5WriteRequestsPoweroff)
{
    Recorder recorder;
    AcpiSleepControl control { recorder.callback(), firmware::ACPI_S5_SLP_TYP };
    // hwesleep.c writes (SLP_TYP << 2) | SLP_EN; layout.hpp names the resulting byte.
    EXPECT_EQ(control.write(0, byte(firmware::ACPI_S5_SLEEP_CONTROL_VALUE)), IoStatus::Ok);
    ASSERT_EQ(recorder.events.size(), 1u);
    EXPECT_EQ(recorder.events[0], PowerEvent::Poweroff);
}

TEST(AcpiSleepControl, WithoutSlpEnOrWithAnotherSleepTypeNothingHappens)
{
    Recorder recorder;
    AcpiSleepControl control { recorder.callback(), 5 };
    EXPECT_EQ(control.write(0, byte(5 << 2)), IoStatus::Ok);          // SLP_EN clear.
    EXPECT_EQ(control.write(0, byte((3 << 2) | 0x20)), IoStatus::Ok); // S3 is not offered.
    EXPECT_TRUE(recorder.events.empty());
}

TEST(AcpiSleepControl, WideWritesAreRefused)
{
    Recorder recorder;
    AcpiSleepControl control { recorder.callback(), 5 };
    std::array<std::byte, 2> wide { std::byte { 0x34 }, std::byte { 0 } };
    EXPECT_EQ(control.write(0, wide), IoStatus::BadSize);
    EXPECT_TRUE(recorder.events.empty());
}

TEST(AcpiSleepStatus, ReadsZeroAndIgnoresWakeStatusClear)
{
    AcpiSleepStatus status;
    EXPECT_EQ(status.write(0, byte(firmware::ACPI_WAKE_STATUS)), IoStatus::Ok);
    auto value = byte(0xAA);
    EXPECT_EQ(status.read(0, value), IoStatus::Ok);
    EXPECT_EQ(value[0], std::byte { 0 });
}

TEST(AcpiResetRegister, OnlyTheFadtResetValueResets)
{
    Recorder recorder;
    AcpiResetRegister reset { recorder.callback(), firmware::ACPI_RESET_VALUE };
    EXPECT_EQ(reset.write(0, byte(0x02)), IoStatus::Ok);
    EXPECT_TRUE(recorder.events.empty());
    EXPECT_EQ(reset.write(0, byte(firmware::ACPI_RESET_VALUE)), IoStatus::Ok);
    ASSERT_EQ(recorder.events.size(), 1u);
    EXPECT_EQ(recorder.events[0], PowerEvent::Reset);
}

TEST(I8042ResetPort, StatusIsEmptyAndPulseResetCommandResets)
{
    Recorder recorder;
    I8042ResetPort port { recorder.callback() };
    auto status = byte(0xFF);
    EXPECT_EQ(port.read(0, status), IoStatus::Ok);
    EXPECT_EQ(status[0], std::byte { 0 }); // kb_wait() sees an empty input buffer.
    EXPECT_EQ(port.write(0, byte(0xAE)), IoStatus::Ok);
    EXPECT_TRUE(recorder.events.empty());
    EXPECT_EQ(port.write(0, byte(0xFE)), IoStatus::Ok);
    ASSERT_EQ(recorder.events.size(), 1u);
    EXPECT_EQ(recorder.events[0], PowerEvent::Reset);
}

TEST(PostCodePort, WritesAreAcceptedSilently)
{
    PostCodePort port;
    EXPECT_EQ(port.write(0, byte(0x12)), IoStatus::Ok);
}

} // namespace
} // namespace vmm::devices

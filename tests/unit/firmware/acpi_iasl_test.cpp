// SPDX-License-Identifier: MIT
// Cross-checks the generated tables with ACPICA's own disassembler (iasl, Debian
// acpica-tools) when it is installed: the AML must decode to the ASL we meant, and iasl must
// not report checksum or length problems.
#include "firmware/acpi/acpi_tables.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

using namespace vmm::firmware::acpi;

namespace {

bool have_iasl() { return std::system("command -v iasl >/dev/null 2>&1") == 0; }

class IaslDisassembly : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (!have_iasl())
            GTEST_SKIP() << "iasl not installed (apt-get install acpica-tools); AML cross-check skipped";
        char pattern[] = "/tmp/microvmm-acpi-XXXXXX";
        ASSERT_NE(mkdtemp(pattern), nullptr);
        m_dir = pattern;
    }
    void TearDown() override
    {
        if (!m_dir.empty())
            std::filesystem::remove_all(m_dir);
    }

    // Writes `table` to <name>.dat, runs `iasl -d` on it, returns the .dsl text plus iasl's output.
    std::string disassemble(std::string const& name, std::vector<std::byte> const& table, std::string& log)
    {
        auto path = m_dir / (name + ".dat");
        {
            std::ofstream out(path, std::ios::binary);
            out.write(reinterpret_cast<char const*>(table.data()), static_cast<std::streamsize>(table.size())); // Bytes to a file.
        }
        std::string command = "cd '" + m_dir.string() + "' && iasl -d '" + path.filename().string() + "' 2>&1";
        FILE* pipe = popen(command.c_str(), "r");
        EXPECT_NE(pipe, nullptr);
        if (!pipe)
            return {};
        char buffer[512];
        while (std::fgets(buffer, sizeof(buffer), pipe))
            log += buffer;
        EXPECT_EQ(pclose(pipe), 0) << log;
        std::ifstream dsl(m_dir / (name + ".dsl"));
        std::stringstream text;
        text << dsl.rdbuf();
        return text.str();
    }

    std::filesystem::path m_dir;
};

} // namespace

TEST_F(IaslDisassembly, DsdtDecodesToCom1VmbusAndS5)
{
    std::string log;
    auto dsl = disassemble("dsdt", build_dsdt({ .vcpus = 2, .vmbus = true }), log);
    EXPECT_EQ(log.find("Warning"), std::string::npos) << log;
    EXPECT_EQ(log.find("Error"), std::string::npos) << log;
    EXPECT_NE(dsl.find("Scope (\\_SB)"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("Device (COM1)"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("EisaId (\"PNP0501\")"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("IO (Decode16,"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("0x03F8,             // Range Minimum"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("IRQNoFlags ()"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("{4}"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("Device (VMBS)"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("Name (_HID, \"VMBus\")"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("Name (_S5, Package (0x04)"), std::string::npos) << dsl;
    EXPECT_EQ(dsl.find("_S4"), std::string::npos) << dsl;
}

TEST_F(IaslDisassembly, FadtDecodesAsHardwareReducedWithSleepRegisters)
{
    std::string log;
    auto dsl = disassemble("facp", build_fadt(0xE0040), log);
    EXPECT_EQ(log.find("Warning"), std::string::npos) << log;
    EXPECT_EQ(log.find("Error"), std::string::npos) << log;
    EXPECT_EQ(dsl.find("Invalid"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("Hardware Reduced (V5) : 1"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("Reset Register Supported (V2) : 1"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("Address : 0000000000000600"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("Address : 0000000000000602"), std::string::npos) << dsl;
}

TEST_F(IaslDisassembly, MadtDecodesWithoutComplaints)
{
    std::string log;
    auto dsl = disassemble("apic", build_madt({ .vcpus = 260, .vmbus = false }), log);
    EXPECT_EQ(log.find("Warning"), std::string::npos) << log;
    EXPECT_EQ(log.find("Error"), std::string::npos) << log;
    EXPECT_EQ(dsl.find("Invalid"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("Subtable Type : 09 [Processor Local x2APIC]"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("Subtable Type : 01 [I/O APIC]"), std::string::npos) << dsl;
}

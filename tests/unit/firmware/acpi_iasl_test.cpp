// SPDX-License-Identifier: MIT
// Cross-checks the generated tables with ACPICA's own tools (Debian acpica-tools) when they
// are installed: iasl must decode the AML to the ASL we meant without complaints, and
// acpiexec (the ACPICA interpreter Linux also uses) must evaluate the objects Linux reads.
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
            FAIL() << "iasl not installed: scripts/install-deps.sh installs acpica-tools (the AML cross-check needs it)";
        char pattern[] = "/tmp/microvmm-acpi-XXXXXX";
        ASSERT_NE(mkdtemp(pattern), nullptr);
        m_dir = pattern;
    }
    void TearDown() override
    {
        if (!m_dir.empty())
            std::filesystem::remove_all(m_dir);
    }

    std::filesystem::path write_table(std::string const& file_name, std::vector<std::byte> const& table)
    {
        auto path = m_dir / file_name;
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<char const*>(table.data()), static_cast<std::streamsize>(table.size())); // Bytes to a file.
        return path;
    }

    // Runs a shell command in the temporary directory and returns its combined output.
    std::string run(std::string const& command)
    {
        std::string full = "cd '" + m_dir.string() + "' && " + command + " 2>&1";
        FILE* pipe = popen(full.c_str(), "r");
        EXPECT_NE(pipe, nullptr);
        if (!pipe)
            return {};
        std::string output;
        char buffer[512];
        while (std::fgets(buffer, sizeof(buffer), pipe))
            output += buffer;
        EXPECT_EQ(pclose(pipe), 0) << output;
        return output;
    }

    // Writes `table` to <name>.dat, runs `iasl -d` on it, returns the .dsl text plus iasl's output.
    std::string disassemble(std::string const& name, std::vector<std::byte> const& table, std::string& log)
    {
        write_table(name + ".dat", table);
        log += run("iasl -d '" + name + ".dat'");
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
    EXPECT_NE(dsl.find("0x03F8,"), std::string::npos) << dsl;
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

TEST_F(IaslDisassembly, AcpiexecEvaluatesS5VmbusHidAndCom1ResourcesAndFindsNoS4)
{
    if (std::system("command -v acpiexec >/dev/null 2>&1") != 0)
        FAIL() << "acpiexec not installed: scripts/install-deps.sh installs acpica-tools";
    write_table("dsdt.aml", build_dsdt({ .vcpus = 1, .vmbus = true }));
    auto out = run("timeout 20 acpiexec -b 'evaluate \\_S5; evaluate \\_SB.VMBS._HID; evaluate \\_SB.VMBS._CRS; "
                   "evaluate \\_SB.COM1._HID; evaluate \\_SB.COM1._CRS; evaluate \\_SB.COM1._STA; evaluate \\_S4' dsdt.aml");
    EXPECT_NE(out.find("[Package] Contains 4 Elements:\n    [Integer] = 0000000000000005\n    [Integer] = 0000000000000005"),
        std::string::npos) << out;
    // ACPICA upper-cases string _HIDs (nsrepair2.c), so Linux matches "VMBUS".
    EXPECT_NE(out.find("[String] Length 05 = \"VMBUS\""), std::string::npos) << out;
    EXPECT_NE(out.find("[Buffer] Length 02 =     0000: 79 00"), std::string::npos) << out;
    EXPECT_NE(out.find("[Integer] = 000000000105D041"), std::string::npos) << out;
    EXPECT_NE(out.find("47 01 F8 03 F8 03 00 08 22 10 00 79 00"), std::string::npos) << out;
    EXPECT_NE(out.find("[Integer] = 000000000000000F"), std::string::npos) << out;
    EXPECT_NE(out.find("Evaluation of \\_S4 failed with status AE_NOT_FOUND"), std::string::npos) << out;
}

TEST_F(IaslDisassembly, PciDsdtAndMcfgDecodeToTheHostBridgeWindowsAndEcam)
{
    std::string log;
    auto dsl = disassemble("dsdt", build_dsdt({ .vcpus = 2, .vmbus = true, .pci = true }), log);
    EXPECT_EQ(log.find("Warning"), std::string::npos) << log;
    EXPECT_EQ(log.find("Error"), std::string::npos) << log;
    EXPECT_NE(dsl.find("Device (PCI0)"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("Name (_HID, EisaId (\"PNP0A08\")"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("Name (_CID, EisaId (\"PNP0A03\")"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("0xC000,             // Range Minimum"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,"),
        std::string::npos) << dsl;
    EXPECT_NE(dsl.find("0xDFFFFFFF,         // Range Maximum"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("0x20000000,         // Length"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("Device (MRES)"), std::string::npos) << dsl;
    EXPECT_NE(dsl.find("Memory32Fixed (ReadWrite,"), std::string::npos) << dsl;
    EXPECT_EQ(dsl.find("_PRT"), std::string::npos) << dsl;

    auto mcfg = disassemble("mcfg", build_mcfg(), log);
    EXPECT_EQ(log.find("Warning"), std::string::npos) << log;
    EXPECT_EQ(log.find("Error"), std::string::npos) << log;
    EXPECT_EQ(mcfg.find("Invalid"), std::string::npos) << mcfg;
    EXPECT_NE(mcfg.find("Base Address : 00000000E0000000"), std::string::npos) << mcfg;
    EXPECT_NE(mcfg.find("Segment Group Number : 0000"), std::string::npos) << mcfg;
    EXPECT_NE(mcfg.find("Start Bus Number : 00"), std::string::npos) << mcfg;
    EXPECT_NE(mcfg.find("End Bus Number : 00"), std::string::npos) << mcfg;
}

TEST_F(IaslDisassembly, AcpiexecEvaluatesThePciRootIdentityAndResources)
{
    if (std::system("command -v acpiexec >/dev/null 2>&1") != 0)
        FAIL() << "acpiexec not installed: scripts/install-deps.sh installs acpica-tools";
    write_table("dsdt.aml", build_dsdt({ .vcpus = 1, .vmbus = true, .pci = true }));
    auto out = run("timeout 20 acpiexec -b 'evaluate \\_SB.PCI0._HID; evaluate \\_SB.PCI0._SEG; evaluate \\_SB.PCI0._BBN; "
                   "evaluate \\_SB.PCI0._UID; evaluate \\_SB.PCI0._CRS; evaluate \\_SB.MRES._CRS; "
                   "evaluate \\_SB.PCI0._PRT' dsdt.aml");
    EXPECT_NE(out.find("[Integer] = 00000000080AD041"), std::string::npos) << out; // PNP0A08.
    // Bus 0-0, then IO(0xCF8, 8), WordIO 0xC000-0xFFFF, DWordMemory 0xC0000000-0xDFFFFFFF.
    // acpiexec dumps 16 bytes a line.
    EXPECT_NE(out.find("0000: 88 0D 00 02 0C 00 00 00 00 00 00 00 00 00 01 00"), std::string::npos) << out;
    EXPECT_NE(out.find("0010: 47 01 F8 0C F8 0C 01 08 88 0D 00 01 0C 03 00 00"), std::string::npos) << out;
    EXPECT_NE(out.find("0020: 00 C0 FF FF 00 00 00 40 87 17 00 00 0C 01 00 00"), std::string::npos) << out;
    EXPECT_NE(out.find("0030: 00 00 00 00 00 C0 FF FF FF DF 00 00 00 00 00 00"), std::string::npos) << out;
    EXPECT_NE(out.find("0040: 00 20 79 00"), std::string::npos) << out;
    EXPECT_NE(out.find("86 09 00 01 00 00 00 E0 00 00 10 00"), std::string::npos) << out;
    EXPECT_NE(out.find("Evaluation of \\_SB.PCI0._PRT failed with status AE_NOT_FOUND"), std::string::npos) << out;
    EXPECT_EQ(out.find("AE_AML"), std::string::npos) << out;
}

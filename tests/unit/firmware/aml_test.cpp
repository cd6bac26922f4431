// SPDX-License-Identifier: MIT
#include "firmware/acpi/aml.hpp"

#include <gtest/gtest.h>

#include "test_memory.hpp"

using namespace vmm::firmware::acpi;
using vmm::firmware::test::bytes_of;

TEST(Aml, PkgLengthUsesOneByteUpToSixtyThree)
{
    EXPECT_EQ(aml::pkg_length(0), bytes_of({ 0x01 }));
    EXPECT_EQ(aml::pkg_length(62), bytes_of({ 0x3F }));
}

TEST(Aml, PkgLengthTwoByteFormCountsItsOwnBytes)
{
    // 63 content bytes + 2 length bytes = 65 = 0x041: lead 0x40 | 0x1, then 0x04.
    EXPECT_EQ(aml::pkg_length(63), bytes_of({ 0x41, 0x04 }));
    // 0xFFD + 2 = 0xFFF, the largest two-byte value.
    EXPECT_EQ(aml::pkg_length(0xFFD), bytes_of({ 0x4F, 0xFF }));
}

TEST(Aml, PkgLengthThreeAndFourByteForms)
{
    // 0xFFE + 3 = 0x1001: lead 0x80 | 0x1, then 0x00, 0x01.
    EXPECT_EQ(aml::pkg_length(0xFFE), bytes_of({ 0x81, 0x00, 0x01 }));
    // 0x100000 + 4 = 0x100004: lead 0xC0 | 0x4, then 0x00, 0x00, 0x01.
    EXPECT_EQ(aml::pkg_length(0x100000), bytes_of({ 0xC4, 0x00, 0x00, 0x01 }));
}

TEST(Aml, IntegersUseTheShortestEncoding)
{
    EXPECT_EQ(aml::integer(0), bytes_of({ 0x00 }));
    EXPECT_EQ(aml::integer(1), bytes_of({ 0x01 }));
    EXPECT_EQ(aml::integer(2), bytes_of({ 0x0A, 0x02 }));
    EXPECT_EQ(aml::integer(0xFF), bytes_of({ 0x0A, 0xFF }));
    EXPECT_EQ(aml::integer(0x3F8), bytes_of({ 0x0B, 0xF8, 0x03 }));
    EXPECT_EQ(aml::integer(0x10000), bytes_of({ 0x0C, 0x00, 0x00, 0x01, 0x00 }));
    EXPECT_EQ(aml::integer(0x1'0000'0000), bytes_of({ 0x0E, 0, 0, 0, 0, 1, 0, 0, 0 }));
}

TEST(Aml, EisaIdCompressesPnp0501)
{
    EXPECT_EQ(aml::eisa_id_value("PNP0501"), 0x0105D041u);
    EXPECT_EQ(aml::eisa_id("PNP0501"), bytes_of({ 0x0C, 0x41, 0xD0, 0x05, 0x01 }));
    EXPECT_EQ(aml::eisa_id_value("PNP0A03"), 0x030AD041u);
}

TEST(Aml, NameStringsPadSegmentsAndUsePrefixes)
{
    EXPECT_EQ(aml::name_string("_S5"), bytes_of({ '_', 'S', '5', '_' }));
    EXPECT_EQ(aml::name_string("\\_SB"), bytes_of({ 0x5C, '_', 'S', 'B', '_' }));
    EXPECT_EQ(aml::name_string("\\_SB.COM1"), bytes_of({ 0x5C, 0x2E, '_', 'S', 'B', '_', 'C', 'O', 'M', '1' }));
    EXPECT_EQ(aml::name_string("^A.B.C"),
        bytes_of({ 0x5E, 0x2F, 3, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_', '_' }));
}

TEST(Aml, StringIsNulTerminated)
{
    EXPECT_EQ(aml::string("VMBus"), bytes_of({ 0x0D, 'V', 'M', 'B', 'u', 's', 0x00 }));
}

TEST(Aml, NameWithPackageMatchesIaslOutputForS5)
{
    // iasl: Name (_S5, Package (0x04) { 0x05, 0x05, Zero, Zero })
    auto s5 = aml::name("_S5", aml::package({ aml::integer(5), aml::integer(5), aml::integer(0), aml::integer(0) }));
    EXPECT_EQ(s5, bytes_of({ 0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0A, 0x05, 0x0A, 0x05, 0x00, 0x00 }));
}

TEST(Aml, ResourceTemplateWithIoAndIrqMatchesIaslOutput)
{
    // iasl: ResourceTemplate () { IO (Decode16, 0x03F8, 0x03F8, 0x00, 0x08) IRQNoFlags () {4} }
    auto crs = aml::resource_template({ aml::io_port(0x3F8, 0x3F8, 0, 8), aml::irq_no_flags(4) });
    EXPECT_EQ(crs, bytes_of({ 0x11, 0x10, 0x0A, 0x0D, 0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x00, 0x08,
                       0x22, 0x10, 0x00, 0x79, 0x00 }));
}

TEST(Aml, EmptyResourceTemplateIsJustTheEndTag)
{
    EXPECT_EQ(aml::resource_template({}), bytes_of({ 0x11, 0x05, 0x0A, 0x02, 0x79, 0x00 }));
}

TEST(Aml, DeviceUsesExtendedOpcodeAndPackageLength)
{
    auto dev = aml::device("VMBS", { aml::name("_UID", aml::integer(0)) });
    EXPECT_EQ(dev, bytes_of({ 0x5B, 0x82, 0x0B, 'V', 'M', 'B', 'S', 0x08, '_', 'U', 'I', 'D', 0x00 }));
}

TEST(Aml, MethodReturningAConstant)
{
    // iasl: Method (_STA, 0, NotSerialized) { Return (0x0F) }
    auto sta = aml::method("_STA", 0, false, { aml::return_value(aml::integer(0x0F)) });
    EXPECT_EQ(sta, bytes_of({ 0x14, 0x09, '_', 'S', 'T', 'A', 0x00, 0xA4, 0x0A, 0x0F }));
    auto serialized = aml::method("M1", 2, true, {});
    EXPECT_EQ(serialized, bytes_of({ 0x14, 0x06, 'M', '1', '_', '_', 0x0A }));
}

TEST(Aml, LargeScopeSwitchesToTwoBytePackageLength)
{
    std::vector<aml::Bytes> names;
    for (int i = 0; i < 10; ++i)
        names.push_back(aml::name("_UID", aml::integer(0x1234))); // 8 bytes each.
    auto scope = aml::scope("\\_SB", names);
    // Body: 5-byte name + 80 bytes = 85; + 2 length bytes = 87 = 0x57 -> 0x47, 0x05.
    ASSERT_EQ(scope.size(), 1u + 2u + 85u);
    EXPECT_EQ(scope[1], std::byte { 0x47 });
    EXPECT_EQ(scope[2], std::byte { 0x05 });
}

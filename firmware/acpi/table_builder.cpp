// SPDX-License-Identifier: MIT
// ACPI table header, length and checksum handling.
#include "firmware/acpi/table_builder.hpp"

#include <algorithm>
#include <cstring>

#include "base/error.hpp"
#include "firmware/acpi/acpi_tables.hpp"

namespace vmm::firmware::acpi {

namespace {

// OEM ids shown by the guest ("ACPI: DSDT 0x... (v02 MCRVMM MICROVMM ...)"); any printable
// ASCII is allowed (ACPI 6.5 Table 5.4).
constexpr std::string_view OEM_ID = "MCRVMM";
constexpr std::string_view OEM_TABLE_ID = "MICROVMM";
constexpr std::string_view CREATOR_ID = "MVMM";
constexpr u32 OEM_REVISION = 1;
constexpr u32 CREATOR_REVISION = 1;

template<std::size_t N>
std::array<char, N> fixed_chars(std::string_view text)
{
    VMM_ASSERT(text.size() == N);
    std::array<char, N> out;
    std::ranges::copy(text, out.begin());
    return out;
}

} // namespace

u8 acpi_checksum(std::span<std::byte const> bytes)
{
    u8 sum = 0;
    for (std::byte b : bytes)
        sum = static_cast<u8>(sum + std::to_integer<u8>(b));
    return sum;
}

TableHeader table_header(std::string_view signature, u8 revision)
{
    return TableHeader {
        .signature = fixed_chars<4>(signature),
        .length = 0,
        .revision = revision,
        .checksum = 0,
        .oem_id = fixed_chars<6>(OEM_ID),
        .oem_table_id = fixed_chars<8>(OEM_TABLE_ID),
        .oem_revision = OEM_REVISION,
        .asl_compiler_id = fixed_chars<4>(CREATOR_ID),
        .asl_compiler_revision = CREATOR_REVISION,
    };
}

void seal_table(std::span<std::byte> table)
{
    VMM_ASSERT(table.size() >= sizeof(TableHeader) && table.size() <= UINT32_MAX);
    u32 length = static_cast<u32>(table.size());
    std::memcpy(table.data() + offsetof(TableHeader, length), &length, sizeof(length));
    table[TABLE_CHECKSUM_OFFSET] = std::byte { 0 };
    table[TABLE_CHECKSUM_OFFSET] = std::byte { static_cast<u8>(-acpi_checksum(table)) };
}

TableBuilder::TableBuilder(std::string_view signature, u8 revision)
{
    append_obj(table_header(signature, revision));
}

std::vector<std::byte> TableBuilder::finish()
{
    seal_table(m_bytes);
    return std::move(m_bytes);
}

} // namespace vmm::firmware::acpi

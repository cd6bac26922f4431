// SPDX-License-Identifier: MIT
// Builds one ACPI system description table: the common header with microvmm's OEM ids,
// appended contents, then the final length and checksum (ACPI 6.5 §5.2.6).
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

#include "base/types.hpp"
#include "base/wire.hpp"
#include "firmware/acpi/acpi_spec.hpp"

namespace vmm::firmware::acpi {

// A header with the signature, revision and OEM ids; length and checksum 0 until sealed.
TableHeader table_header(std::string_view signature, u8 revision);

// Writes the table's length into its header and makes its bytes sum to 0.
void seal_table(std::span<std::byte> table);

class TableBuilder {
public:
    TableBuilder(std::string_view signature, u8 revision);
    void append(std::span<std::byte const> bytes) { m_bytes.insert(m_bytes.end(), bytes.begin(), bytes.end()); }
    template<Wire T>
    void append_obj(T const& value)
    {
        append(wire_bytes(value));
    }
    std::vector<std::byte> finish();

private:
    std::vector<std::byte> m_bytes;
};

} // namespace vmm::firmware::acpi

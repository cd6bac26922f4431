// SPDX-License-Identifier: MIT
// AML encoder (see aml.hpp for the grammar references).
#include "firmware/acpi/aml.hpp"

#include <cctype>

#include "base/error.hpp"

namespace vmm::firmware::acpi::aml {

namespace {

void append(Bytes& out, Bytes const& bytes) { out.insert(out.end(), bytes.begin(), bytes.end()); }
void append_u8(Bytes& out, u8 value) { out.push_back(std::byte { value }); }

void append_le(Bytes& out, u64 value, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; ++i)
        append_u8(out, static_cast<u8>(value >> (8 * i)));
}

Bytes concat(std::vector<Bytes> const& parts)
{
    Bytes out;
    for (auto const& part : parts)
        append(out, part);
    return out;
}

// opcode bytes + PkgLength + body.
Bytes with_pkg_length(std::initializer_list<u8> opcode, Bytes const& body)
{
    Bytes out;
    for (u8 byte : opcode)
        append_u8(out, byte);
    append(out, pkg_length(body.size()));
    append(out, body);
    return out;
}

bool lead_name_char(char c) { return (c >= 'A' && c <= 'Z') || c == '_'; }
bool name_char(char c) { return lead_name_char(c) || (c >= '0' && c <= '9'); }

void append_name_seg(Bytes& out, std::string_view segment)
{
    VMM_ASSERT(!segment.empty() && segment.size() <= 4 && lead_name_char(segment[0]));
    for (std::size_t i = 0; i < 4; ++i) {
        char c = i < segment.size() ? segment[i] : '_';
        VMM_ASSERT(name_char(c));
        append_u8(out, static_cast<u8>(c));
    }
}

u8 hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return static_cast<u8>(c - '0');
    VMM_ASSERT(c >= 'A' && c <= 'F');
    return static_cast<u8>(c - 'A' + 10);
}

} // namespace

Bytes pkg_length(std::size_t content_bytes)
{
    // One byte holds 0..63; longer forms put the low nibble in the lead byte (bits 0-3) and
    // the rest in 1..3 following bytes, with the count of those in lead bits 6-7.
    if (content_bytes + 1 <= 0x3F)
        return { std::byte { static_cast<u8>(content_bytes + 1) } };
    for (unsigned extra = 1; extra <= 3; ++extra) {
        std::size_t total = content_bytes + 1 + extra;
        if (total < (std::size_t { 1 } << (4 + 8 * extra))) {
            Bytes out;
            append_u8(out, static_cast<u8>((extra << 6) | (total & 0xF)));
            append_le(out, total >> 4, extra);
            return out;
        }
    }
    VMM_ASSERT(!"AML package longer than 2^28 bytes");
    return {};
}

Bytes name_string(std::string_view path)
{
    Bytes out;
    if (!path.empty() && path.front() == '\\') {
        append_u8(out, ROOT_CHAR);
        path.remove_prefix(1);
    }
    while (!path.empty() && path.front() == '^') {
        append_u8(out, PARENT_PREFIX_CHAR);
        path.remove_prefix(1);
    }
    std::vector<std::string_view> segments;
    while (!path.empty()) {
        auto dot = path.find('.');
        segments.push_back(path.substr(0, dot));
        path = dot == std::string_view::npos ? std::string_view {} : path.substr(dot + 1);
    }
    VMM_ASSERT(!segments.empty() && segments.size() <= 255);
    if (segments.size() == 2) {
        append_u8(out, DUAL_NAME_PREFIX);
    } else if (segments.size() > 2) {
        append_u8(out, MULTI_NAME_PREFIX);
        append_u8(out, static_cast<u8>(segments.size()));
    }
    for (auto segment : segments)
        append_name_seg(out, segment);
    return out;
}

Bytes integer(u64 value)
{
    Bytes out;
    if (value == 0 || value == 1) {
        append_u8(out, value == 0 ? ZERO_OP : ONE_OP);
    } else if (value <= 0xFF) {
        append_u8(out, BYTE_PREFIX);
        append_le(out, value, 1);
    } else if (value <= 0xFFFF) {
        append_u8(out, WORD_PREFIX);
        append_le(out, value, 2);
    } else if (value <= 0xFFFF'FFFF) {
        append_u8(out, DWORD_PREFIX);
        append_le(out, value, 4);
    } else {
        append_u8(out, QWORD_PREFIX);
        append_le(out, value, 8);
    }
    return out;
}

Bytes string(std::string_view text)
{
    Bytes out;
    append_u8(out, STRING_PREFIX);
    for (char c : text) {
        // AML strings are ASCII 0x01..0x7F (ACPI 6.5 §20.2.3 AsciiChar).
        VMM_ASSERT(c > 0 && static_cast<unsigned char>(c) <= 0x7F);
        append_u8(out, static_cast<u8>(c));
    }
    append_u8(out, 0);
    return out;
}

u32 eisa_id_value(std::string_view id)
{
    VMM_ASSERT(id.size() == 7);
    for (std::size_t i = 0; i < 3; ++i)
        VMM_ASSERT(id[i] >= 'A' && id[i] <= 'Z');
    // 'A' is 1: each letter is its ASCII code minus 0x40, five bits.
    u32 vendor = ((id[0] - 0x40u) << 10) | ((id[1] - 0x40u) << 5) | (id[2] - 0x40u);
    u32 product = (u32 { hex_digit(id[3]) } << 12) | (u32 { hex_digit(id[4]) } << 8)
        | (u32 { hex_digit(id[5]) } << 4) | hex_digit(id[6]);
    // Stored as the byte sequence vendor_hi, vendor_lo, product_hi, product_lo.
    return (vendor >> 8) | ((vendor & 0xFF) << 8) | ((product >> 8) << 16) | ((product & 0xFF) << 24);
}

Bytes eisa_id(std::string_view id)
{
    Bytes out;
    append_u8(out, DWORD_PREFIX);
    append_le(out, eisa_id_value(id), 4);
    return out;
}

Bytes buffer(std::span<std::byte const> contents)
{
    Bytes body = integer(contents.size());
    body.insert(body.end(), contents.begin(), contents.end());
    return with_pkg_length({ BUFFER_OP }, body);
}

Bytes package(std::vector<Bytes> const& elements)
{
    // NumElements is one byte (ACPI 6.5 §20.2.5.4 DefPackage).
    VMM_ASSERT(elements.size() <= 255);
    Bytes body;
    append_u8(body, static_cast<u8>(elements.size()));
    append(body, concat(elements));
    return with_pkg_length({ PACKAGE_OP }, body);
}

Bytes name(std::string_view name, Bytes const& object)
{
    Bytes out;
    append_u8(out, NAME_OP);
    append(out, name_string(name));
    append(out, object);
    return out;
}

Bytes scope(std::string_view path, std::vector<Bytes> const& terms)
{
    Bytes body = name_string(path);
    append(body, concat(terms));
    return with_pkg_length({ SCOPE_OP }, body);
}

Bytes device(std::string_view name, std::vector<Bytes> const& terms)
{
    Bytes body = name_string(name);
    append(body, concat(terms));
    return with_pkg_length({ EXT_OP_PREFIX, DEVICE_OP }, body);
}

Bytes method(std::string_view name, u8 arg_count, bool serialized, std::vector<Bytes> const& terms)
{
    VMM_ASSERT(arg_count <= 7);
    Bytes body = name_string(name);
    append_u8(body, static_cast<u8>(arg_count | (serialized ? 0x08 : 0)));
    append(body, concat(terms));
    return with_pkg_length({ METHOD_OP }, body);
}

Bytes return_value(Bytes const& value)
{
    Bytes out;
    append_u8(out, RETURN_OP);
    append(out, value);
    return out;
}

Bytes io_port(u16 minimum, u16 maximum, u8 alignment, u8 length)
{
    // Small item name 0x08, length 7 -> tag 0x47; information bit 0 = 16-bit decode.
    Bytes out;
    append_u8(out, 0x47);
    append_u8(out, 0x01);
    append_le(out, minimum, 2);
    append_le(out, maximum, 2);
    append_u8(out, alignment);
    append_u8(out, length);
    return out;
}

Bytes irq_no_flags(u8 irq)
{
    VMM_ASSERT(irq < 16);
    // Small item name 0x04, length 2 -> tag 0x22; then the 16-bit IRQ mask.
    Bytes out;
    append_u8(out, 0x22);
    append_le(out, u64 { 1 } << irq, 2);
    return out;
}

namespace {

// Address space descriptor common part (ACPI 6.5 §6.4.3.5.2-6.4.3.5.4): tag, length, resource
// type (0 memory, 1 I/O, 2 bus number), general flags (bit 3 _MAF, bit 2 _MIF, bit 1 _DEC
// subtractive, bit 0 consumer; producer + MinFixed + MaxFixed = 0x0C), type-specific flags,
// then granularity, minimum, maximum, translation offset and length, each `width` bytes.
Bytes address_space(u8 tag, u8 type, u8 type_flags, unsigned width, u64 minimum, u64 maximum)
{
    Bytes out;
    append_u8(out, tag);
    append_le(out, 3 + 5 * width, 2);
    append_u8(out, type);
    append_u8(out, 0x0C);
    append_u8(out, type_flags);
    append_le(out, 0, width);                     // Granularity.
    append_le(out, minimum, width);
    append_le(out, maximum, width);
    append_le(out, 0, width);                     // Translation offset.
    append_le(out, maximum - minimum + 1, width); // Length.
    return out;
}

constexpr u8 WORD_ADDRESS_TAG = 0x88;      // Word Address Space Descriptor (§6.4.3.5.3).
constexpr u8 DWORD_ADDRESS_TAG = 0x87;     // DWord Address Space Descriptor (§6.4.3.5.2).
constexpr u8 MEMORY32_FIXED_TAG = 0x86;    // 32-Bit Fixed Memory Range Descriptor (§6.4.3.4).
constexpr u8 RESOURCE_MEMORY = 0;
constexpr u8 RESOURCE_IO = 1;
constexpr u8 RESOURCE_BUS = 2;
constexpr u8 IO_ENTIRE_RANGE = 0x03;       // _RNG = 3 (§6.4.3.5.5 I/O type-specific flags).
constexpr u8 MEMORY_READ_WRITE = 0x01;     // _RW = 1, _MEM = 0 non-cacheable (§6.4.3.5.5).

} // namespace

Bytes word_bus_number(u16 minimum, u16 maximum)
{
    VMM_ASSERT(minimum <= maximum);
    return address_space(WORD_ADDRESS_TAG, RESOURCE_BUS, 0, 2, minimum, maximum);
}

Bytes word_io(u16 minimum, u16 maximum)
{
    VMM_ASSERT(minimum <= maximum && maximum - minimum < 0xFFFF);
    return address_space(WORD_ADDRESS_TAG, RESOURCE_IO, IO_ENTIRE_RANGE, 2, minimum, maximum);
}

Bytes dword_memory(u32 minimum, u32 maximum)
{
    VMM_ASSERT(minimum <= maximum && maximum - minimum < 0xFFFF'FFFF);
    return address_space(DWORD_ADDRESS_TAG, RESOURCE_MEMORY, MEMORY_READ_WRITE, 4, minimum, maximum);
}

Bytes memory32_fixed(u32 base, u32 length)
{
    Bytes out;
    append_u8(out, MEMORY32_FIXED_TAG);
    append_le(out, 9, 2);
    append_u8(out, 0x01); // Read-write.
    append_le(out, base, 4);
    append_le(out, length, 4);
    return out;
}

Bytes resource_template(std::vector<Bytes> const& descriptors)
{
    Bytes contents = concat(descriptors);
    // End Tag: small item name 0x0F, length 1 -> 0x79, then the checksum byte.
    append_u8(contents, 0x79);
    append_u8(contents, 0x00);
    return buffer(contents);
}

} // namespace vmm::firmware::acpi::aml

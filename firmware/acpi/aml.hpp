// SPDX-License-Identifier: MIT
// A small AML (ACPI Machine Language) encoder: the opcodes, names, integers, packages and
// resource descriptors our DSDT needs, each returned as bytes ready to concatenate.
//
// Spec: ACPI 6.5 §20.2 (AML grammar: §20.2.2 names, §20.2.3 data objects, §20.2.4 PkgLength,
//       §20.2.5 terms) and §6.4 (resource data types: §6.4.2.1 IRQ, §6.4.2.5 I/O port,
//       §6.4.2.9 End Tag).
// Done:    NameString, Integer (Zero/One/Byte/Word/DWord/QWord), String, EISAID, Buffer,
//          Package, Name, Scope, Device, Method + Return, ResourceTemplate with IO/IRQ/EndTag.
// Missing: anything that needs ASL expressions (If, Store, OperationRegion, Field).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/types.hpp"

namespace vmm::firmware::acpi::aml {

using Bytes = std::vector<std::byte>;

// Opcodes (ACPI 6.5 §20.3 Table 20.2).
inline constexpr u8 ZERO_OP = 0x00;
inline constexpr u8 ONE_OP = 0x01;
inline constexpr u8 NAME_OP = 0x08;
inline constexpr u8 BYTE_PREFIX = 0x0A;
inline constexpr u8 WORD_PREFIX = 0x0B;
inline constexpr u8 DWORD_PREFIX = 0x0C;
inline constexpr u8 STRING_PREFIX = 0x0D;
inline constexpr u8 QWORD_PREFIX = 0x0E;
inline constexpr u8 SCOPE_OP = 0x10;
inline constexpr u8 BUFFER_OP = 0x11;
inline constexpr u8 PACKAGE_OP = 0x12;
inline constexpr u8 METHOD_OP = 0x14;
inline constexpr u8 DUAL_NAME_PREFIX = 0x2E;
inline constexpr u8 MULTI_NAME_PREFIX = 0x2F;
inline constexpr u8 EXT_OP_PREFIX = 0x5B;
inline constexpr u8 DEVICE_OP = 0x82; // After EXT_OP_PREFIX.
inline constexpr u8 ROOT_CHAR = 0x5C;   // '\'
inline constexpr u8 PARENT_PREFIX_CHAR = 0x5E; // '^'
inline constexpr u8 RETURN_OP = 0xA4;

// PkgLength for `content_bytes` bytes following it: 1 to 4 bytes, the encoded value counting
// the PkgLength bytes themselves (ACPI 6.5 §20.2.4). Contents must be below 2^28 bytes.
Bytes pkg_length(std::size_t content_bytes);

// "\_SB.COM1", "^PCI0.ISA_", "_HID": segments of up to four [A-Z0-9_] characters (not starting
// with a digit), padded with '_'. Host-provided constant names only: a bad name asserts.
Bytes name_string(std::string_view path);

// The shortest encoding: ZeroOp, OneOp, or Byte/Word/DWord/QWord prefix + little-endian value.
Bytes integer(u64 value);
// StringPrefix, ASCII characters (no NUL inside; asserts), NUL.
Bytes string(std::string_view text);

// Compressed EISA id ("PNP0501" -> 0x0105D041): three uppercase letters packed 5 bits each,
// big-endian, then four hex digits as two bytes (ACPI 6.5 §6.1.5 _HID; ASL EISAID()).
u32 eisa_id_value(std::string_view id);
// EISAID() as iasl emits it: always a DWordConst.
Bytes eisa_id(std::string_view id);

Bytes buffer(std::span<std::byte const> contents);
Bytes package(std::vector<Bytes> const& elements);

Bytes name(std::string_view name, Bytes const& object);
Bytes scope(std::string_view path, std::vector<Bytes> const& terms);
Bytes device(std::string_view name, std::vector<Bytes> const& terms);
// MethodFlags: bits 0-2 ArgCount, bit 3 SerializeFlag, bits 4-7 SyncLevel (0).
Bytes method(std::string_view name, u8 arg_count, bool serialized, std::vector<Bytes> const& terms);
Bytes return_value(Bytes const& value);

// Small resource descriptors (ACPI 6.5 §6.4.2).
// I/O Port Descriptor, 16-bit decode: IO(Decode16, minimum, maximum, alignment, length).
Bytes io_port(u16 minimum, u16 maximum, u8 alignment, u8 length);
// IRQ Descriptor without the information byte: IRQNoFlags(){irq} (edge, active-high,
// exclusive, as for ISA IRQs). irq < 16.
Bytes irq_no_flags(u8 irq);
// Large resource descriptors (ACPI 6.5 §6.4.3). The address space descriptors are what a
// host bridge's _CRS uses for the windows it produces (ResourceProducer, MinFixed, MaxFixed,
// PosDecode, granularity 0, no translation): WordBusNumber, WordIO (EntireRange) and
// DWordMemory (NonCacheable, ReadWrite). Memory32Fixed(ReadWrite) is a consumed range.
Bytes word_bus_number(u16 minimum, u16 maximum);
Bytes word_io(u16 minimum, u16 maximum);
Bytes dword_memory(u32 minimum, u32 maximum);
Bytes memory32_fixed(u32 base, u32 length);
// Buffer holding the descriptors followed by an End Tag (checksum 0 = "treat as valid",
// ACPI 6.5 §6.4.2.9), as ASL ResourceTemplate() produces.
Bytes resource_template(std::vector<Bytes> const& descriptors);

} // namespace vmm::firmware::acpi::aml

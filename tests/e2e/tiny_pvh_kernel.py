#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Writes a tiny ELF64 "kernel" with a Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY = 18,
# xen/include/public/elfnote.h). In 32-bit protected mode it prints a line on COM1, optionally
# reads the PVH start info magic, then powers off through the ACPI sleep control port
# (firmware/layout.hpp: 0x600, value (5 << 2) | 0x20) or resets through the ACPI reset port
# (0x602, value 1), or idles forever ("idle"). Used by e2e.py to test the VMM core without the Linux guest.
import struct
import sys

LOAD_GPA = 0x100000  # 1 MiB: firmware::KERNEL_MIN_GPA.


def code(message: bytes, action: str) -> bytes:
    out = bytearray()
    # mov dx, 0x3f8
    out += b"\x66\xba" + struct.pack("<H", 0x3F8)
    for byte in message:
        out += b"\xb0" + bytes([byte])  # mov al, imm8
        out += b"\xee"                  # out dx, al
    if action == "idle":
        # Stays running (interrupts are off at the PVH entry, so hlt never returns): a live VM
        # for tests of the VMM's own interfaces, ended by a signal.
        out += b"\xf4"      # hlt
        out += b"\xeb\xfd"  # jmp back to hlt
        return bytes(out)
    if action == "poweroff":
        out += b"\x66\xba" + struct.pack("<H", 0x600)  # mov dx, 0x600
        out += b"\xb0\x34"                              # mov al, 0x34 (S5 | SLP_EN)
    else:
        out += b"\x66\xba" + struct.pack("<H", 0x602)  # mov dx, 0x602
        out += b"\xb0\x01"                              # mov al, ACPI_RESET_VALUE
    out += b"\xee"                                      # out dx, al
    out += b"\xf4"                                      # hlt
    out += b"\xeb\xfd"                                  # jmp back to hlt
    return bytes(out)


def elf(text: bytes) -> bytes:
    ehdr_size, phdr_size = 64, 56
    note_offset = ehdr_size + 2 * phdr_size
    name = b"Xen\0"
    note = struct.pack("<III", len(name), 4, 18) + name + struct.pack("<I", LOAD_GPA)
    text_offset = 0x1000
    header = struct.pack("<16sHHIQQQIHHHHHH",
                         b"\x7fELF\x02\x01\x01" + b"\0" * 9,
                         2, 62, 1,           # ET_EXEC, EM_X86_64, EV_CURRENT
                         LOAD_GPA,           # e_entry (unused: the PVH note wins)
                         ehdr_size, 0,       # e_phoff, e_shoff
                         0, ehdr_size, phdr_size, 2, 64, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 5, text_offset, LOAD_GPA, LOAD_GPA, len(text), len(text), 0x1000)
    notes = struct.pack("<IIQQQQQQ", 4, 4, note_offset, 0, 0, len(note), len(note), 4)
    image = bytearray(header + load + notes + note)
    image += b"\0" * (text_offset - len(image))
    image += text
    return bytes(image)


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit("usage: tiny_pvh_kernel.py OUT MESSAGE poweroff|reset|idle")
    message = sys.argv[2].encode() + b"\n"
    with open(sys.argv[1], "wb") as f:
        f.write(elf(code(message, sys.argv[3])))


if __name__ == "__main__":
    main()

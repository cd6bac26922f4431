// SPDX-License-Identifier: MIT
// Builders for synthetic kernel images (ELF64 vmlinux look-alikes and bzImages) so the
// loaders can be tested field by field without a real kernel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "firmware/boot_params.hpp"
#include "firmware/elf_format.hpp"

namespace vmm::firmware::test {

struct SyntheticSegment {
    std::uint64_t paddr;
    std::uint64_t vaddr;
    std::vector<std::byte> data;
    std::uint64_t memsz; // >= data.size(); the rest is bss.
};

struct SyntheticElf {
    std::uint64_t e_entry = 0;
    std::vector<SyntheticSegment> segments;
    std::optional<std::uint64_t> pvh_entry;
    std::uint32_t pvh_desc_bytes = 8; // Linux x86-64 emits an 8-byte descriptor.
    bool other_note_first = true;     // A GNU note before the Xen one, as in a real vmlinux.

    std::vector<std::byte> build() const;
    // Offsets of interesting fields in the built file, for corrupting them in tests.
    static constexpr std::size_t PHDR_OFFSET = sizeof(elf::Elf64Ehdr);
};

template<typename T>
void put(std::vector<std::byte>& bytes, std::size_t offset, T const& value)
{
    if (bytes.size() < offset + sizeof(T))
        bytes.resize(offset + sizeof(T));
    std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

inline std::vector<std::byte> SyntheticElf::build() const
{
    std::vector<std::byte> notes;
    auto add_note = [&notes](char const* name, std::uint32_t namesz, std::uint32_t type, std::vector<std::byte> desc) {
        std::size_t offset = notes.size();
        put(notes, offset, elf::Elf64Nhdr { namesz, static_cast<std::uint32_t>(desc.size()), type });
        std::size_t name_offset = offset + sizeof(elf::Elf64Nhdr);
        notes.resize(name_offset + ((namesz + 3) & ~3u));
        std::memcpy(notes.data() + name_offset, name, namesz);
        std::size_t desc_offset = notes.size();
        notes.resize(desc_offset + ((desc.size() + 3) & ~std::size_t { 3 }));
        std::memcpy(notes.data() + desc_offset, desc.data(), desc.size());
    };
    if (other_note_first)
        add_note("GNU", 4, 3, std::vector<std::byte>(20, std::byte { 0xAB })); // NT_GNU_BUILD_ID.
    if (pvh_entry) {
        std::vector<std::byte> desc(pvh_desc_bytes);
        std::memcpy(desc.data(), &*pvh_entry, std::min<std::size_t>(pvh_desc_bytes, sizeof(*pvh_entry)));
        add_note("Xen", 4, elf::XEN_ELFNOTE_PHYS32_ENTRY, desc);
    }

    std::size_t phnum = segments.size() + (notes.empty() ? 0 : 1);
    std::size_t data_offset = PHDR_OFFSET + phnum * sizeof(elf::Elf64Phdr);
    std::vector<std::byte> file(data_offset);
    elf::Elf64Ehdr ehdr {};
    ehdr.e_ident = { 0x7F, 'E', 'L', 'F', elf::ELFCLASS64, elf::ELFDATA2LSB, elf::EV_CURRENT };
    ehdr.e_type = elf::ET_EXEC;
    ehdr.e_machine = elf::EM_X86_64;
    ehdr.e_version = elf::EV_CURRENT;
    ehdr.e_entry = e_entry;
    ehdr.e_phoff = PHDR_OFFSET;
    ehdr.e_ehsize = sizeof(elf::Elf64Ehdr);
    ehdr.e_phentsize = sizeof(elf::Elf64Phdr);
    ehdr.e_phnum = static_cast<std::uint16_t>(phnum);
    put(file, 0, ehdr);

    std::size_t index = 0;
    for (auto const& segment : segments) {
        elf::Elf64Phdr phdr { elf::PT_LOAD, 5, file.size(), segment.vaddr, segment.paddr, segment.data.size(), segment.memsz, 0x200000 };
        put(file, PHDR_OFFSET + index++ * sizeof(elf::Elf64Phdr), phdr);
        file.insert(file.end(), segment.data.begin(), segment.data.end());
    }
    if (!notes.empty()) {
        elf::Elf64Phdr phdr { elf::PT_NOTE, 4, file.size(), 0, 0, notes.size(), notes.size(), 4 };
        put(file, PHDR_OFFSET + index * sizeof(elf::Elf64Phdr), phdr);
        file.insert(file.end(), notes.begin(), notes.end());
    }
    return file;
}

// A bzImage-shaped file: boot sector + setup sectors with a setup header, then the
// protected-mode payload.
struct SyntheticBzImage {
    std::uint16_t version = 0x020F;
    std::uint8_t setup_sects = 4;
    std::uint8_t loadflags = LOADED_HIGH;
    std::uint16_t xloadflags = XLF_KERNEL_64 | 2; // 64-bit entry, loadable above 4 GiB.
    std::uint32_t initrd_addr_max = 0x7FFF'FFFF;
    std::uint32_t cmdline_size = 2047;
    std::uint64_t pref_address = 0x100'0000;
    std::uint32_t init_size = 8 * 1024 * 1024;
    std::vector<std::byte> payload = std::vector<std::byte>(4096, std::byte { 0x90 });

    std::vector<std::byte> build() const
    {
        std::size_t sects = setup_sects == 0 ? 4 : setup_sects;
        std::vector<std::byte> file((sects + 1) * 512);
        SetupHeader header {};
        header.setup_sects = setup_sects;
        header.boot_flag = SETUP_BOOT_FLAG;
        header.jump = 0x6AEB; // jmp short to 0x26C: the header ends at 0x202 + 0x6A.
        header.header = SETUP_HEADER_MAGIC;
        header.version = version;
        header.loadflags = loadflags;
        header.initrd_addr_max = initrd_addr_max;
        header.kernel_alignment = 0x20'0000;
        header.relocatable_kernel = 1;
        header.xloadflags = xloadflags;
        header.cmdline_size = cmdline_size;
        header.pref_address = pref_address;
        header.init_size = init_size;
        put(file, SETUP_HEADER_OFFSET, header);
        file.insert(file.end(), payload.begin(), payload.end());
        return file;
    }
};

} // namespace vmm::firmware::test

// SPDX-License-Identifier: MIT
// ELF64 vmlinux loader: validates the file header, every program header and the Xen PVH
// note, then copies PT_LOAD segments to their physical addresses (p_paddr) and zeroes bss.
//
// Spec: System V gABI (ELF-64); Linux arch/x86/kernel/vmlinux.lds.S (ENTRY(phys_startup_64):
//       e_entry is the physical address of startup_64) and arch/x86/platform/pvh/head.S.
#include "firmware/kernel_image.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "firmware/elf_format.hpp"
#include "firmware/image_bytes.hpp"
#include "firmware/layout.hpp"

namespace vmm::firmware {

namespace {

using elf::Elf64Ehdr;
using elf::Elf64Nhdr;
using elf::Elf64Phdr;

Result<Elf64Ehdr> parse_file_header(std::span<std::byte const> image)
{
    auto ehdr = read_wire<Elf64Ehdr>(image, 0);
    if (!ehdr)
        return fail(Errc::InvalidArgument, "kernel image: ELF header truncated", image.size());
    if (ehdr->e_ident[elf::EI_CLASS] != elf::ELFCLASS64 || ehdr->e_ident[elf::EI_DATA] != elf::ELFDATA2LSB
        || ehdr->e_ident[elf::EI_VERSION] != elf::EV_CURRENT || ehdr->e_version != elf::EV_CURRENT)
        return fail(Errc::InvalidArgument, "kernel image: not a little-endian ELF64 version 1 file");
    if (ehdr->e_machine != elf::EM_X86_64)
        return fail(Errc::Unsupported, "kernel image: ELF machine is not x86-64", ehdr->e_machine);
    if (ehdr->e_type != elf::ET_EXEC)
        return fail(Errc::Unsupported, "kernel image: ELF is not an executable (ET_EXEC)", ehdr->e_type);
    if (ehdr->e_ehsize < sizeof(Elf64Ehdr))
        return fail(Errc::InvalidArgument, "kernel image: ELF header size too small", ehdr->e_ehsize);
    if (ehdr->e_phentsize != sizeof(Elf64Phdr))
        return fail(Errc::InvalidArgument, "kernel image: ELF program header size is not 56", ehdr->e_phentsize);
    if (ehdr->e_phnum == 0 || ehdr->e_phnum == elf::PN_XNUM)
        return fail(Errc::InvalidArgument, "kernel image: ELF has no usable program header count", ehdr->e_phnum);
    // e_phnum < 2^16 and the entry size is 56, so the product cannot overflow.
    if (!fits_in(image.size(), ehdr->e_phoff, std::uint64_t { ehdr->e_phnum } * sizeof(Elf64Phdr)))
        return fail(Errc::InvalidArgument, "kernel image: ELF program headers outside the file", ehdr->e_phoff);
    return *ehdr;
}

Result<void> check_load_segment(mem::GuestMemory const& memory, std::span<std::byte const> image, Elf64Phdr const& phdr)
{
    if (phdr.p_filesz > phdr.p_memsz)
        return fail(Errc::InvalidArgument, "kernel image: ELF segment file size exceeds memory size", phdr.p_filesz);
    if (!fits_in(image.size(), phdr.p_offset, phdr.p_filesz))
        return fail(Errc::InvalidArgument, "kernel image: ELF segment data outside the file", phdr.p_offset);
    if (!mem::Gpa { phdr.p_paddr }.checked_add(phdr.p_memsz))
        return fail(Errc::OutOfRange, "kernel image: ELF segment address overflows", phdr.p_paddr);
    if (phdr.p_paddr < KERNEL_MIN_GPA)
        return fail(Errc::OutOfRange, "kernel image: ELF segment below 1 MiB (firmware area)", phdr.p_paddr);
    if (!memory.is_ram(mem::Gpa { phdr.p_paddr }, phdr.p_memsz))
        return fail(Errc::NotMapped, "kernel image: ELF segment outside guest RAM", phdr.p_paddr);
    return {};
}

constexpr std::uint64_t align_up(std::uint64_t value, std::uint64_t alignment)
{
    return (value + alignment - 1) & ~(alignment - 1);
}

// Returns the PVH entry from one PT_NOTE segment's notes, nullopt if it has none.
Result<std::optional<u32>> find_pvh_note(std::span<std::byte const> image, Elf64Phdr const& phdr)
{
    if (!fits_in(image.size(), phdr.p_offset, phdr.p_filesz))
        return fail(Errc::InvalidArgument, "kernel image: ELF note segment outside the file", phdr.p_offset);
    auto notes = image.subspan(phdr.p_offset, phdr.p_filesz);
    // gABI pads name and descriptor to 4 bytes; a note segment aligned to 8 pads to 8.
    std::uint64_t const padding = phdr.p_align == 8 ? 8 : 4;
    std::uint64_t offset = 0;
    while (notes.size() - offset >= sizeof(Elf64Nhdr)) {
        auto nhdr = *read_wire<Elf64Nhdr>(notes, offset);
        offset += sizeof(Elf64Nhdr);
        // namesz/descsz are 32-bit, so the padded sizes cannot overflow 64 bits.
        std::uint64_t name_offset = offset;
        std::uint64_t desc_offset = name_offset + align_up(nhdr.n_namesz, padding);
        if (!fits_in(notes.size(), name_offset, nhdr.n_namesz) || !fits_in(notes.size(), desc_offset, nhdr.n_descsz))
            return fail(Errc::InvalidArgument, "kernel image: ELF note truncated", phdr.p_offset + offset);
        offset = std::min<std::uint64_t>(desc_offset + align_up(nhdr.n_descsz, padding), notes.size());

        static constexpr char XEN_NAME[] = "Xen"; // Owner name including the NUL.
        if (nhdr.n_type != elf::XEN_ELFNOTE_PHYS32_ENTRY || nhdr.n_namesz != sizeof(XEN_NAME)
            || std::memcmp(notes.data() + name_offset, XEN_NAME, sizeof(XEN_NAME)) != 0)
            continue;
        if (nhdr.n_descsz == sizeof(u32))
            return std::optional<u32> { *read_wire<u32>(notes, desc_offset) };
        if (nhdr.n_descsz == sizeof(u64)) {
            u64 entry = *read_wire<u64>(notes, desc_offset);
            if (entry > UINT32_MAX)
                return fail(Errc::InvalidArgument, "kernel image: PVH entry above 4 GiB", entry);
            return std::optional<u32> { static_cast<u32>(entry) };
        }
        return fail(Errc::InvalidArgument, "kernel image: PVH entry note has a bad size", nhdr.n_descsz);
    }
    return std::optional<u32> {};
}

// e_entry is physical for vmlinux (phys_startup_64); a virtual entry is translated through
// the segment that maps it.
Result<u64> physical_entry(u64 entry, std::span<Elf64Phdr const> loads)
{
    for (auto const& phdr : loads) {
        if (entry >= phdr.p_paddr && entry - phdr.p_paddr < phdr.p_filesz)
            return entry;
    }
    for (auto const& phdr : loads) {
        if (entry >= phdr.p_vaddr && entry - phdr.p_vaddr < phdr.p_filesz)
            return phdr.p_paddr + (entry - phdr.p_vaddr);
    }
    return fail(Errc::InvalidArgument, "kernel image: ELF entry point outside the loaded segments", entry);
}

bool inside_loaded_bytes(u64 gpa, std::span<Elf64Phdr const> loads)
{
    return std::ranges::any_of(loads, [gpa](Elf64Phdr const& phdr) {
        return gpa >= phdr.p_paddr && gpa - phdr.p_paddr < phdr.p_filesz;
    });
}

} // namespace

Result<KernelImage> load_elf(mem::GuestMemory const& memory, std::span<std::byte const> image)
{
    auto ehdr = VMM_TRY(parse_file_header(image));
    std::vector<Elf64Phdr> loads;
    std::optional<u32> pvh_entry;
    for (u16 i = 0; i < ehdr.e_phnum; ++i) {
        auto phdr = *read_wire<Elf64Phdr>(image, ehdr.e_phoff + std::uint64_t { i } * sizeof(Elf64Phdr));
        if (phdr.p_type == elf::PT_LOAD && phdr.p_memsz > 0) {
            VMM_TRY(check_load_segment(memory, image, phdr));
            loads.push_back(phdr);
        } else if (phdr.p_type == elf::PT_NOTE && !pvh_entry) {
            pvh_entry = VMM_TRY(find_pvh_note(image, phdr));
        }
    }
    if (loads.empty())
        return fail(Errc::InvalidArgument, "kernel image: ELF has no PT_LOAD segment");

    KernelImage kernel { KernelImage::Kind::ElfLinux64, 0, UINT64_MAX, 0, std::nullopt };
    if (pvh_entry) {
        if (!inside_loaded_bytes(*pvh_entry, loads))
            return fail(Errc::InvalidArgument, "kernel image: PVH entry outside the loaded segments", *pvh_entry);
        kernel.kind = KernelImage::Kind::ElfPvh;
        kernel.entry = *pvh_entry;
    } else {
        kernel.entry = VMM_TRY(physical_entry(ehdr.e_entry, loads));
    }

    // Everything validated: now copy the file bytes and zero the bss tails.
    for (auto const& phdr : loads) {
        VMM_TRY(memory.write(mem::Gpa { phdr.p_paddr }, image.subspan(phdr.p_offset, phdr.p_filesz))
                .context("writing an ELF segment ({} bytes) at GPA {:#x}", phdr.p_filesz, phdr.p_paddr));
        VMM_TRY(memory.fill(mem::Gpa { phdr.p_paddr + phdr.p_filesz }, std::byte { 0 }, phdr.p_memsz - phdr.p_filesz)
                .context("zeroing an ELF segment's bss ({} bytes) at GPA {:#x}", phdr.p_memsz - phdr.p_filesz,
                    phdr.p_paddr + phdr.p_filesz));
        kernel.load_start = std::min(kernel.load_start, phdr.p_paddr);
        kernel.load_end = std::max(kernel.load_end, phdr.p_paddr + phdr.p_memsz);
    }
    return kernel;
}

} // namespace vmm::firmware

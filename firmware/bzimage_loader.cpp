// SPDX-License-Identifier: MIT
// bzImage loader: checks the real-mode setup header (boot protocol >= 2.12, LOADED_HIGH,
// XLF_KERNEL_64), copies the protected-mode kernel to 1 MiB and keeps the setup header for
// the zero page. The 64-bit entry is startup_64 of the decompressor, 0x200 past the load.
//
// Spec: Linux Documentation/x86/boot.rst ("THE REAL-MODE KERNEL HEADER", "64-bit BOOT
//       PROTOCOL"); arch/x86/boot/header.S; arch/x86/boot/compressed/head_64.S (the
//       decompressor moves itself to max(load address, LOAD_PHYSICAL_ADDR) and needs
//       init_size bytes from there).
#include "firmware/kernel_image.hpp"

#include <algorithm>
#include <cstring>

#include "firmware/image_bytes.hpp"
#include "firmware/layout.hpp"

namespace vmm::firmware {

namespace {

struct CopiedHeader {
    SetupHeader header;  // Bytes past the header's end are zero.
    std::uint64_t bytes; // The header's own length from 0x1F1.
};

// The header ends at 0x202 + the byte at 0x201 (boot.rst, "jump" field). Bytes past that are
// setup code, not header, so they must not reach the zero page.
Result<CopiedHeader> copy_setup_header(std::span<std::byte const> image)
{
    if (!fits_in(image.size(), SETUP_JUMP_OFFSET + 1, 1))
        return fail(Errc::InvalidArgument, "kernel image: bzImage setup header truncated", image.size());
    std::uint64_t end = SETUP_MAGIC_OFFSET + std::to_integer<std::uint64_t>(image[SETUP_JUMP_OFFSET + 1]);
    std::uint64_t bytes = end - SETUP_HEADER_OFFSET;
    std::uint64_t copied = std::min<std::uint64_t>(bytes, sizeof(SetupHeader));
    if (!fits_in(image.size(), SETUP_HEADER_OFFSET, copied))
        return fail(Errc::InvalidArgument, "kernel image: bzImage setup header truncated", image.size());
    CopiedHeader out { .header = {}, .bytes = bytes };
    std::memcpy(&out.header, image.data() + SETUP_HEADER_OFFSET, copied);
    return out;
}

Result<void> check_setup_header(SetupHeader const& header, std::uint64_t header_bytes)
{
    // boot.rst: pref_address and init_size exist from 2.10; the 2.12 header reaches xloadflags.
    if (header.header != SETUP_HEADER_MAGIC)
        return fail(Errc::InvalidArgument, "kernel image: neither ELF nor bzImage");
    if (header.boot_flag != SETUP_BOOT_FLAG)
        return fail(Errc::InvalidArgument, "kernel image: bzImage boot_flag is not 0xAA55", header.boot_flag);
    if (header.version < MIN_BOOT_PROTOCOL)
        return fail(Errc::Unsupported, "kernel image: bzImage boot protocol older than 2.12", header.version);
    if (header_bytes < offsetof(SetupHeader, cmdline_size) + sizeof(header.cmdline_size))
        return fail(Errc::InvalidArgument, "kernel image: bzImage header too short for its version", header_bytes);
    if (!(header.loadflags & LOADED_HIGH))
        return fail(Errc::Unsupported, "kernel image: bzImage is not loadable at 1 MiB (no LOADED_HIGH)");
    if (!(header.xloadflags & XLF_KERNEL_64))
        return fail(Errc::Unsupported, "kernel image: bzImage has no 64-bit entry (no XLF_KERNEL_64)");
    return {};
}

} // namespace

Result<KernelImage> load_bzimage(mem::GuestMemory const& memory, std::span<std::byte const> image)
{
    auto [header, header_bytes] = VMM_TRY(copy_setup_header(image));
    VMM_TRY(check_setup_header(header, header_bytes));

    std::uint64_t setup_sects = header.setup_sects == 0 ? SETUP_SECTS_DEFAULT : header.setup_sects;
    std::uint64_t setup_bytes = (setup_sects + 1) * SECTOR_BYTES; // Boot sector + setup sectors.
    if (setup_bytes >= image.size())
        return fail(Errc::InvalidArgument, "kernel image: bzImage has no protected-mode kernel", setup_bytes);
    auto kernel_bytes = image.subspan(setup_bytes);

    // The decompressor works at max(load address, pref_address) and needs init_size bytes
    // there (header fields are 32/64-bit: the sums below cannot overflow 64 bits except
    // pref_address, which is checked).
    // By value: SetupHeader is packed, and std::max's const reference to a misaligned member is
    // undefined behaviour (UBSan, found by fuzz_kernel_image).
    std::uint64_t const pref_address = header.pref_address;
    std::uint64_t runtime_start = std::max<std::uint64_t>(BZIMAGE_LOAD_GPA, pref_address);
    auto runtime_end = mem::Gpa { runtime_start }.checked_add(header.init_size);
    if (!runtime_end)
        return fail(Errc::InvalidArgument, "kernel image: bzImage pref_address overflows", pref_address);
    std::uint64_t load_end = std::max<std::uint64_t>(BZIMAGE_LOAD_GPA + kernel_bytes.size(), runtime_end->raw());
    if (!memory.is_ram(mem::Gpa { BZIMAGE_LOAD_GPA }, load_end - BZIMAGE_LOAD_GPA))
        return fail(Errc::NotMapped, "kernel image: bzImage needs more guest RAM above 1 MiB", load_end);

    VMM_TRY(memory.write(mem::Gpa { BZIMAGE_LOAD_GPA }, kernel_bytes)
            .context("writing the bzImage kernel ({} bytes) at GPA {:#x}", kernel_bytes.size(), BZIMAGE_LOAD_GPA));
    return KernelImage {
        .kind = KernelImage::Kind::BzImage,
        .entry = BZIMAGE_LOAD_GPA + BZIMAGE_ENTRY_64_OFFSET,
        .load_start = BZIMAGE_LOAD_GPA,
        .load_end = load_end,
        .setup_header = header,
    };
}

} // namespace vmm::firmware

// SPDX-License-Identifier: MIT
// Kernel image format detection and the per-kind boot limits (initrd ceiling, command line).
#include "firmware/kernel_image.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "firmware/elf_format.hpp"
#include "firmware/layout.hpp"

namespace vmm::firmware {

Result<KernelImage> load_kernel(mem::GuestMemory const& memory, ByteSource const& image)
{
    std::array<std::byte, elf::ELFMAG.size()> magic {};
    if (image.contains(0, magic.size())) {
        VMM_TRY(image.read_at(0, magic));
        if (std::memcmp(magic.data(), elf::ELFMAG.data(), magic.size()) == 0)
            return load_elf(memory, image);
    }
    if (VMM_TRY(image.read_wire<u32>(SETUP_MAGIC_OFFSET)) == SETUP_HEADER_MAGIC)
        return load_bzimage(memory, image);
    return fail(Errc::InvalidArgument, "kernel image: neither ELF nor bzImage", image.size());
}

u64 KernelImage::initrd_addr_max() const
{
    switch (kind) {
    case Kind::ElfPvh:
        // PVH passes the initrd as a 64-bit module address; stay below the MMIO hole anyway.
        return MMIO_HOLE_START - 1;
    case Kind::ElfLinux64:
        return DEFAULT_INITRD_ADDR_MAX;
    case Kind::BzImage:
        // boot.rst: initrd_addr_max is the highest address the initrd may occupy; 0 on a
        // header that claims 2.12 would be nonsense, so fall back to the old default.
        return setup_header && setup_header->initrd_addr_max != 0 ? u64 { setup_header->initrd_addr_max }
                                                                  : DEFAULT_INITRD_ADDR_MAX;
    }
    return DEFAULT_INITRD_ADDR_MAX;
}

u64 KernelImage::cmdline_limit_bytes() const
{
    // boot.rst "cmdline_size": the maximum length without the terminating NUL (2.06+).
    if (kind == Kind::BzImage && setup_header && setup_header->cmdline_size != 0)
        return std::min<u64>(u64 { setup_header->cmdline_size } + 1, CMDLINE_MAX_BYTES);
    return DEFAULT_CMDLINE_LIMIT_BYTES;
}

} // namespace vmm::firmware

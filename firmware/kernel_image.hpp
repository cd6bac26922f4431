// SPDX-License-Identifier: MIT
// Kernel image detection and loading: an ELF64 vmlinux (PVH entry or 64-bit boot protocol) or
// a bzImage, read from a ByteSource (the file, via pread) straight into its final place in
// guest RAM: headers are read into small structs, payloads never pass through a host buffer.
// Every header field is checked: the file is untrusted input and no byte pattern may crash or
// write outside guest RAM.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "base/byte_source.hpp"
#include "base/error.hpp"
#include "base/types.hpp"
#include "firmware/boot_params.hpp"
#include "mem/guest_memory.hpp"

namespace vmm::firmware {

struct KernelImage {
    enum class Kind : u8 {
        ElfPvh,     // vmlinux with a Xen PVH note: enter in 32-bit protected mode, ebx = start info.
        ElfLinux64, // vmlinux without it: 64-bit boot protocol, rsi = zero page.
        BzImage,    // bzImage: 64-bit boot protocol at load address + 0x200.
    };
    Kind kind;
    u64 entry;      // Guest-physical entry point.
    u64 load_start; // Lowest guest-physical byte the kernel occupies.
    u64 load_end;   // One past the highest byte the kernel occupies (image, bss, init_size).
    // bzImage only: the image's setup header (bytes 0x1F1.. up to the header's own end; the
    // rest zero), to be copied into the zero page.
    std::optional<SetupHeader> setup_header;

    // Highest address the initrd may occupy (inclusive), from the header or the default.
    u64 initrd_addr_max() const;
    // Longest command line the kernel accepts, including the NUL.
    u64 cmdline_limit_bytes() const;
};

// Detects the format and loads the image. Errors: InvalidArgument for malformed or unknown
// images ("kernel image: neither ELF nor bzImage"), Unsupported for well-formed images this
// loader cannot boot (wrong machine, old boot protocol, no 64-bit entry), OutOfRange/NotMapped
// when the kernel does not fit in guest RAM above 1 MiB. Guest memory is written only after
// the whole image validated (only a source that fails mid-copy, e.g. a file truncated
// meanwhile, can leave a partial kernel behind; the boot is then abandoned).
Result<KernelImage> load_kernel(mem::GuestMemory const&, ByteSource const& image);

// The format-specific loaders load_kernel() dispatches to (exposed for tests and fuzzing).
Result<KernelImage> load_elf(mem::GuestMemory const&, ByteSource const& image);
Result<KernelImage> load_bzimage(mem::GuestMemory const&, ByteSource const& image);

// Bytes already in memory (tests, fuzzing): the same loaders over a SpanSource.
inline Result<KernelImage> load_kernel(mem::GuestMemory const& memory, std::span<std::byte const> image)
{
    return load_kernel(memory, SpanSource { image });
}

} // namespace vmm::firmware

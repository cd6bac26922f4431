// SPDX-License-Identifier: MIT
// BlockBackend: the seam between the NVMe engine and the storage behind a namespace. The engine
// validates a command completely (LBA range, PRPs mapped to guest RAM) and then submits one or
// more BlockRequests; the back-end answers each, later and from any thread, by the owner calling
// NvmeController::on_io_complete(tag, result). vmm/backends/image_file_backend.* is the product's
// back-end (io_uring on its own thread); tests use a fake that completes on demand.
#pragma once

#include <cstddef>
#include <span>

#include "base/types.hpp"

namespace vmm::nvme {

enum class BlockOp : u8 {
    Read,        // Fill `buffers` from [offset, offset + length).
    Write,       // Store `buffers` at [offset, offset + length).
    Flush,       // Make every completed write durable (fdatasync).
    WriteZeroes, // [offset, offset + length) reads as zeroes afterwards.
    Discard,     // [offset, offset + length) may be deallocated (punch hole); contents undefined.
};

struct BlockRequest {
    u64 tag;     // Opaque to the back-end: handed back in the completion.
    BlockOp op;
    bool fua;    // Write/WriteZeroes: durable before completion (RWF_DSYNC / fdatasync).
    u64 offset;  // Bytes; inside size_bytes() (the engine checked).
    u64 length;  // Bytes; for Read/Write the sum of the buffer sizes.
    // Read/Write: host views of guest RAM (already validated), valid until the completion. The
    // back-end copies the span list; the bytes themselves are the guest's, moved by the kernel.
    std::span<std::span<std::byte> const> buffers;
};

// What a back-end hands back per request (NvmeController::on_io_complete(tag, result)).
struct BlockCompletion {
    u64 tag;
    i32 result; // 0 or a negative errno.
};

class BlockBackend {
public:
    virtual ~BlockBackend() = default;
    virtual u64 size_bytes() const = 0;
    virtual bool read_only() const = 0;
    // Queues the request. Exactly one completion follows for every submit, never from inside
    // submit() itself (the engine is mid-command then): result 0 or a negative errno. A back-end
    // that cannot take more work still queues it (the engine bounds what is in flight by the
    // guest's queue sizes).
    virtual void submit(BlockRequest const&) = 0;
};

} // namespace vmm::nvme

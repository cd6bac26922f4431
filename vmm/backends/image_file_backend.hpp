// SPDX-License-Identifier: MIT
// ImageFileBackend: a raw disk image file behind an NVMe namespace (nvme::BlockBackend), with
// io_uring (liburing) on a thread of its own, so no vCPU ever waits for the disk.
//
//   Read/Write   -> IORING_OP_READV/WRITEV straight into/out of guest RAM (the engine's checked
//                   views); FUA writes carry RWF_DSYNC. Short transfers are resubmitted.
//   Flush        -> IORING_OP_FSYNC with IORING_FSYNC_DATASYNC (fdatasync).
//   WriteZeroes  -> fallocate(ZERO_RANGE | KEEP_SIZE), else PUNCH_HOLE | KEEP_SIZE (tmpfs), then
//                   fdatasync if FUA.
//   Discard      -> fallocate(PUNCH_HOLE | KEEP_SIZE), else ZERO_RANGE (reads must give zeroes:
//                   Identify Namespace DLFEAT).
//
// The image (opened and locked once per VMM: vmm/backends/image_file.hpp) is shared with the
// back-end of every boot. The same thread also waits on the disk's doorbell eventfds
// (KVM_IOEVENTFD, vmm/devices/nvme_pci_function.hpp) and hands each kick to the kick sink, so
// a guest's doorbell costs its vCPU no exit to user space and the engine runs here.
//
// Threads and locks (ARCHITECTURE.md): submit() runs on the caller's thread (under the NVMe
// controller's lock) and only appends to a queue under `m_lock` (a leaf std::mutex) and writes
// an eventfd. The `nvme-io` thread moves queued requests into the ring, reaps completions and
// hands each batch to the completion sink with no lock of its own held; the sink (the PCI
// wiring) takes the controller's lock and calls NvmeController::on_io_complete; the kick sink
// likewise takes it for NvmeController::doorbell_kick. Destruction finishes every request
// already submitted (delivering its completion) before the thread ends. The thread runs under
// its own seccomp filter (sandbox ThreadKind::NvmeIo, SECURITY.md).
#pragma once

#include <atomic>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include <sys/uio.h>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "devices/nvme/block_backend.hpp"
#include "vmm/backends/image_file.hpp"

struct io_uring;

namespace vmm {

class ImageFileBackend final : public nvme::BlockBackend {
public:
    using CompletionSink = std::function<void(std::span<nvme::BlockCompletion const>)>;
    // A doorbell eventfd fired: its index in start()'s `kick_fds`.
    using KickSink = std::function<void(std::size_t index)>;
    static constexpr unsigned RING_ENTRIES = 256;
    static constexpr std::size_t MAX_KICK_FDS = 64; // Each keeps one ring entry armed.

    // Opens and locks the image (ImageFile::open) for this back-end alone.
    static Result<std::unique_ptr<ImageFileBackend>> open(std::filesystem::path const& path, bool read_only);
    // Over an image already open (shared with later boots).
    explicit ImageFileBackend(std::shared_ptr<ImageFile const>);
    ~ImageFileBackend() override;
    ImageFileBackend(ImageFileBackend const&) = delete;
    ImageFileBackend& operator=(ImageFileBackend const&) = delete;

    // Starts the I/O thread; completions go to `sink` on that thread, and each signal of one of
    // `kick_fds` (eventfds the caller owns and keeps open until this back-end is gone; at most
    // MAX_KICK_FDS) to `kick`. Call once, before submit().
    Result<void> start(CompletionSink sink, std::vector<int> kick_fds = {}, KickSink kick = {});

    u64 size_bytes() const override { return m_image->size_bytes(); }
    bool read_only() const override { return m_image->read_only(); }
    void submit(nvme::BlockRequest const&) override;

private:
    struct Op {
        u64 tag { 0 };
        nvme::BlockOp op { nvme::BlockOp::Read };
        bool fua { false };
        u64 offset { 0 };
        u64 length { 0 };
        std::vector<iovec> iov; // What is left to transfer.
        int stage { 0 };        // WriteZeroes/Discard: fallback and FUA steps.
    };
    void run();
    void arm_kick(std::size_t index);
    void queue_sqe(u32 index);
    void on_cqe(u32 index, i32 result, std::vector<nvme::BlockCompletion>& done);
    void finish(u32 index, i32 result, std::vector<nvme::BlockCompletion>& done);

    std::shared_ptr<ImageFile const> m_image;
    Fd m_wake; // eventfd: submit() and the destructor wake the thread.
    std::unique_ptr<io_uring> m_ring;
    CompletionSink m_sink;
    KickSink m_kick;
    std::vector<int> m_kick_fds;
    std::thread m_thread;

    std::mutex m_lock; // Leaf: guards m_queued and m_stopping's transition.
    std::deque<Op> m_queued;
    std::atomic<bool> m_stopping { false };

    // I/O thread only.
    std::vector<Op> m_ops; // Index + 1 is the SQE's user_data.
    std::vector<u32> m_free_ops;
    u32 m_in_ring { 0 };
    u64 m_wake_value { 0 };
    std::vector<u64> m_kick_values; // One eventfd read buffer per kick fd.
};

} // namespace vmm

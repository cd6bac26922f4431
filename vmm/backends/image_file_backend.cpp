// SPDX-License-Identifier: MIT
#include "vmm/backends/image_file_backend.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include <liburing.h>

#include "base/log.hpp"
#include "vmm/sandbox/thread_sandbox.hpp"

namespace vmm {

namespace {

constexpr std::string_view LOG = "disk";
constexpr u64 WAKE_USER_DATA = ~u64 { 0 };
// user_data of a doorbell eventfd read: KICK_USER_DATA_BASE + its index (op indexes + 1 stay
// far below: at most RING_ENTRIES ops exist).
constexpr u64 KICK_USER_DATA_BASE = u64 { 1 } << 62;

} // namespace

ImageFileBackend::ImageFileBackend(std::shared_ptr<ImageFile const> image)
    : m_image(std::move(image))
{
    VMM_ASSERT(m_image != nullptr);
}

Result<std::unique_ptr<ImageFileBackend>> ImageFileBackend::open(std::filesystem::path const& path, bool read_only)
{
    return std::make_unique<ImageFileBackend>(VMM_TRY(ImageFile::open(path, read_only)));
}

Result<void> ImageFileBackend::start(CompletionSink sink, std::vector<int> kick_fds, KickSink kick)
{
    VMM_ASSERT(!m_thread.joinable() && sink && kick_fds.size() <= MAX_KICK_FDS && (kick_fds.empty() || kick));
    m_wake = Fd { ::eventfd(0, EFD_CLOEXEC) };
    if (!m_wake.is_open())
        return fail_errno("eventfd for disk I/O");
    auto ring = std::make_unique<io_uring>();
    if (int r = io_uring_queue_init(RING_ENTRIES, ring.get(), 0); r < 0)
        return fail_errno(fmt::format("io_uring_queue_init for disk image {}", m_image->path().string()), -r);
    m_ring = std::move(ring);
    m_sink = std::move(sink);
    m_kick = std::move(kick);
    m_kick_fds = std::move(kick_fds);
    m_kick_values.assign(m_kick_fds.size(), 0);
    m_thread = std::thread([this] { run(); });
    return {};
}

ImageFileBackend::~ImageFileBackend()
{
    if (m_thread.joinable()) {
        {
            std::lock_guard guard(m_lock);
            m_stopping.store(true);
        }
        u64 one = 1;
        static_cast<void>(::write(m_wake.get(), &one, sizeof(one)));
        m_thread.join();
    }
    if (m_ring)
        io_uring_queue_exit(m_ring.get());
}

void ImageFileBackend::submit(nvme::BlockRequest const& request)
{
    Op op;
    op.tag = request.tag;
    op.op = request.op;
    op.fua = request.fua;
    op.offset = request.offset;
    op.length = request.length;
    op.iov.reserve(request.buffers.size());
    for (auto buffer : request.buffers)
        op.iov.push_back(iovec { buffer.data(), buffer.size() });
    {
        std::lock_guard guard(m_lock);
        VMM_ASSERT(!m_stopping.load());
        m_queued.push_back(std::move(op));
    }
    u64 one = 1;
    static_cast<void>(::write(m_wake.get(), &one, sizeof(one))); // An eventfd write only fails on overflow.
}

void ImageFileBackend::queue_sqe(u32 index)
{
    io_uring_sqe* sqe = io_uring_get_sqe(m_ring.get());
    if (sqe == nullptr) {
        static_cast<void>(io_uring_submit(m_ring.get()));
        sqe = io_uring_get_sqe(m_ring.get());
    }
    VMM_ASSERT(sqe != nullptr); // At most RING_ENTRIES - 1 ops are in the ring.
    Op& op = m_ops[index];
    int const fd = m_image->fd();
    auto const offset = static_cast<off_t>(op.offset);
    auto const length = static_cast<off_t>(op.length);
    constexpr int zero = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
    constexpr int punch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
    switch (op.op) {
    case nvme::BlockOp::Read:
        io_uring_prep_readv(sqe, fd, op.iov.data(), static_cast<unsigned>(op.iov.size()), op.offset);
        break;
    case nvme::BlockOp::Write:
        io_uring_prep_writev2(sqe, fd, op.iov.data(), static_cast<unsigned>(op.iov.size()), op.offset, op.fua ? RWF_DSYNC : 0);
        break;
    case nvme::BlockOp::Flush: io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC); break;
    case nvme::BlockOp::WriteZeroes:
        if (op.stage == 2)
            io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
        else
            io_uring_prep_fallocate(sqe, fd, op.stage == 0 ? zero : punch, offset, length);
        break;
    case nvme::BlockOp::Discard: io_uring_prep_fallocate(sqe, fd, op.stage == 0 ? punch : zero, offset, length); break;
    }
    io_uring_sqe_set_data64(sqe, u64 { index } + 1);
}

void ImageFileBackend::arm_kick(std::size_t index)
{
    io_uring_sqe* sqe = io_uring_get_sqe(m_ring.get());
    if (sqe == nullptr) {
        static_cast<void>(io_uring_submit(m_ring.get()));
        sqe = io_uring_get_sqe(m_ring.get());
    }
    VMM_ASSERT(sqe != nullptr); // Kick reads and ops together stay below RING_ENTRIES.
    io_uring_prep_read(sqe, m_kick_fds[index], &m_kick_values[index], sizeof(u64), 0);
    io_uring_sqe_set_data64(sqe, KICK_USER_DATA_BASE + index);
}

void ImageFileBackend::finish(u32 index, i32 result, std::vector<nvme::BlockCompletion>& done)
{
    done.push_back(nvme::BlockCompletion { .tag = m_ops[index].tag, .result = result });
    m_ops[index].iov.clear();
    m_free_ops.push_back(index);
    --m_in_ring;
}

void ImageFileBackend::on_cqe(u32 index, i32 result, std::vector<nvme::BlockCompletion>& done)
{
    Op& op = m_ops[index];
    if (result == -EAGAIN || result == -EINTR)
        return queue_sqe(index);
    switch (op.op) {
    case nvme::BlockOp::Read:
    case nvme::BlockOp::Write: {
        if (result < 0)
            return finish(index, result, done);
        if (result == 0) // End of file inside the namespace: the image shrank under us.
            return finish(index, -EIO, done);
        // A short transfer: drop what was done from the iovecs and go on (readv(2)).
        u64 moved = static_cast<u64>(result);
        op.offset += moved;
        op.length -= std::min(op.length, moved);
        std::size_t first = 0;
        while (first < op.iov.size() && moved >= op.iov[first].iov_len)
            moved -= op.iov[first++].iov_len;
        op.iov.erase(op.iov.begin(), op.iov.begin() + static_cast<std::ptrdiff_t>(first));
        if (op.iov.empty())
            return finish(index, 0, done);
        op.iov.front().iov_base = static_cast<std::byte*>(op.iov.front().iov_base) + moved;
        op.iov.front().iov_len -= moved;
        return queue_sqe(index);
    }
    case nvme::BlockOp::Flush: return finish(index, result, done);
    case nvme::BlockOp::WriteZeroes:
        if (op.stage == 0 && (result == -EOPNOTSUPP || result == -EINVAL)) {
            op.stage = 1; // No ZERO_RANGE here (tmpfs): a hole reads as zeroes too.
            return queue_sqe(index);
        }
        if (result == 0 && op.fua && op.stage < 2) {
            op.stage = 2;
            return queue_sqe(index);
        }
        return finish(index, result, done);
    case nvme::BlockOp::Discard:
        if (op.stage == 0 && (result == -EOPNOTSUPP || result == -EINVAL)) {
            op.stage = 1;
            return queue_sqe(index);
        }
        return finish(index, result, done);
    }
}

void ImageFileBackend::run()
{
    pthread_setname_np(pthread_self(), "nvme-io");
    sandbox::enter_thread(sandbox::ThreadKind::NvmeIo); // Before the first guest request.
    auto arm_wake = [this] {
        io_uring_sqe* sqe = io_uring_get_sqe(m_ring.get());
        VMM_ASSERT(sqe != nullptr);
        io_uring_prep_read(sqe, m_wake.get(), &m_wake_value, sizeof(m_wake_value), 0);
        io_uring_sqe_set_data64(sqe, WAKE_USER_DATA);
    };
    arm_wake();
    for (std::size_t i = 0; i < m_kick_fds.size(); ++i)
        arm_kick(i);
    std::vector<nvme::BlockCompletion> done;
    std::vector<std::size_t> kicked;
    for (;;) {
        int const r = io_uring_submit_and_wait(m_ring.get(), 1);
        if (r < 0 && r != -EINTR && r != -EBUSY && r != -EAGAIN) {
            // A ring failure is a host problem; retrying keeps acknowledged writes intact.
            log::error(LOG, "disk image {}: io_uring_submit_and_wait: {}", m_image->path().string(), std::strerror(-r));
            continue;
        }
        bool rearm = false;
        io_uring_cqe* cqe;
        unsigned head;
        unsigned seen = 0;
        io_uring_for_each_cqe(m_ring.get(), head, cqe)
        {
            ++seen;
            u64 const data = io_uring_cqe_get_data64(cqe);
            if (data == WAKE_USER_DATA)
                rearm = true;
            else if (data >= KICK_USER_DATA_BASE)
                kicked.push_back(static_cast<std::size_t>(data - KICK_USER_DATA_BASE));
            else
                on_cqe(static_cast<u32>(data - 1), cqe->res, done);
        }
        io_uring_cq_advance(m_ring.get(), seen);
        if (rearm)
            arm_wake();
        // Doorbells first: the requests they submit join the ring below in this round.
        for (std::size_t index : kicked) {
            m_kick(index);
            arm_kick(index);
        }
        kicked.clear();
        bool stop = false;
        {
            std::lock_guard guard(m_lock);
            // One ring entry stays for the wake read and one for each doorbell read.
            while (!m_queued.empty() && m_in_ring < RING_ENTRIES - 1 - m_kick_fds.size()) {
                u32 index;
                if (m_free_ops.empty()) {
                    index = static_cast<u32>(m_ops.size());
                    m_ops.emplace_back();
                } else {
                    index = m_free_ops.back();
                    m_free_ops.pop_back();
                }
                m_ops[index] = std::move(m_queued.front());
                m_queued.pop_front();
                ++m_in_ring;
                if (m_ops[index].iov.size() > IOV_MAX) {
                    finish(index, -EINVAL, done); // Not from the engine (MDTS bounds it).
                    continue;
                }
                queue_sqe(index);
            }
            stop = m_stopping.load() && m_queued.empty() && m_in_ring == 0;
        }
        if (!done.empty()) {
            m_sink(done);
            done.clear();
        }
        if (stop)
            return;
    }
}

} // namespace vmm

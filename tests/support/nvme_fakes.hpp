// SPDX-License-Identifier: MIT
// Fakes around an NvmeController for unit tests and the fuzz target: a RAM-backed BlockBackend
// that completes only when told (so tests choose the interleaving), an interrupt recorder, and a
// minimal guest driver that lays queues out in FakeGuestMemory and rings doorbells the way
// Linux's drivers/nvme/host/pci.c does.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>

#include <cstring>
#include <deque>
#include <functional>
#include <optional>
#include <vector>

#include "devices/nvme/nvme_controller.hpp"
#include "tests/support/fake_guest_memory.hpp"

namespace vmm::test {

class FakeBlockBackend final : public nvme::BlockBackend {
public:
    struct Pending {
        nvme::BlockRequest request;
        std::vector<std::span<std::byte>> buffers; // Copied: BlockRequest's span is only valid until completion.
    };
    explicit FakeBlockBackend(u64 size_bytes, bool read_only = false)
        : m_disk(size_bytes)
        , m_read_only(read_only)
    {
    }
    u64 size_bytes() const override { return m_disk.size(); }
    bool read_only() const override { return m_read_only; }
    void submit(nvme::BlockRequest const& request) override
    {
        Pending p { request, { request.buffers.begin(), request.buffers.end() } };
        p.request.buffers = {};
        m_pending.push_back(std::move(p));
        m_log.push_back(request);
        m_log.back().buffers = {};
    }
    // Performs and completes the oldest request (result forced if `fail_errno` != 0).
    bool complete_one(nvme::NvmeController& controller, i32 fail_errno = 0)
    {
        if (m_pending.empty())
            return false;
        Pending p = std::move(m_pending.front());
        m_pending.pop_front();
        i32 result = -fail_errno;
        if (fail_errno == 0)
            perform(p);
        controller.on_io_complete(p.request.tag, result);
        return true;
    }
    std::size_t complete_all(nvme::NvmeController& controller)
    {
        std::size_t n = 0;
        while (complete_one(controller))
            ++n;
        return n;
    }
    std::vector<std::byte>& disk() { return m_disk; }
    // Back to a fresh, all-zero disk with nothing pending, rewriting only the bytes written since
    // (a fuzz target reuses one back-end: allocating the disk per input was a page fault per page).
    void reset()
    {
        m_pending.clear();
        m_log.clear();
        if (m_dirty_end > m_dirty_begin)
            std::memset(m_disk.data() + m_dirty_begin, 0, m_dirty_end - m_dirty_begin);
        m_dirty_begin = m_disk.size();
        m_dirty_end = 0;
    }
    std::deque<Pending> const& pending() const { return m_pending; }
    std::vector<nvme::BlockRequest> const& log() const { return m_log; }

private:
    void perform(Pending const& p)
    {
        auto const& r = p.request;
        u64 offset = r.offset;
        if (r.op != nvme::BlockOp::Read && r.op != nvme::BlockOp::Flush) {
            m_dirty_begin = std::min<u64>(m_dirty_begin, r.offset);
            m_dirty_end = std::max<u64>(m_dirty_end, r.offset + r.length);
        }
        switch (r.op) {
        case nvme::BlockOp::Read:
            for (auto buffer : p.buffers) {
                std::memcpy(buffer.data(), m_disk.data() + offset, buffer.size());
                offset += buffer.size();
            }
            break;
        case nvme::BlockOp::Write:
            for (auto buffer : p.buffers) {
                std::memcpy(m_disk.data() + offset, buffer.data(), buffer.size());
                offset += buffer.size();
            }
            break;
        case nvme::BlockOp::WriteZeroes:
        case nvme::BlockOp::Discard: std::memset(m_disk.data() + r.offset, 0, r.length); break;
        case nvme::BlockOp::Flush: break;
        }
    }
    std::vector<std::byte> m_disk;
    u64 m_dirty_begin { m_disk.size() }; // Bytes written since reset(): [begin, end).
    u64 m_dirty_end { 0 };
    bool m_read_only;
    std::deque<Pending> m_pending;
    std::vector<nvme::BlockRequest> m_log;
};

class FakeNvmeInterrupts final : public nvme::NvmeInterrupts {
public:
    void raise(u16 vector) override { raised.push_back(vector); }
    void shadow_doorbells(bool on) override { shadow_changes.push_back(on); }
    std::vector<u16> raised;
    std::vector<bool> shadow_changes;
};

// The guest side: queue memory and doorbells.
class NvmeTestDriver {
public:
    struct Queue {
        u64 sq_base { 0 };
        u64 cq_base { 0 };
        u32 entries { 0 };
        u32 sq_tail { 0 };
        u32 cq_head { 0 };
        bool phase { true };
    };

    using Read = std::function<void(u64, std::span<std::byte>)>;
    using Write = std::function<void(u64, std::span<std::byte const>)>;
    // BAR0 through any owner (the engine itself, or vmm::NvmeDisk with its lock).
    NvmeTestDriver(FakeGuestMemory const& ram, Read read, Write write)
        : m_ram(ram)
        , m_read(std::move(read))
        , m_write(std::move(write))
    {
    }
    NvmeTestDriver(FakeGuestMemory const& ram, nvme::NvmeController& controller)
        : NvmeTestDriver(
            ram, [&controller](u64 o, std::span<std::byte> d) { controller.mmio_read(o, d); },
            [&controller](u64 o, std::span<std::byte const> d) { controller.mmio_write(o, d); })
    {
    }

    u32 read32(u64 offset)
    {
        u32 value = 0;
        m_read(offset, std::as_writable_bytes(std::span { &value, 1 }));
        return value;
    }
    u64 read64(u64 offset)
    {
        u64 value = 0;
        m_read(offset, std::as_writable_bytes(std::span { &value, 1 }));
        return value;
    }
    void write32(u64 offset, u32 value) { m_write(offset, std::as_bytes(std::span { &value, 1 })); }
    void write64(u64 offset, u64 value) { m_write(offset, std::as_bytes(std::span { &value, 1 })); }

    // Admin queue at asq/acq, then CC.EN with IOSQES 6, IOCQES 4 (Linux nvme_enable_ctrl).
    void enable(u64 asq = 0x10000, u64 acq = 0x11000, u32 entries = 32)
    {
        m_queues.resize(1);
        m_queues[0] = Queue { .sq_base = asq, .cq_base = acq, .entries = entries };
        write32(nvme::REG_AQA, (entries - 1) | ((entries - 1) << 16));
        write64(nvme::REG_ASQ, asq);
        write64(nvme::REG_ACQ, acq);
        write32(nvme::REG_CC, cc_value());
    }
    static u32 cc_value() { return nvme::CC_EN | (6u << nvme::CC_IOSQES_SHIFT) | (4u << nvme::CC_IOCQES_SHIFT); }

    void ring_sq(u16 qid, u32 value) { write32(nvme::REG_DOORBELL_BASE + 2u * qid * 4, value); }
    void ring_cq(u16 qid, u32 value) { write32(nvme::REG_DOORBELL_BASE + (2u * qid + 1) * 4, value); }

    // Writes the entry (with a fresh CID unless the caller set one) and rings the tail doorbell.
    u16 submit(u16 qid, nvme::SubmissionEntry entry, bool ring = true)
    {
        auto& q = m_queues.at(qid);
        u16 cid = static_cast<u16>(entry.cdw0 >> 16);
        if (cid == 0) {
            cid = ++m_next_cid;
            entry.cdw0 |= u32 { cid } << 16;
        }
        m_ram.write(q.sq_base + u64 { q.sq_tail } * 64, entry);
        q.sq_tail = (q.sq_tail + 1) % q.entries;
        if (ring)
            ring_sq(qid, q.sq_tail);
        return cid;
    }
    // The next completion if its phase says it is new; consumes it and rings the head doorbell.
    std::optional<nvme::CompletionEntry> reap(u16 qid, bool ring = true)
    {
        auto& q = m_queues.at(qid);
        u64 const at = q.cq_base + u64 { q.cq_head } * 16;
        // As a guest CPU polls: the status word (phase bit) with acquire order first, the rest of
        // the entry only once the phase says it is new. The controller may be writing this slot
        // on its nvme-io thread (release store of the status, nvme_controller.cpp write_cqe), so
        // a plain read of the whole entry would race with it (ThreadSanitizer, nvme_disk_test).
        auto const status_bytes = m_ram.memory().contiguous(mem::Gpa { at + offsetof(nvme::CompletionEntry, status) }, 2);
        VMM_ASSERT(status_bytes.has_value());
        u16 const status = std::atomic_ref<u16>(*reinterpret_cast<u16*>(status_bytes->data())).load(std::memory_order_acquire);
        if (((status & 1) != 0) != q.phase)
            return std::nullopt;
        auto const cqe = m_ram.read<nvme::CompletionEntry>(at);
        q.cq_head = (q.cq_head + 1) % q.entries;
        if (q.cq_head == 0)
            q.phase = !q.phase;
        if (ring)
            ring_cq(qid, q.cq_head);
        return cqe;
    }
    static u16 status_of(nvme::CompletionEntry const& cqe) { return static_cast<u16>((cqe.status >> 1) & 0x7FF); }

    // Submits on the admin queue and returns the completion (admin commands complete at once).
    nvme::CompletionEntry admin(nvme::SubmissionEntry entry)
    {
        submit(0, entry);
        auto cqe = reap(0);
        VMM_ASSERT(cqe.has_value());
        return *cqe;
    }
    static nvme::SubmissionEntry command(u8 opcode, u32 nsid = 0)
    {
        nvme::SubmissionEntry e {};
        e.cdw0 = opcode;
        e.nsid = nsid;
        return e;
    }
    // Create I/O CQ then SQ `qid` with `entries` entries at sq_base/cq_base, CQ vector `vector`.
    u16 create_pair(u16 qid, u64 sq_base, u64 cq_base, u32 entries, u16 vector)
    {
        auto cq = command(0x05);
        cq.prp1 = cq_base;
        cq.cdw10 = qid | ((entries - 1) << 16);
        cq.cdw11 = 1 | 2 | (u32 { vector } << 16);
        auto status = status_of(admin(cq));
        if (status != 0)
            return status;
        auto sq = command(0x01);
        sq.prp1 = sq_base;
        sq.cdw10 = qid | ((entries - 1) << 16);
        sq.cdw11 = 1 | (u32 { qid } << 16);
        status = status_of(admin(sq));
        if (status == 0) {
            if (m_queues.size() <= qid)
                m_queues.resize(qid + 1u);
            m_queues[qid] = Queue { .sq_base = sq_base, .cq_base = cq_base, .entries = entries };
        }
        return status;
    }
    Queue& queue(u16 qid) { return m_queues.at(qid); }

private:
    FakeGuestMemory const& m_ram;
    Read m_read;
    Write m_write;
    std::vector<Queue> m_queues;
    u16 m_next_cid { 0 };
};

} // namespace vmm::test

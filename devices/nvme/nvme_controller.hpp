// SPDX-License-Identifier: MIT
// NvmeController: a sans-IO NVMe 1.4 controller with one namespace (NSID 1) over a BlockBackend.
// It owns BAR0's register semantics (CAP, VS, INTMS/INTMC, CC, CSTS, AQA, ASQ, ACQ, doorbells),
// the admin queue and the guest's I/O queue pairs, and turns I/O commands into BlockRequests
// whose data are host views of guest RAM checked by map_prps(). Three seams and nothing else:
// mem::GuestMemory (queues, PRPs), BlockBackend (storage), NvmeInterrupts (MSI-X vectors).
//
// Threads: not thread-safe. The owner serialises every call (the PCI wiring holds one lock per
// controller around mmio_read/mmio_write/on_io_complete), so a back-end completion arriving on
// the back-end's thread takes the same lock as a doorbell from a vCPU. BlockBackend::submit is
// called under that lock and must not call back synchronously.
//
// Guest misbehaviour (bad doorbells, queue ids, PRPs, commands) never asserts: it gets the
// status the spec gives, an asynchronous event where the spec has one, and a rate-limited log.
#pragma once

#include <array>
#include <cstddef>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/log.hpp"
#include "base/types.hpp"
#include "devices/nvme/block_backend.hpp"
#include "devices/nvme/command_tap.hpp"
#include "devices/nvme/interrupt_sink.hpp"
#include "devices/nvme/nvme_spec.hpp"
#include "devices/nvme/prp.hpp"
#include "mem/guest_memory.hpp"

namespace vmm::nvme {

struct NvmeControllerConfig {
    std::string serial;                            // Identify SN: <= 20 printable ASCII (config checks).
    std::string model { "microvmm NVMe disk" };    // MN: <= 40.
    std::string firmware { "1.0" };                // FR: <= 8.
    u16 max_io_queues { 64 };                      // I/O SQ/CQ pairs the guest may create.
    u16 msix_vectors { 65 };                       // MSI-X table size: a CQ's IV must be below it.
    u32 max_queue_entries { 1024 };                // CAP.MQES + 1, for I/O queues.
    // Identify VID/SSVID must equal the PCI function's vendor and subsystem vendor IDs (NVMe 1.4
    // Figure 247); the PCI wiring sets them. Not 1b36:0010 as a device: Linux applies QEMU's
    // NVME_QUIRK_BOGUS_NID to that ID (drivers/nvme/host/pci.c nvme_id_table) and would ignore
    // the NGUID.
    // The function's IDs (vmm/devices/nvme_pci_function.cpp reports these in config space):
    // Red Hat's vendor ID, as the host bridge's (1b36:0008), with a device ID outside the ones
    // QEMU's NVMe and bridges use; Linux, OVMF and stornvme bind NVMe by class code 01/08/02,
    // and no quirk in drivers/nvme/host/pci.c nvme_id_table matches 1b36:1000.
    u16 pci_vendor_id { 0x1B36 };
    u16 pci_device_id { 0x1000 };
    u16 pci_subsystem_vendor_id { 0x1B36 };
    u16 pci_subsystem_id { 0x1000 };
};

// Counters since construction (read under the owner's lock).
struct NvmeStats {
    u64 read_commands { 0 };
    u64 write_commands { 0 };
    u64 bytes_read { 0 };
    u64 bytes_written { 0 };
    u64 flushes { 0 };
    u64 io_errors { 0 };      // Back-end failures reported to the guest.
    u64 guest_errors { 0 };   // Commands or register writes refused as invalid.
    u64 resets { 0 };
};

class NvmeController {
public:
    // BAR0: registers (4 KiB) and the doorbells of up to 1023 queue pairs (§3.1: DSTRD 0). A power
    // of two as a memory BAR must be; Linux maps NVME_REG_DBS + 4096 of it at probe
    // (drivers/nvme/host/pci.c nvme_remap_bar), so at least 8 KiB.
    static constexpr u64 BAR0_BYTES = 0x4000;
    static constexpr u32 MDTS_LOG2 = 7;                   // 2^7 pages = 512 KiB per command.
    static constexpr u64 MAX_TRANSFER_BYTES = HOST_PAGE << MDTS_LOG2;
    static constexpr u32 AER_LIMIT = 4;                   // Identify AERL 3 (0-based).
    static constexpr u32 ERROR_LOG_ENTRIES = 4;           // Identify ELPE 3 (0-based).
    static constexpr u32 MAX_PENDING_EVENTS = 8;
    static constexpr u16 ADMIN_QUEUE_MAX_ENTRIES = 4096;  // AQA fields are 12 bits (§3.1.8).

    NvmeController(NvmeControllerConfig, mem::GuestMemory const&, BlockBackend&, NvmeInterrupts&);
    NvmeController(NvmeController const&) = delete;
    NvmeController& operator=(NvmeController const&) = delete;

    // BAR0 accesses: 4-byte accesses to any register, 8-byte ones to CAP, ASQ and ACQ (Linux's
    // lo_hi_writeq and readq). Anything else reads as zeroes / is ignored with a log.
    void mmio_read(u64 offset, std::span<std::byte> data);
    void mmio_write(u64 offset, std::span<std::byte const> data);
    // An ioeventfd fired for the doorbell at `offset` (the value was not kept): with shadow
    // doorbells on, the engine reads the value the guest stored in the shadow buffer; otherwise
    // the kick is ignored with a log (the wiring must not route doorbells through value-less
    // ioeventfds then; see NvmeInterrupts::shadow_doorbells).
    void doorbell_kick(u64 offset);
    // A back-end finished the request submitted with `tag`: 0 or a negative errno.
    void on_io_complete(u64 tag, i32 result);
    // A batch from one back-end wake-up: one interrupt per CQ for all of them.
    void on_io_complete(std::span<BlockCompletion const> batch);

    // For the owner and tests.
    bool enabled() const { return (m_csts & CSTS_RDY) != 0; }
    bool shadow_doorbells_enabled() const { return m_shadow_doorbells != 0; }
    bool fatal() const { return (m_csts & CSTS_CFS) != 0; }
    u32 backend_in_flight() const { return m_backend_outstanding; }
    NvmeStats const& stats() const { return m_stats; }
    NvmeControllerConfig const& config() const { return m_config; }
    // The traffic recorder's observer (nullptr: off, the default). Set before the guest runs.
    void set_command_tap(CommandTap* tap) { m_tap = tap; }

private:
    struct SubmissionQueue {
        bool live { false };
        u64 base { 0 };
        u32 size { 0 };
        u32 head { 0 };
        u32 tail { 0 };
        u16 cqid { 0 };
        u32 in_flight { 0 };     // Fetched, completion not yet posted to the CQ.
        bool deleting { false }; // Delete I/O SQ waits for in_flight to drain.
        u16 delete_cid { 0 };
    };
    struct CompletionQueue {
        bool live { false };
        u64 base { 0 };
        u32 size { 0 };
        u32 head { 0 };
        u32 tail { 0 };
        bool phase { true };
        bool interrupts { false };
        u16 vector { 0 };
        u32 sq_refs { 0 };
        bool irq_due { false };
        std::deque<CompletionEntry> backlog; // Completions waiting for the guest to free entries.
    };
    // One command between fetch and completion. `parts` back-end requests are outstanding.
    struct Slot {
        bool used { false };
        bool orphan { false }; // Its controller was reset: the completion is dropped.
        u32 generation { 0 };
        u16 sqid { 0 };
        u16 cid { 0 };
        BlockOp op { BlockOp::Read };
        u32 parts { 0 };
        Status status { Status::Success };
        u64 lba { 0 };
        u64 bytes { 0 };
        Segments segments;
    };
    static constexpr u16 INTERNAL_SQID = 0xFFFF; // The shutdown flush.

    struct Completion {
        Status status { Status::Success };
        u32 dw0 { 0 };
        bool dnr { true };
    };

    // Registers (nvme_controller.cpp).
    u64 cap() const;
    u32 read_register32(u64 offset) const;
    void write_register32(u64 offset, u32 value);
    void write_cc(u32 value);
    void enable();
    void begin_reset();
    void finish_reset_if_drained();
    void progress_shutdown();
    void doorbell(u64 offset, u32 value);
    void sq_tail_written(u16 qid, u32 value, u64 offset);
    void cq_head_written(u16 qid, u32 value, u64 offset);
    std::optional<u32> shadow_value(u64 index);
    void write_event_index(u64 index, u32 value);
    bool refresh_cq_head(u16 cqid);
    void invalid_doorbell(u32 info, u64 offset, u32 value);

    // Queues (nvme_controller.cpp).
    void process_sq(u16 sqid);
    void post(u16 sqid, u16 cid, Completion);
    void post_entry(u16 cqid, CompletionEntry const&);
    bool write_cqe(CompletionQueue&, CompletionEntry const&);
    void drain_backlog(u16 cqid);
    void raise_due_interrupts();
    void sq_entry_retired(u16 sqid);
    void complete_part(u64 tag, i32 result);
    void fail_controller(std::string_view why, u64 detail);

    // Admin commands (nvme_admin.cpp).
    void admin_command(SubmissionEntry const&);
    Completion create_io_cq(SubmissionEntry const&);
    Completion create_io_sq(SubmissionEntry const&);
    Completion delete_io_cq(SubmissionEntry const&);
    bool delete_io_sq(SubmissionEntry const&, Completion&); // False: deferred until drained.
    Completion identify(SubmissionEntry const&);
    Completion get_log_page(SubmissionEntry const&);
    Completion set_features(SubmissionEntry const&);
    Completion get_features(SubmissionEntry const&);
    Completion doorbell_buffer_config(SubmissionEntry const&);
    Completion send_to_guest(SubmissionEntry const&, std::span<std::byte const>);
    void queue_event(u32 type, u32 info, u8 log_page);
    void deliver_events();
    void record_error(u16 sqid, u16 cid, Status, u64 lba);

    // I/O commands (nvme_io.cpp).
    void io_command(u16 sqid, SubmissionEntry const&);
    std::optional<Completion> start_io(u16 sqid, SubmissionEntry const&);
    std::optional<Completion> start_read_write(u16 sqid, SubmissionEntry const&, bool write);
    std::optional<Completion> start_write_zeroes(u16 sqid, SubmissionEntry const&);
    std::optional<Completion> start_dataset_management(u16 sqid, SubmissionEntry const&);
    std::optional<Completion> start_flush(u16 sqid, SubmissionEntry const&);
    u32 allocate_slot(u16 sqid, u16 cid, BlockOp);
    void release_slot(u32 index);
    void submit_part(u32 index, BlockOp, bool fua, u64 offset, u64 length);
    static u64 tag_of(u32 index, u32 generation) { return (u64 { generation } << 32) | index; }

    void guest_error(std::string_view what, u64 detail);
    u64 namespace_lbas() const { return m_backend.size_bytes() >> LBA_SHIFT; }
    bool namespace_read_only() const { return m_backend.read_only(); }

    NvmeControllerConfig m_config;
    mem::GuestMemory const& m_memory;
    BlockBackend& m_backend;
    NvmeInterrupts& m_interrupts;

    // Register state.
    u32 m_cc { 0 };
    u32 m_csts { 0 };
    u32 m_aqa { 0 };
    u64 m_asq { 0 };
    u64 m_acq { 0 };
    u32 m_intms { 0 };
    bool m_resetting { false };       // CC.EN 1->0 with back-end I/O in flight: RDY stays 1.
    bool m_shutdown_requested { false };
    bool m_shutdown_flush_sent { false };

    std::vector<SubmissionQueue> m_sqs; // Index = queue id; 0 is the admin queue.
    std::vector<CompletionQueue> m_cqs;
    std::vector<u16> m_irq_due;
    std::vector<Slot> m_slots;
    std::vector<u32> m_free_slots;
    u32 m_backend_outstanding { 0 }; // Back-end requests not yet completed (orphans included).
    bool m_in_process { false };     // Guards against a back-end calling back from submit().

    // Admin state reset by CC.EN 1->0.
    u16 m_queues_granted { 0 };      // Number of Queues (0-based count of pairs + 1 = granted).
    bool m_queues_set { false };
    u32 m_arbitration { 0 };
    u32 m_power_state { 0 };
    u32 m_temperature_threshold { 0 };
    u32 m_error_recovery { 0 };
    bool m_write_cache { true };
    u32 m_interrupt_coalescing { 0 };
    u32 m_write_atomicity { 0 };
    u32 m_async_event_config { 0 };
    u64 m_shadow_doorbells { 0 }; // Doorbell Buffer Config: shadow page GPA (0 = off).
    u64 m_event_indexes { 0 };    // Its EventIdx page.
    std::vector<u16> m_aer_cids;
    std::deque<u32> m_pending_events;
    std::array<bool, 8> m_event_masked {};
    std::array<ErrorLogEntry, ERROR_LOG_ENTRIES> m_error_log {};
    u64 m_error_count { 0 };

    NvmeStats m_stats;
    log::RateLimit m_log_limit { 20, 2 };
    CommandTap* m_tap { nullptr };
    std::vector<u64> m_tap_list; // PRP list entries walked, for m_tap.
};

} // namespace vmm::nvme

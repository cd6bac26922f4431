// SPDX-License-Identifier: MIT
// GPADL table: assembles GPADL_HEADER + GPADL_BODY messages into validated page lists, and tracks
// which GPADLs are in use by open channels so a teardown can be deferred until close.
//
// Spec: guest-interface §6.6, §10.5; Linux drivers/hv/channel.c:311-553 (guest side).
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "base/types.hpp"
#include "devices/vmbus/message_parser.hpp"
#include "mem/gpa.hpp"
#include "mem/guest_memory.hpp"

namespace vmm::vmbus {

// One validated range: every page is guest RAM.
struct GpadlRange {
    u32 byte_offset;
    u32 byte_count;
    std::vector<mem::Gpn> pages;
};

struct Gpadl {
    u32 id { 0 };
    u32 child_relid { 0 };
    std::vector<GpadlRange> ranges;
    bool in_use { false };            // Backs an open channel's rings.
    bool held { false };              // Acquired by its channel's device (ChannelPort::acquire_gpadl).
    bool teardown_pending { false };  // TEARDOWN arrived while in use or held: answer at release.

    // The pages of a single page-aligned range (what a ring GPADL must be), else empty.
    std::span<mem::Gpn const> ring_pages() const;
};

// GPADL_CREATED to send: `status` is CHANNEL_STATUS_SUCCESS or a failure.
struct GpadlCompletion {
    u32 child_relid;
    u32 gpadl;
    u32 status;
};

enum class Teardown : u8 {
    TornDown, // Removed (or never existed): send GPADL_TORNDOWN now.
    Deferred, // In use by an open channel or held by its device: GPADL_TORNDOWN on release.
};

class GpadlTable {
public:
    // Bounds for a hostile guest: GPADLs alive at once (created + in progress). The page count of
    // one GPADL is already capped by the u16 range_buflen (at most 8190 PFNs).
    static constexpr std::size_t MAX_GPADLS = 256;

    explicit GpadlTable(mem::GuestMemory const& memory)
        : m_memory(memory)
    {
    }

    // `relid_offered` says whether child_relid names a live offer. Returns the GPADL_CREATED to
    // send (success once all range data has arrived, failure on any validation error), or nullopt
    // while bodies are still expected.
    std::optional<GpadlCompletion> on_header(GpadlHeaderMessage const& message, bool relid_offered);
    // nullopt while more bodies are expected, or when the body names no in-progress GPADL (dropped).
    std::optional<GpadlCompletion> on_body(GpadlBodyMessage const& message);

    Teardown teardown(u32 gpadl);
    Gpadl const* find_created(u32 gpadl) const;
    // Marks a created GPADL as backing an open channel.
    void set_in_use(u32 gpadl, bool in_use);
    // After a channel closes: true if a deferred teardown completed (send GPADL_TORNDOWN).
    bool release(u32 gpadl);
    // A device maps a data GPADL of its channel `relid`; not a ring, not already held.
    Result<Gpadl const*> hold(u32 gpadl, u32 relid);
    // The device let go: true if a deferred teardown completed (send GPADL_TORNDOWN).
    bool unhold(u32 gpadl);
    // Drops every GPADL of a relid (rescind: the guest skips the teardown, guest-interface §6.8).
    void remove_relid(u32 relid);
    void clear();

    std::size_t created_count() const { return m_created.size(); }
    std::map<u32, Gpadl> const& created() const { return m_created; }
    std::size_t in_progress_count() const { return m_in_progress.size(); }
    u64 rejected() const { return m_rejected; }
    // Pages of a created GPADL (0 if unknown).
    std::size_t page_count(u32 gpadl) const;

private:
    struct InProgress {
        u32 child_relid;
        u16 rangecount;
        std::size_t expected_words;
        std::vector<u64> words;
    };
    GpadlCompletion finish(u32 gpadl, InProgress&& assembly);
    Result<std::vector<GpadlRange>> validate(InProgress const& assembly) const;
    GpadlCompletion reject(u32 relid, u32 gpadl, char const* why);

    mem::GuestMemory const& m_memory; // Owned by the machine; outlives the table.
    std::map<u32, InProgress> m_in_progress;
    std::map<u32, Gpadl> m_created;
    u64 m_rejected { 0 };
};

} // namespace vmm::vmbus

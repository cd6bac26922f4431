// SPDX-License-Identifier: MIT
// GpadlView: a device's handle on a guest GPADL (e.g. netvsc's receive and send buffers): the
// GPADL's ranges laid end to end as one byte space, read and written through GuestMemory's
// checked accessors. Every page was validated as guest RAM when the GPADL was created
// (gpadl.cpp); the accessors check again, so a page that stopped being RAM fails cleanly.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "base/types.hpp"
#include "mem/gpa.hpp"
#include "mem/guest_memory.hpp"

namespace vmm::vmbus {

struct GpadlRange;

class GpadlView {
public:
    GpadlView(mem::GuestMemory const& memory, u32 id, std::span<GpadlRange const> ranges);

    u32 id() const { return m_id; }
    u64 size_bytes() const { return m_size; }
    // [offset, offset + out.size()) must lie inside size_bytes(); may cross pages and ranges.
    Result<void> read(u64 offset, std::span<std::byte> out) const;
    Result<void> write(u64 offset, std::span<std::byte const> in) const;

private:
    struct Piece {
        u64 view_offset; // Where this range starts in the view.
        u32 byte_offset; // Into its first page.
        u32 byte_count;
        std::vector<mem::Gpn> pages;
    };
    template<typename Bytes, typename Access>
    Result<void> walk(u64 offset, Bytes bytes, Access access) const;

    mem::GuestMemory const* m_memory;
    u32 m_id;
    u64 m_size { 0 };
    std::vector<Piece> m_pieces;
};

} // namespace vmm::vmbus

// SPDX-License-Identifier: MIT
// GpadlView: checked byte access to a GPADL's pages; see gpadl_view.hpp.
#include "devices/vmbus/gpadl_view.hpp"

#include <algorithm>

#include "devices/vmbus/gpadl.hpp"

namespace vmm::vmbus {

GpadlView::GpadlView(mem::GuestMemory const& memory, u32 id, std::span<GpadlRange const> ranges)
    : m_memory(&memory)
    , m_id(id)
{
    for (auto const& range : ranges) {
        m_pieces.push_back(Piece { m_size, range.byte_offset, range.byte_count, range.pages });
        m_size += range.byte_count;
    }
}

template<typename Bytes, typename Access>
Result<void> GpadlView::walk(u64 offset, Bytes bytes, Access access) const
{
    if (offset > m_size || bytes.size() > m_size - offset)
        return fail(Errc::OutOfRange, "gpadl view access", offset);
    std::size_t done = 0;
    while (done < bytes.size()) {
        u64 at = offset + done;
        // The last piece starting at or before `at` (pieces are sorted by view_offset).
        auto piece = std::upper_bound(m_pieces.begin(), m_pieces.end(), at,
                         [](u64 value, Piece const& p) { return value < p.view_offset; })
            - 1;
        u64 within = piece->byte_offset + (at - piece->view_offset); // From the first page's start.
        std::size_t page_index = within / mem::PAGE_SIZE;
        u64 page_offset = within % mem::PAGE_SIZE;
        u64 piece_left = piece->view_offset + piece->byte_count - at;
        std::size_t chunk = std::min<u64>({ bytes.size() - done, mem::PAGE_SIZE - page_offset, piece_left });
        VMM_ASSERT(page_index < piece->pages.size()); // Page count covers offset + count (gpadl.cpp).
        auto gpa = mem::Gpa { piece->pages[page_index].address().raw() + page_offset };
        VMM_TRY(access(gpa, bytes.subspan(done, chunk)));
        done += chunk;
    }
    return {};
}

Result<void> GpadlView::read(u64 offset, std::span<std::byte> out) const
{
    return walk(offset, out, [this](mem::Gpa gpa, std::span<std::byte> part) { return m_memory->read(gpa, part); });
}

Result<void> GpadlView::write(u64 offset, std::span<std::byte const> in) const
{
    return walk(offset, in, [this](mem::Gpa gpa, std::span<std::byte const> part) { return m_memory->write(gpa, part); });
}

} // namespace vmm::vmbus

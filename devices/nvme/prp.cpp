// SPDX-License-Identifier: MIT
#include "devices/nvme/prp.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "base/error.hpp"

namespace vmm::nvme {

namespace {

constexpr u64 PAGE = HOST_PAGE;
constexpr u64 ENTRIES_PER_PAGE = PAGE / sizeof(u64);

// Appends the host view of [gpa, gpa + size) (inside one page) or fails with Data Transfer
// Error: the address is not RAM (a hole, MMIO, unplugged hot-add memory, past the end).
std::expected<void, Status> append(mem::GuestMemory const& memory, u64 gpa, u64 size, Segments& out)
{
    auto view = memory.contiguous(mem::Gpa { gpa }, size);
    if (!view.has_value())
        return std::unexpected(Status::DataTransferError);
    if (!out.empty() && out.back().data() + out.back().size() == view->data())
        out.back() = std::span { out.back().data(), out.back().size() + view->size() };
    else
        out.push_back(*view);
    return {};
}

} // namespace

std::expected<void, Status> map_prps(mem::GuestMemory const& memory, u64 prp1, u64 prp2, u64 length, Segments& out,
    std::vector<u64>* list_entries)
{
    VMM_ASSERT(length > 0);
    out.clear();
    // PRP1 may start anywhere in a page but is dword aligned (§4.3, Figure 108: bits 1:0 are 0).
    if ((prp1 & 0x3) != 0)
        return std::unexpected(Status::InvalidPrpOffset);
    u64 const first = std::min(length, PAGE - (prp1 & (PAGE - 1)));
    if (auto r = append(memory, prp1, first, out); !r)
        return r;
    u64 remaining = length - first;
    if (remaining == 0)
        return {};
    if (remaining <= PAGE) {
        // PRP2 is the second (and last) data page: every entry after the first has offset 0.
        if ((prp2 & (PAGE - 1)) != 0)
            return std::unexpected(Status::InvalidPrpOffset);
        return append(memory, prp2, remaining, out);
    }
    // PRP2 points at a PRP list (qword aligned, may start inside a page). Each list page's last
    // entry points at the next list page while more than one data page is left (§4.3).
    if ((prp2 & 0x7) != 0)
        return std::unexpected(Status::InvalidPrpOffset);
    u64 list = prp2;
    u64 pages_left = (remaining + PAGE - 1) / PAGE;
    std::array<u64, ENTRIES_PER_PAGE> entries;
    while (pages_left > 0) {
        u64 const in_page = (PAGE - (list & (PAGE - 1))) / sizeof(u64);
        // Read only the entries this transfer needs: one more than the data pages left if the
        // list continues on another page.
        u64 const wanted = std::min(in_page, pages_left);
        bool const chained = pages_left > in_page;
        u64 const to_read = chained ? in_page : wanted;
        auto bytes = std::as_writable_bytes(std::span { entries.data(), to_read });
        if (!memory.read(mem::Gpa { list }, bytes).has_value())
            return std::unexpected(Status::DataTransferError);
        if (list_entries != nullptr)
            list_entries->insert(list_entries->end(), entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(to_read));
        u64 const data_entries = chained ? in_page - 1 : wanted;
        for (u64 i = 0; i < data_entries; ++i) {
            if ((entries[i] & (PAGE - 1)) != 0)
                return std::unexpected(Status::InvalidPrpOffset);
            u64 const size = std::min(remaining, PAGE);
            if (auto r = append(memory, entries[i], size, out); !r)
                return r;
            remaining -= size;
            --pages_left;
        }
        if (chained) {
            list = entries[in_page - 1];
            if ((list & (PAGE - 1)) != 0)
                return std::unexpected(Status::InvalidPrpOffset);
        }
    }
    return {};
}

void copy_to_segments(Segments const& segments, std::span<std::byte const> from)
{
    std::size_t done = 0;
    for (auto const& segment : segments) {
        VMM_ASSERT(done + segment.size() <= from.size());
        std::memcpy(segment.data(), from.data() + done, segment.size());
        done += segment.size();
    }
    VMM_ASSERT(done == from.size());
}

void copy_from_segments(Segments const& segments, std::span<std::byte> to)
{
    std::size_t done = 0;
    for (auto const& segment : segments) {
        VMM_ASSERT(done + segment.size() <= to.size());
        std::memcpy(to.data() + done, segment.data(), segment.size());
        done += segment.size();
    }
    VMM_ASSERT(done == to.size());
}

} // namespace vmm::nvme

// SPDX-License-Identifier: MIT
// GPADL assembly and validation (guest-interface §10.5): rangecount, byte_offset < 4096, byte_count > 0,
// PFN count per range = ceil((offset + count) / 4096) consistent with range_buflen, bodies only
// for an in-progress id and never past the declared length, every PFN inside guest RAM, ids
// unique.
#include "devices/vmbus/gpadl.hpp"

#include "base/log.hpp"

namespace vmm::vmbus {

std::span<mem::Gpn const> Gpadl::ring_pages() const
{
    if (ranges.size() != 1 || ranges[0].byte_offset != 0 || ranges[0].byte_count % mem::PAGE_SIZE != 0)
        return {};
    return ranges[0].pages;
}

GpadlCompletion GpadlTable::reject(u32 relid, u32 gpadl, char const* why)
{
    ++m_rejected;
    VMM_GUEST_WARN("vmbus", "gpadl {:#x} (relid {}) refused: {}", gpadl, relid, why);
    return GpadlCompletion { relid, gpadl, CHANNEL_STATUS_UNSUCCESSFUL };
}

std::optional<GpadlCompletion> GpadlTable::on_header(GpadlHeaderMessage const& message, bool relid_offered)
{
    u32 relid = message.child_relid;
    u32 id = message.gpadl;
    if (!relid_offered)
        return reject(relid, id, "relid is not an offered channel");
    if (m_created.contains(id) || m_in_progress.contains(id))
        return reject(relid, id, "duplicate gpadl id");
    if (m_created.size() + m_in_progress.size() >= MAX_GPADLS)
        return reject(relid, id, "too many gpadls");
    // Each range is at least a head word and one PFN (16 bytes); the data is u64 words.
    if (message.rangecount == 0 || message.range_buflen % sizeof(u64) != 0
        || message.range_buflen < u32 { message.rangecount } * 2 * sizeof(u64))
        return reject(relid, id, "bad rangecount or range_buflen");
    std::size_t expected_words = message.range_buflen / sizeof(u64);
    if (message.range_words.size() > expected_words)
        return reject(relid, id, "header carries more than range_buflen");

    InProgress assembly { relid, message.rangecount, expected_words, message.range_words };
    if (assembly.words.size() == expected_words)
        return finish(id, std::move(assembly));
    m_in_progress.emplace(id, std::move(assembly));
    return std::nullopt;
}

std::optional<GpadlCompletion> GpadlTable::on_body(GpadlBodyMessage const& message)
{
    auto it = m_in_progress.find(message.gpadl);
    if (it == m_in_progress.end()) {
        ++m_rejected;
        VMM_GUEST_WARN("vmbus", "gpadl body for gpadl {:#x} that is not in progress", message.gpadl);
        return std::nullopt;
    }
    InProgress& assembly = it->second;
    if (message.range_words.size() > assembly.expected_words - assembly.words.size()) {
        u32 relid = assembly.child_relid;
        m_in_progress.erase(it);
        return reject(relid, message.gpadl, "body exceeds range_buflen");
    }
    assembly.words.insert(assembly.words.end(), message.range_words.begin(), message.range_words.end());
    if (assembly.words.size() < assembly.expected_words)
        return std::nullopt;
    InProgress complete = std::move(assembly);
    m_in_progress.erase(it);
    return finish(message.gpadl, std::move(complete));
}

Result<std::vector<GpadlRange>> GpadlTable::validate(InProgress const& assembly) const
{
    std::vector<GpadlRange> ranges;
    std::size_t word = 0;
    for (u32 index = 0; index < assembly.rangecount; ++index) {
        if (word >= assembly.words.size())
            return fail(Errc::GuestProtocol, "gpadl ranges exceed range_buflen", index);
        // struct gpa_range head: u32 byte_count, u32 byte_offset (include/linux/hyperv.h:47-51).
        u64 head = assembly.words[word++];
        GpadlRange range { static_cast<u32>(head >> 32), static_cast<u32>(head), {} };
        if (range.byte_offset >= mem::PAGE_SIZE || range.byte_count == 0)
            return fail(Errc::GuestProtocol, "gpadl range offset/count", index);
        u64 page_count = (u64 { range.byte_offset } + range.byte_count + mem::PAGE_SIZE - 1) / mem::PAGE_SIZE;
        if (page_count > assembly.words.size() - word)
            return fail(Errc::GuestProtocol, "gpadl range pfn count exceeds range_buflen", index);
        range.pages.reserve(page_count);
        for (u64 i = 0; i < page_count; ++i) {
            u64 pfn = assembly.words[word++];
            if (pfn >= mem::MAX_GPN || !m_memory.is_ram(mem::Gpn { pfn }.address(), mem::PAGE_SIZE))
                return fail(Errc::GuestProtocol, "gpadl pfn is not guest RAM", pfn);
            range.pages.push_back(mem::Gpn { pfn });
        }
        ranges.push_back(std::move(range));
    }
    if (word != assembly.words.size())
        return fail(Errc::GuestProtocol, "gpadl range_buflen larger than its ranges", word);
    return ranges;
}

GpadlCompletion GpadlTable::finish(u32 gpadl, InProgress&& assembly)
{
    auto ranges = validate(assembly);
    if (!ranges) {
        ++m_rejected;
        VMM_GUEST_WARN("vmbus", "gpadl {:#x} refused: {}", gpadl, ranges.error());
        return GpadlCompletion { assembly.child_relid, gpadl, CHANNEL_STATUS_UNSUCCESSFUL };
    }
    Gpadl created;
    created.id = gpadl;
    created.child_relid = assembly.child_relid;
    created.ranges = std::move(*ranges);
    m_created.emplace(gpadl, std::move(created));
    return GpadlCompletion { assembly.child_relid, gpadl, CHANNEL_STATUS_SUCCESS };
}

Teardown GpadlTable::teardown(u32 gpadl)
{
    // Unknown ids are answered too: the guest waits for TORNDOWN without timeout (guest-interface §6.7).
    m_in_progress.erase(gpadl);
    auto it = m_created.find(gpadl);
    if (it == m_created.end())
        return Teardown::TornDown;
    if (it->second.in_use || it->second.held) {
        it->second.teardown_pending = true;
        return Teardown::Deferred;
    }
    m_created.erase(it);
    return Teardown::TornDown;
}

Gpadl const* GpadlTable::find_created(u32 gpadl) const
{
    auto it = m_created.find(gpadl);
    return it == m_created.end() ? nullptr : &it->second;
}

void GpadlTable::set_in_use(u32 gpadl, bool in_use)
{
    auto it = m_created.find(gpadl);
    VMM_ASSERT(it != m_created.end());
    it->second.in_use = in_use;
}

bool GpadlTable::release(u32 gpadl)
{
    auto it = m_created.find(gpadl);
    if (it == m_created.end())
        return false;
    it->second.in_use = false;
    if (!it->second.teardown_pending || it->second.held)
        return false;
    m_created.erase(it);
    return true;
}

Result<Gpadl const*> GpadlTable::hold(u32 gpadl, u32 relid)
{
    auto it = m_created.find(gpadl);
    if (it == m_created.end() || it->second.child_relid != relid)
        return fail(Errc::GuestProtocol, "gpadl unknown on this channel", gpadl);
    if (it->second.in_use || it->second.held || it->second.teardown_pending)
        return fail(Errc::GuestProtocol, "gpadl is a ring, already mapped or being torn down", gpadl);
    it->second.held = true;
    return &it->second;
}

bool GpadlTable::unhold(u32 gpadl)
{
    auto it = m_created.find(gpadl);
    if (it == m_created.end() || !it->second.held)
        return false;
    it->second.held = false;
    if (!it->second.teardown_pending || it->second.in_use)
        return false;
    m_created.erase(it);
    return true;
}

void GpadlTable::remove_relid(u32 relid)
{
    std::erase_if(m_created, [relid](auto const& entry) { return entry.second.child_relid == relid; });
    std::erase_if(m_in_progress, [relid](auto const& entry) { return entry.second.child_relid == relid; });
}

void GpadlTable::clear()
{
    m_created.clear();
    m_in_progress.clear();
}

std::size_t GpadlTable::page_count(u32 gpadl) const
{
    auto const* found = find_created(gpadl);
    if (!found)
        return 0;
    std::size_t pages = 0;
    for (auto const& range : found->ranges)
        pages += range.pages.size();
    return pages;
}

} // namespace vmm::vmbus

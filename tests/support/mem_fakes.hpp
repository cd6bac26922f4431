// SPDX-License-Identifier: MIT
// Recording fakes for mem/ interfaces: FakeDiscard (DiscardBackend) and FakeMemslots
// (MemslotSink). Real implementations of the interfaces that remember every call and can fail
// on demand.
#pragma once

#include <cerrno>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "mem/discard_backend.hpp"
#include "mem/memslots.hpp"
#include "mem/page_range_set.hpp"

namespace vmm::test {

class FakeDiscard final : public mem::DiscardBackend {
public:
    Result<void> discard(mem::PageRange range) override
    {
        if (fail_next) {
            fail_next = false;
            return fail_errno("fallocate(PUNCH_HOLE)", EIO);
        }
        calls.push_back(range);
        discarded.insert(range);
        return {};
    }
    bool fail_next = false;
    std::vector<mem::PageRange> calls;
    mem::PageRangeSet discarded; // Union of every discarded page.
};

class FakeMemslots final : public mem::MemslotSink {
public:
    struct Slot {
        mem::Gpa gpa;
        std::span<std::byte> host;
    };
    Result<void> add(std::uint32_t slot, mem::Gpa gpa, std::span<std::byte> host) override
    {
        if (fail_next_add) {
            fail_next_add = false;
            return fail_errno("KVM_SET_USER_MEMORY_REGION", ENOMEM);
        }
        if (slots.contains(slot))
            return fail(Errc::Overlap, "slot already in use", slot);
        for (auto const& [id, existing] : slots) {
            bool overlaps = gpa.raw() < existing.gpa.raw() + existing.host.size()
                && existing.gpa.raw() < gpa.raw() + host.size();
            if (overlaps)
                return fail(Errc::Overlap, "memslots overlap", slot);
        }
        slots[slot] = Slot { gpa, host };
        ++adds;
        mapped_pages.insert(mem::PageRange { gpa.page(), mem::PageCount::from_bytes_floor(host.size()) });
        return {};
    }
    Result<void> remove(std::uint32_t slot) override
    {
        auto it = slots.find(slot);
        if (it == slots.end())
            return fail(Errc::InvalidArgument, "no such slot", slot);
        mapped_pages.remove(mem::PageRange { it->second.gpa.page(), mem::PageCount::from_bytes_floor(it->second.host.size()) });
        slots.erase(it);
        ++removes;
        return {};
    }
    bool fail_next_add = false;
    std::map<std::uint32_t, Slot> slots;
    mem::PageRangeSet mapped_pages; // Pages currently inside a registered slot.
    std::uint32_t adds = 0;
    std::uint32_t removes = 0;
};

} // namespace vmm::test

// SPDX-License-Identifier: MIT
#include "vmm/guest_ram_backends.hpp"

#include <sys/mman.h>

#include "vmm/machine.hpp"

namespace vmm {

Result<u64> KvmMemslotSink::window_offset(std::span<std::byte> host) const
{
    auto const window = m_window.bytes();
    if (host.empty() || host.data() < window.data() || host.data() + host.size() > window.data() + window.size())
        return fail(Errc::InvalidArgument, "memslot host range outside the hot-add window");
    return static_cast<u64>(host.data() - window.data());
}

Result<void> KvmMemslotSink::add(std::uint32_t slot, mem::Gpa gpa, std::span<std::byte> host)
{
    if (slot < FIRST_HOT_ADD_SLOT)
        return fail(Errc::InvalidArgument, "memslot id belongs to boot RAM", slot);
    u64 const offset = VMM_TRY(window_offset(host));
    std::lock_guard guard { m_lock };
    if (m_slots.contains(slot))
        return fail(Errc::Overlap, "memslot already added", slot);
    VMM_TRY(m_window.protect(offset, host.size(), PROT_READ | PROT_WRITE));
    if (auto added = m_vm.set_user_memory_region(slot, gpa, host); !added) {
        // Undo so the window stays all-or-nothing per slot; the original error matters more.
        [[maybe_unused]] auto undone = m_window.protect(offset, host.size(), PROT_NONE);
        return std::unexpected(added.error());
    }
    m_slots.emplace(slot, host);
    return {};
}

Result<void> KvmMemslotSink::remove(std::uint32_t slot)
{
    std::lock_guard guard { m_lock };
    auto it = m_slots.find(slot);
    if (it == m_slots.end())
        return fail(Errc::InvalidArgument, "memslot not added", slot);
    VMM_TRY(m_vm.remove_user_memory_region(slot));
    u64 const offset = VMM_TRY(window_offset(it->second));
    VMM_TRY(m_window.advise(offset, it->second.size(), MADV_DONTNEED));
    VMM_TRY(m_window.protect(offset, it->second.size(), PROT_NONE));
    m_slots.erase(it);
    return {};
}

Result<void> GuestRamDiscard::discard(mem::PageRange range)
{
    mem::Gpa const gpa = range.start.address();
    u64 const bytes = range.count.bytes();
    auto const& layout = m_machine.layout();
    if (layout.hot_add_size_bytes > 0 && gpa.raw() >= layout.hot_add_base_gpa
        && gpa.raw() - layout.hot_add_base_gpa < layout.hot_add_size_bytes) {
        u64 const offset = gpa.raw() - layout.hot_add_base_gpa;
        return m_machine.hot_add_window().advise(offset, bytes, MADV_DONTNEED);
    }
    return m_machine.boot_ram().discard(gpa, bytes);
}

} // namespace vmm

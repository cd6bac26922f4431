// SPDX-License-Identifier: MIT
// GuestPhysicalMap: the one source of truth for what each guest page is: boot RAM, the hot-add
// window (address space reserved up to max memory), hot-added (backed) memory and ballooned
// pages. Every page range a guest reports as ballooned is validated here; refusals are counted
// by reason and never reach the discard path.
#pragma once

#include <array>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string_view>

#include "base/error.hpp"
#include "mem/page_range_set.hpp"

namespace vmm::mem {

// Why a guest-reported balloon range was refused (index into rejected-range counters).
enum class RejectReason : std::uint8_t {
    Malformed,         // count 0, start + count overflows or ends above MAX_GPN.
    OutsideRam,        // Not guest RAM: outside boot RAM and backed hot-added memory (MMIO hole,
                       // unplugged window...) or firmware-reserved (EBDA, ACPI tables).
    AlreadyBallooned,  // Every page was already ballooned (a duplicate report).
    OverlapsBallooned, // Partly ballooned already.
    ExceedsRequest,    // More pages than the outstanding balloon request asked for.
    Unsolicited,       // No balloon request outstanding.
};
inline constexpr std::size_t REJECT_REASON_COUNT = 6;
std::string_view reject_reason_name(RejectReason);

class GuestPhysicalMap {
public:
    // `boot_ram`: the e820 RAM ranges the guest boots with (any order, disjoint).
    // `hot_add_window`: address space for hot-add, disjoint from boot RAM; nullopt = no hot-add.
    // `firmware_reserved`: pages inside boot RAM the guest does not own (e820-reserved: EBDA,
    // BIOS area, ACPI tables). They count as boot RAM but balloon reports naming them are
    // refused as OutsideRam (firmware::firmware_reserved_pages()).
    static Result<GuestPhysicalMap> create(std::span<PageRange const> boot_ram,
        std::optional<PageRange> hot_add_window, std::span<PageRange const> firmware_reserved = {});

    GuestPhysicalMap(GuestPhysicalMap&&) noexcept = default;
    GuestPhysicalMap& operator=(GuestPhysicalMap&&) noexcept = default;

    // Validates a guest-reported range without changing anything.
    std::expected<PageRange, RejectReason> check_balloon(std::uint64_t start, std::uint64_t count) const;
    // Validates and records a ballooned range of at most `max_pages` (the rest of the
    // outstanding request). A refusal is counted and changes nothing else.
    std::expected<PageRange, RejectReason> balloon(std::uint64_t start, std::uint64_t count,
        PageCount max_pages = PageCount { ~std::uint64_t { 0 } });
    // Counts a refusal decided by the caller (ExceedsRequest, Unsolicited).
    void count_rejection(RejectReason reason) { ++m_rejected[static_cast<std::size_t>(reason)]; }

    // Unballoon source: takes up to `max` pages of the lowest ballooned run (boot RAM first).
    std::optional<PageRange> take_ballooned(PageCount max);
    // Puts back a range taken with take_ballooned() that never reached the guest.
    void restore_ballooned(PageRange range);
    // Guest reboot/reconnect: the guest owns every ballooned page again. Returns how many.
    PageCount forget_ballooned();

    // Records pages the guest confirmed hot-added; they must lie in the window, not yet added.
    Result<void> add_hot_added(PageRange range);
    // Machine reset: hot-added memory is gone (and so is any ballooning inside it). Returns the
    // ranges that were hot-added, for the caller to discard.
    PageRangeSet release_hot_added();

    PageCount boot_pages() const { return m_boot.total(); }
    PageCount hot_added_pages() const { return m_hot_added.total(); }
    PageCount ballooned_pages() const { return m_ballooned.total(); }
    // Guest-visible memory: boot + hot-added - ballooned.
    PageCount current_pages() const { return m_usable.total() - m_ballooned.total(); }
    // Boot RAM plus the whole hot-add window.
    PageCount max_pages() const { return m_boot.total() + (m_window ? m_window->count : PageCount { 0 }); }
    std::optional<PageRange> hot_add_window() const { return m_window; }
    bool is_usable(PageRange range) const { return m_usable.contains_all(range); }

    PageRangeSet const& boot_ram() const { return m_boot; }
    PageRangeSet const& hot_added() const { return m_hot_added; }
    PageRangeSet const& ballooned() const { return m_ballooned; }
    std::array<std::uint64_t, REJECT_REASON_COUNT> const& rejected() const { return m_rejected; }
    std::uint64_t rejected(RejectReason reason) const { return m_rejected[static_cast<std::size_t>(reason)]; }

private:
    GuestPhysicalMap() = default;
    PageRangeSet m_boot;
    std::optional<PageRange> m_window;
    PageRangeSet m_hot_added;
    PageRangeSet m_usable; // boot ∪ hot_added, merged, so validation is one lookup.
    PageRangeSet m_reserved; // Inside boot RAM, never the guest's to balloon (a node or two).
    PageRangeSet m_ballooned;
    std::array<std::uint64_t, REJECT_REASON_COUNT> m_rejected {};
};

} // namespace vmm::mem

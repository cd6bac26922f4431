// SPDX-License-Identifier: MIT
// PciEndpoint: the config space of one type-0 function (PCI 3.0 §6.1) around a PciFunction:
// the header built from its identity, the capability list (MSI-X first, then the device's),
// BAR registers with sizing (all-ones write reads back the size mask) and relocation, the
// command register's decode and bus-master bits, and the MSI-X capability's control bits.
//
// Config space is 4 KiB of bytes with a per-byte write mask and a write-1-to-clear mask
// (read-only fields simply have mask 0), so a hostile write can only change what a guest may.
// Not thread-safe: PciRoot serialises every call.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <span>

#include "base/types.hpp"
#include "devices/pci/msix_vectors.hpp"
#include "devices/pci/pci_function.hpp"
#include "devices/pci/pci_regs.hpp"

namespace vmm::pci {

class PciEndpoint {
public:
    // `function` must outlive the endpoint; the layout it declares must be valid (a host bug
    // otherwise: asserts). `initial_bars` are the addresses firmware would assign.
    PciEndpoint(PciFunction& function, MsiSink& msi, std::array<u64, BAR_COUNT> const& initial_bars);

    PciFunction& function() { return m_function; }
    MsixVectors* msix() { return m_msix.get(); }
    std::optional<MsixLayout> const& msix_layout() const { return m_msix_layout; }

    // Config access at `offset` (< 4096). Callers have checked the access lies in one dword.
    void read(u16 offset, std::span<std::byte> data) const;
    void write(u16 offset, std::span<std::byte const> data);

    // The BAR's current guest address and size if it decodes now (implemented, enabled by the
    // command register), else nothing.
    struct Decode {
        BarKind kind;
        u64 base;
        u64 size;
    };
    std::optional<Decode> decode(u8 bar) const;
    BarLayouts const& bars() const { return m_bars; }

    u16 command() const;

private:
    u32 dword(u16 offset) const;
    void normalise_bars();
    void after_write(u16 offset, std::size_t size, u16 old_command);
    void add_capability(u8& previous_next, u16 at, u8 id, std::span<u8 const> body, std::span<u8 const> writable);

    PciFunction& m_function;
    BarLayouts m_bars;
    std::optional<MsixLayout> m_msix_layout;
    std::unique_ptr<MsixVectors> m_msix;
    u16 m_msix_cap { 0 }; // Offset of the MSI-X capability (0 = none).
    std::array<u8, CONFIG_SPACE_BYTES> m_bytes {};
    std::array<u8, CONFIG_SPACE_BYTES> m_writable {};
    std::array<u8, CONFIG_SPACE_BYTES> m_w1c {};
};

} // namespace vmm::pci

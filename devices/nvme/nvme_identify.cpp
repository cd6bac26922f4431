// SPDX-License-Identifier: MIT
#include "devices/nvme/nvme_identify.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "devices/nvme/nvme_controller.hpp"

namespace vmm::nvme {

namespace {

template<typename T>
void put(std::span<std::byte> page, std::size_t offset, T value)
{
    std::memcpy(page.data() + offset, &value, sizeof(T));
}

// ASCII fields are space padded, not NUL terminated (§1.5 "ASCII string").
void put_ascii(std::span<std::byte> page, std::size_t offset, std::size_t width, std::string_view text)
{
    for (std::size_t i = 0; i < width; ++i)
        page[offset + i] = std::byte { static_cast<unsigned char>(i < text.size() ? text[i] : ' ') };
}

// FNV-1a (64-bit): a fixed, documented hash so a disk's NGUID depends on its serial only.
u64 fnv1a(std::string_view text, u64 seed)
{
    u64 hash = seed;
    for (char c : text) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 0x100'0000'01B3ull;
    }
    return hash;
}

} // namespace

IdentifyPage identify_controller(NvmeControllerConfig const& config, ControllerLimits limits)
{
    IdentifyPage page {};
    std::span<std::byte> p { page };
    // §5.15.2.1, Figure 247.
    put<u16>(p, 0, config.pci_vendor_id);            // VID
    put<u16>(p, 2, config.pci_subsystem_vendor_id);  // SSVID
    put_ascii(p, 4, 20, config.serial);              // SN
    put_ascii(p, 24, 40, config.model);              // MN
    put_ascii(p, 64, 8, config.firmware);            // FR
    put<u8>(p, 72, 0);                               // RAB
    put<u8>(p, 76, 0);                               // CMIC: one port, one controller
    put<u8>(p, 77, static_cast<u8>(limits.mdts_log2)); // MDTS in CAP.MPSMIN pages, log2
    put<u16>(p, 78, 1);                              // CNTLID
    put<u32>(p, 80, VERSION_1_4);                    // VER
    put<u32>(p, 92, 0);                              // OAES: no notices sent
    put<u8>(p, 111, 1);                              // CNTRLTYPE: I/O controller
    put<u16>(p, 256, 1u << 8);                       // OACS: Doorbell Buffer Config only
    put<u8>(p, 258, 3);                              // ACL: 4 Aborts (0-based)
    put<u8>(p, 259, static_cast<u8>(limits.aer_limit - 1)); // AERL (0-based)
    put<u8>(p, 260, 0x03);                           // FRMW: slot 1 read-only, 1 slot
    put<u8>(p, 261, 0x04);                           // LPA: extended data (NUMDU, LPO)
    put<u8>(p, 262, static_cast<u8>(limits.error_log_entries - 1)); // ELPE (0-based)
    put<u8>(p, 263, 0);                              // NPSS: one power state
    put<u16>(p, 266, 0);                             // WCTEMP: no thermal sensor
    put<u8>(p, 512, static_cast<u8>((SQES_LOG2 << 4) | SQES_LOG2)); // SQES max|min
    put<u8>(p, 513, static_cast<u8>((CQES_LOG2 << 4) | CQES_LOG2)); // CQES
    put<u32>(p, 516, 1);                             // NN: one namespace
    put<u16>(p, 520, 0x000C);                        // ONCS: Dataset Management (2), Write Zeroes (3)
    put<u8>(p, 525, limits.write_cache_present ? 1 : 0); // VWC
    put<u32>(p, 536, 0);                             // SGLS: PRPs only
    // SUBNQN (§7.9): unique per controller, so two disks are two subsystems to the guest.
    std::string const nqn = "nqn.2024-01.dev.microvmm:nvme:" + config.serial;
    put_ascii(p, 768, std::min<std::size_t>(nqn.size(), 255), nqn);
    std::fill(p.begin() + 768 + static_cast<std::ptrdiff_t>(std::min<std::size_t>(nqn.size(), 255)), p.begin() + 1024, std::byte { 0 });
    // PSD0 (Figure 248): MP in centiwatts; 25 W like a typical SSD's maximum, operational.
    put<u16>(p, 2048, 2500);
    return page;
}

std::array<std::byte, 16> namespace_nguid(NvmeControllerConfig const& config)
{
    std::array<std::byte, 16> nguid {};
    u64 const high = fnv1a(config.serial, 0xCBF2'9CE4'8422'2325ull);
    u64 const low = fnv1a(config.serial, high);
    std::memcpy(nguid.data(), &high, 8);
    std::memcpy(nguid.data() + 8, &low, 8);
    return nguid;
}

IdentifyPage identify_namespace(NvmeControllerConfig const& config, u64 lbas, bool read_only)
{
    IdentifyPage page {};
    std::span<std::byte> p { page };
    // §5.15.2.2 (NVM command set Identify Namespace), Figure 249.
    put<u64>(p, 0, lbas);                 // NSZE
    put<u64>(p, 8, lbas);                 // NCAP
    put<u64>(p, 16, lbas);                // NUSE (not tracked: reported fully used)
    put<u8>(p, 25, 0);                    // NLBAF: one format (0-based)
    put<u8>(p, 26, 0);                    // FLBAS: format 0, no metadata
    put<u8>(p, 33, 0x01);                 // DLFEAT: deallocated blocks read as zeroes
    put<u8>(p, 99, read_only ? 1 : 0);    // NSATTR bit 0: write protected
    auto const nguid = namespace_nguid(config);
    std::memcpy(p.data() + 104, nguid.data(), nguid.size()); // NGUID
    put<u32>(p, 128, u32 { LBA_SHIFT } << 16); // LBAF0: LBADS 9 (512 B), MS 0, RP 0
    return page;
}

IdentifyPage active_namespace_list(u32 after_nsid)
{
    IdentifyPage page {};
    if (after_nsid < 1)
        put<u32>(page, 0, 1);
    return page;
}

IdentifyPage namespace_descriptors(NvmeControllerConfig const& config)
{
    // §5.15.2.3, Figure 251: one NGUID descriptor (NIDT 2, NIDL 16), then zeroes (end of list).
    IdentifyPage page {};
    put<u8>(page, 0, 2);
    put<u8>(page, 1, 16);
    auto const nguid = namespace_nguid(config);
    std::memcpy(page.data() + 4, nguid.data(), nguid.size());
    return page;
}

std::array<std::byte, LOG_SMART_BYTES> smart_log(NvmeStats const& stats, u64 error_count)
{
    // §5.14.1.2, Figure 196. Counters are honest: from this controller's life; what the VMM does
    // not know (temperature, wear) is reported as the spec's "not reported"/healthy values.
    std::array<std::byte, LOG_SMART_BYTES> log {};
    std::span<std::byte> p { log };
    put<u8>(p, 0, 0);            // Critical Warning: none
    put<u16>(p, 1, 0);           // Composite Temperature: 0 (no sensor)
    put<u8>(p, 3, 100);          // Available Spare %
    put<u8>(p, 4, 10);           // Available Spare Threshold %
    put<u8>(p, 5, 0);            // Percentage Used
    // Data units are thousands of 512-byte units, rounded up (Figure 196).
    auto const units = [](u64 bytes) { return (bytes / 512 + 999) / 1000; };
    put<u64>(p, 32, units(stats.bytes_read));
    put<u64>(p, 48, units(stats.bytes_written));
    put<u64>(p, 64, stats.read_commands);
    put<u64>(p, 80, stats.write_commands);
    put<u64>(p, 112, 1 + stats.resets); // Power Cycles: this boot plus controller resets
    put<u64>(p, 160, stats.io_errors);  // Media and Data Integrity Errors
    put<u64>(p, 176, error_count);      // Number of Error Information Log Entries
    return log;
}

std::array<std::byte, LOG_FIRMWARE_SLOT_BYTES> firmware_slot_log(NvmeControllerConfig const& config)
{
    // §5.14.1.3, Figure 198: AFI slot 1 active; FRS1 the revision Identify reports.
    std::array<std::byte, LOG_FIRMWARE_SLOT_BYTES> log {};
    put<u8>(log, 0, 1);
    put_ascii(log, 8, 8, config.firmware);
    return log;
}

} // namespace vmm::nvme

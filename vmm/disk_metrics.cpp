// SPDX-License-Identifier: MIT
#include "vmm/disk_metrics.hpp"

#include <mutex>

#include <fmt/format.h>

namespace vmm {

namespace {

void add(nvme::NvmeStats& to, nvme::NvmeStats const& from)
{
    to.read_commands += from.read_commands;
    to.write_commands += from.write_commands;
    to.bytes_read += from.bytes_read;
    to.bytes_written += from.bytes_written;
    to.flushes += from.flushes;
    to.io_errors += from.io_errors;
    to.guest_errors += from.guest_errors;
    to.resets += from.resets;
}

} // namespace

DiskMetrics::DiskMetrics(std::vector<DiskSection> const& disks, api::ApiBackend& inner)
    : ForwardingApiBackend(inner)
{
    for (auto const& disk : disks)
        m_disks.push_back(Disk { .serial = disk.serial });
}

void DiskMetrics::attach(Machine& machine)
{
    std::lock_guard guard { m_lock };
    auto* pci = machine.pci();
    if (pci == nullptr)
        return;
    auto const& live = pci->disks();
    for (std::size_t i = 0; i < m_disks.size() && i < live.size(); ++i)
        m_disks[i].live = live[i];
}

void DiskMetrics::detach(Machine&)
{
    std::lock_guard guard { m_lock };
    for (auto& disk : m_disks) {
        if (disk.live)
            add(disk.earlier, disk.live->stats());
        disk.live = nullptr;
    }
}

std::string DiskMetrics::extra_metrics()
{
    std::string out = m_inner.extra_metrics();
    if (m_disks.empty())
        return out;
    std::vector<nvme::NvmeStats> totals;
    {
        std::lock_guard guard { m_lock };
        for (auto const& disk : m_disks) {
            auto total = disk.earlier;
            if (disk.live)
                add(total, disk.live->stats());
            totals.push_back(total);
        }
    }
    auto family = [&](char const* name, char const* help, auto field) {
        out += fmt::format("# HELP microvmm_disk_{} {}\n# TYPE microvmm_disk_{} counter\n", name, help, name);
        for (std::size_t i = 0; i < m_disks.size(); ++i)
            out += fmt::format("microvmm_disk_{}{{disk=\"{}\",serial=\"{}\"}} {}\n", name, i, m_disks[i].serial, field(totals[i]));
    };
    family("read_commands_total", "NVMe Read commands started.", [](nvme::NvmeStats const& s) { return s.read_commands; });
    family("write_commands_total", "NVMe Write commands started.", [](nvme::NvmeStats const& s) { return s.write_commands; });
    family("read_bytes_total", "Bytes the guest read.", [](nvme::NvmeStats const& s) { return s.bytes_read; });
    family("write_bytes_total", "Bytes the guest wrote.", [](nvme::NvmeStats const& s) { return s.bytes_written; });
    family("flushes_total", "NVMe Flush commands (fdatasync of the image).", [](nvme::NvmeStats const& s) { return s.flushes; });
    family("io_errors_total", "Image I/O failures reported to the guest as NVMe errors.",
        [](nvme::NvmeStats const& s) { return s.io_errors; });
    family("guest_errors_total", "Guest commands or register writes refused as invalid.",
        [](nvme::NvmeStats const& s) { return s.guest_errors; });
    family("resets_total", "Controller resets (CC.EN 1 -> 0).", [](nvme::NvmeStats const& s) { return s.resets; });
    return out;
}

} // namespace vmm

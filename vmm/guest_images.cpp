// SPDX-License-Identifier: MIT
#include "vmm/guest_images.hpp"

#include "base/read_only_file.hpp"
#include "firmware/acpi/acpi_tables.hpp"
#include "firmware/boot_info.hpp"
#include "firmware/kernel_image.hpp"

namespace vmm {

Result<ReadOnlyFile> open_image(std::filesystem::path const& path, std::string_view what)
{
    auto file = ReadOnlyFile::open(path);
    if (file)
        return std::move(*file);
    if (file.error().code() == Errc::Syscall)
        return fail(Errc::Config, fmt::format("{}: cannot open {}", what, path.string()));
    return fail(Errc::Config, fmt::format("{}: {}", what, file.error().what()));
}

Result<firmware::BootCpuState> load_guest_images(mem::GuestMemory const& memory, BootSection const& boot,
    GuestImageParams const& params)
{
    // Kernel and initrd go from the page cache straight into guest RAM (pread into their final
    // guest-physical place, every bound checked first): no heap copy of either file.
    auto const ram_mib = params.ram_bytes / MIB;
    auto kernel_file = VMM_TRY(open_image(boot.kernel, "boot.kernel"));
    auto kernel = VMM_TRY(firmware::load_kernel(memory, kernel_file)
            .context("loading boot.kernel {} ({} bytes) into {} MiB of RAM", boot.kernel.string(),
                kernel_file.size(), ram_mib));
    std::optional<ReadOnlyFile> initrd;
    if (boot.initrd)
        initrd = VMM_TRY(open_image(*boot.initrd, "boot.initrd"));
    u64 const rsdp_gpa = VMM_TRY(
        firmware::write_acpi_tables(memory, firmware::AcpiConfig { params.vcpus, params.vmbus, params.pci })
            .context("writing the ACPI tables"));
    auto state = firmware::write_boot_info(memory, kernel,
        firmware::BootRequest { boot.cmdline, initrd ? &*initrd : nullptr, params.ram_bytes, rsdp_gpa, params.pci });
    if (!state && initrd)
        return std::move(state).context("placing boot.initrd {} ({} bytes, {} MiB) with {} MiB of RAM",
            boot.initrd->string(), initrd->size(), initrd->size() / MIB, ram_mib);
    return std::move(state).context("writing the boot information ({} MiB of RAM)", ram_mib);
}

} // namespace vmm

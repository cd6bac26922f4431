// SPDX-License-Identifier: MIT
#include "vmm/guest_images.hpp"

#include <fstream>

#include "firmware/acpi/acpi_tables.hpp"
#include "firmware/boot_info.hpp"
#include "firmware/kernel_image.hpp"

namespace vmm {

Result<std::vector<std::byte>> read_file(std::filesystem::path const& path, std::string_view what)
{
    std::ifstream file { path, std::ios::binary };
    if (!file)
        return fail(Errc::Config, fmt::format("{}: cannot open {}", what, path.string()));
    std::vector<std::byte> bytes;
    file.seekg(0, std::ios::end);
    auto const size = file.tellg();
    file.seekg(0, std::ios::beg);
    if (size < 0)
        return fail(Errc::Config, fmt::format("{}: cannot read {}", what, path.string()));
    bytes.resize(static_cast<std::size_t>(size));
    if (!file.read(reinterpret_cast<char*>(bytes.data()), size)) // iostream reads into char.
        return fail(Errc::Config, fmt::format("{}: cannot read {}", what, path.string()));
    return bytes;
}

Result<firmware::BootCpuState> load_guest_images(mem::GuestMemory const& memory, BootSection const& boot,
    GuestImageParams const& params)
{
    auto const ram_mib = params.ram_bytes / MIB;
    auto kernel_bytes = VMM_TRY(read_file(boot.kernel, "boot.kernel"));
    auto kernel = VMM_TRY(firmware::load_kernel(memory, kernel_bytes)
            .context("loading boot.kernel {} ({} bytes) into {} MiB of RAM", boot.kernel.string(),
                kernel_bytes.size(), ram_mib));
    std::vector<std::byte> initrd;
    if (boot.initrd)
        initrd = VMM_TRY(read_file(*boot.initrd, "boot.initrd"));
    u64 const rsdp_gpa = VMM_TRY(
        firmware::write_acpi_tables(memory, firmware::AcpiConfig { params.vcpus, params.vmbus })
            .context("writing the ACPI tables"));
    auto state = firmware::write_boot_info(memory, kernel,
        firmware::BootRequest { boot.cmdline, initrd, params.ram_bytes, rsdp_gpa });
    if (!state && boot.initrd)
        return std::move(state).context("placing boot.initrd {} ({} bytes, {} MiB) with {} MiB of RAM",
            boot.initrd->string(), initrd.size(), initrd.size() / MIB, ram_mib);
    return std::move(state).context("writing the boot information ({} MiB of RAM)", ram_mib);
}

} // namespace vmm

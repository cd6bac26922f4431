// SPDX-License-Identifier: MIT
// One enabled controller over fake RAM and a fake back-end, shared by the NVMe unit tests.
#pragma once

#include <gtest/gtest.h>

#include "tests/support/nvme_fakes.hpp"

namespace vmm::test {

// RAM [0, 16 MiB) and [32 MiB, 33 MiB); the 16 MiB between is a hole (like MMIO).
inline constexpr u64 HOLE_GPA = 16 * MIB;
inline constexpr u64 HIGH_RAM_GPA = 32 * MIB;
inline constexpr u64 RAM_END = 33 * MIB;
inline constexpr u64 DISK_BYTES = 8 * MIB;
inline constexpr u64 DATA_GPA = 0x100000; // Data buffers from here.
inline constexpr u64 LIST_GPA = 0x80000;  // PRP lists from here.

struct NvmeRig {
    explicit NvmeRig(bool read_only = false, nvme::NvmeControllerConfig config = default_config())
        : ram({ { 0, 16 * MIB }, { HIGH_RAM_GPA, 1 * MIB } })
        , backend(DISK_BYTES, read_only)
        , controller(std::move(config), ram.memory(), backend, interrupts)
        , driver(ram, controller)
    {
    }
    static nvme::NvmeControllerConfig default_config()
    {
        nvme::NvmeControllerConfig config;
        config.serial = "MVM-TEST-0001";
        config.max_io_queues = 4;
        config.msix_vectors = 5;
        config.max_queue_entries = 64;
        return config;
    }
    // Enabled, with I/O pair 1 (16 entries, vector 1).
    void bring_up()
    {
        driver.enable();
        ASSERT_TRUE(controller.enabled());
        ASSERT_EQ(driver.create_pair(1, 0x20000, 0x21000, 16, 1), 0);
    }
    // Read/write command for `lbas` blocks at `slba`.
    static nvme::SubmissionEntry rw(bool write, u64 slba, u32 lbas, u64 prp1, u64 prp2 = 0)
    {
        auto e = NvmeTestDriver::command(write ? 0x01 : 0x02, 1);
        e.cdw10 = static_cast<u32>(slba);
        e.cdw11 = static_cast<u32>(slba >> 32);
        e.cdw12 = lbas - 1;
        e.prp1 = prp1;
        e.prp2 = prp2;
        return e;
    }
    // Submits on I/O queue 1, lets the back-end finish, returns the status.
    u16 io(nvme::SubmissionEntry entry)
    {
        driver.submit(1, entry);
        backend.complete_all(controller);
        auto cqe = driver.reap(1);
        EXPECT_TRUE(cqe.has_value());
        return cqe ? NvmeTestDriver::status_of(*cqe) : 0xFFFF;
    }
    void fill(u64 gpa, u64 bytes, u8 seed)
    {
        std::vector<std::byte> data(bytes);
        for (u64 i = 0; i < bytes; ++i)
            data[i] = std::byte { static_cast<u8>(seed + i * 7) };
        ram.write_bytes(gpa, data);
    }

    FakeGuestMemory ram;
    FakeBlockBackend backend;
    FakeNvmeInterrupts interrupts;
    nvme::NvmeController controller;
    NvmeTestDriver driver;
};

} // namespace vmm::test

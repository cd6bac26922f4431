// SPDX-License-Identifier: MIT
// NvmeController registers and admin commands, including hostile ones.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "tests/unit/nvme/nvme_test_rig.hpp"

namespace vmm::test {
namespace {

using nvme::Status;

u16 sc(Status s) { return static_cast<u16>(s); }

TEST(NvmeRegisters, CapVersionAndEnable)
{
    NvmeRig rig;
    u64 const cap = rig.driver.read64(nvme::REG_CAP);
    EXPECT_EQ(cap & 0xFFFF, 63u);                 // MQES = 64 entries, 0-based.
    EXPECT_NE(cap & (u64 { 1 } << 16), 0u);        // CQR.
    EXPECT_EQ((cap >> 32) & 0xF, 0u);             // DSTRD 0.
    EXPECT_NE(cap & (u64 { 1 } << 37), 0u);        // CSS: NVM.
    EXPECT_EQ((cap >> 48) & 0xFF, 0u);            // MPSMIN = MPSMAX = 4 KiB.
    EXPECT_GT((cap >> 24) & 0xFF, 0u);            // TO.
    EXPECT_EQ(rig.driver.read32(nvme::REG_CAP), static_cast<u32>(cap));
    EXPECT_EQ(rig.driver.read32(nvme::REG_VS), 0x10400u);
    EXPECT_EQ(rig.driver.read32(nvme::REG_CSTS), 0u);
    rig.driver.enable();
    EXPECT_EQ(rig.driver.read32(nvme::REG_CSTS), nvme::CSTS_RDY);
    EXPECT_EQ(rig.driver.read64(nvme::REG_ASQ), 0x10000u);
    rig.driver.write32(nvme::REG_INTMS, 0x5);
    rig.driver.write32(nvme::REG_INTMC, 0x1);
    EXPECT_EQ(rig.driver.read32(nvme::REG_INTMS), 0x4u);
    u64 const errors = rig.controller.stats().guest_errors;
    rig.driver.write32(nvme::REG_CMBMSC, 1); // Linux nvme_map_cmb: not a guest error.
    EXPECT_EQ(rig.driver.read32(0x38), 0u);  // CMBLOC/CMBSZ: no CMB.
    EXPECT_EQ(rig.driver.read32(0x3C), 0u);
    EXPECT_EQ(rig.controller.stats().guest_errors, errors);
    // Odd sizes and offsets past BAR0 are ignored, never fatal.
    std::byte one[1] {};
    rig.controller.mmio_read(nvme::REG_CSTS, one);
    rig.controller.mmio_write(nvme::REG_CC, one);
    rig.controller.mmio_write(nvme::NvmeController::BAR0_BYTES, one);
    EXPECT_TRUE(rig.controller.enabled());
}

TEST(NvmeRegisters, BadEnableReportsFatalStatus)
{
    NvmeRig rig;
    rig.driver.write32(nvme::REG_AQA, 0x001F001F);
    rig.driver.write64(nvme::REG_ASQ, HOLE_GPA); // Admin SQ in the hole.
    rig.driver.write64(nvme::REG_ACQ, 0x11000);
    rig.driver.write32(nvme::REG_CC, NvmeTestDriver::cc_value());
    EXPECT_EQ(rig.driver.read32(nvme::REG_CSTS) & (nvme::CSTS_RDY | nvme::CSTS_CFS), nvme::CSTS_CFS);
    // 8 KiB pages (CC.MPS 1) are not in CAP's range.
    NvmeRig rig2;
    rig2.driver.write32(nvme::REG_AQA, 0x001F001F);
    rig2.driver.write64(nvme::REG_ASQ, 0x10000);
    rig2.driver.write64(nvme::REG_ACQ, 0x11000);
    rig2.driver.write32(nvme::REG_CC, NvmeTestDriver::cc_value() | (1u << nvme::CC_MPS_SHIFT));
    EXPECT_TRUE(rig2.controller.fatal());
}

TEST(NvmeAdmin, IdentifyControllerNamespaceAndLists)
{
    NvmeRig rig;
    rig.driver.enable();
    auto id = NvmeTestDriver::command(0x06);
    id.cdw10 = nvme::CNS_CONTROLLER;
    id.prp1 = 0x30000;
    ASSERT_EQ(NvmeTestDriver::status_of(rig.driver.admin(id)), 0);
    auto page = rig.ram.read_bytes(0x30000, 4096);
    EXPECT_EQ(std::string(reinterpret_cast<char const*>(page.data() + 4), 20), "MVM-TEST-0001       ");
    EXPECT_EQ(static_cast<u8>(page[512]), 0x66);
    EXPECT_EQ(static_cast<u8>(page[513]), 0x44);
    u32 nn;
    std::memcpy(&nn, page.data() + 516, 4);
    EXPECT_EQ(nn, 1u);
    EXPECT_EQ(static_cast<u8>(page[520]), 0x0C); // ONCS: DSM, Write Zeroes.
    EXPECT_EQ(static_cast<u8>(page[525]), 1);    // VWC.
    EXPECT_EQ(static_cast<u8>(page[77]), nvme::NvmeController::MDTS_LOG2);

    id.cdw10 = nvme::CNS_NAMESPACE;
    id.nsid = 1;
    ASSERT_EQ(NvmeTestDriver::status_of(rig.driver.admin(id)), 0);
    EXPECT_EQ(rig.ram.read<u64>(0x30000), DISK_BYTES / 512);
    EXPECT_EQ(rig.ram.read<u32>(0x30000 + 128), 9u << 16);
    EXPECT_EQ(rig.ram.read<u8>(0x30000 + 99), 0); // Writable.

    id.nsid = 2;
    EXPECT_EQ(NvmeTestDriver::status_of(rig.driver.admin(id)), sc(Status::InvalidNamespace));
    id.nsid = 0xFFFFFFFF;
    EXPECT_EQ(NvmeTestDriver::status_of(rig.driver.admin(id)), sc(Status::InvalidNamespace));

    id.cdw10 = nvme::CNS_ACTIVE_NAMESPACES;
    id.nsid = 0;
    ASSERT_EQ(NvmeTestDriver::status_of(rig.driver.admin(id)), 0);
    EXPECT_EQ(rig.ram.read<u32>(0x30000), 1u);
    EXPECT_EQ(rig.ram.read<u32>(0x30004), 0u);
    id.nsid = 1;
    ASSERT_EQ(NvmeTestDriver::status_of(rig.driver.admin(id)), 0);
    EXPECT_EQ(rig.ram.read<u32>(0x30000), 0u);

    id.cdw10 = nvme::CNS_NAMESPACE_DESCRIPTORS;
    id.nsid = 1;
    ASSERT_EQ(NvmeTestDriver::status_of(rig.driver.admin(id)), 0);
    EXPECT_EQ(rig.ram.read<u8>(0x30000), 2);  // NGUID.
    EXPECT_EQ(rig.ram.read<u8>(0x30001), 16);

    id.cdw10 = 0x06; // I/O command set specific controller (NVMe 2.0): Linux 6.1 tries it.
    EXPECT_EQ(NvmeTestDriver::status_of(rig.driver.admin(id)), sc(Status::InvalidField));
    // Identify data into the hole: Data Transfer Error, nothing written anywhere.
    id.cdw10 = nvme::CNS_CONTROLLER;
    id.prp1 = HOLE_GPA;
    EXPECT_EQ(NvmeTestDriver::status_of(rig.driver.admin(id)), sc(Status::DataTransferError));
    // Unknown admin opcode, SGL data pointer.
    EXPECT_EQ(NvmeTestDriver::status_of(rig.driver.admin(NvmeTestDriver::command(0x7F))), sc(Status::InvalidOpcode));
    auto sgl = NvmeTestDriver::command(0x06);
    sgl.cdw0 |= 1u << 14;
    EXPECT_EQ(NvmeTestDriver::status_of(rig.driver.admin(sgl)), sc(Status::InvalidField));
}

TEST(NvmeAdmin, ReadOnlyNamespaceIsWriteProtected)
{
    NvmeRig rig(true);
    rig.driver.enable();
    auto id = NvmeTestDriver::command(0x06, 1);
    id.cdw10 = nvme::CNS_NAMESPACE;
    id.prp1 = 0x30000;
    ASSERT_EQ(NvmeTestDriver::status_of(rig.driver.admin(id)), 0);
    EXPECT_EQ(rig.ram.read<u8>(0x30000 + 99), 1); // NSATTR write protected.
}

TEST(NvmeAdmin, QueueCreationLimitsAndOrder)
{
    NvmeRig rig;
    rig.driver.enable();
    auto& d = rig.driver;
    auto cq = NvmeTestDriver::command(0x05);
    cq.prp1 = 0x21000;
    cq.cdw11 = 1 | 2 | (1u << 16);
    cq.cdw10 = 0 | (15u << 16); // QID 0 is the admin queue.
    EXPECT_EQ(NvmeTestDriver::status_of(d.admin(cq)), sc(Status::InvalidQueueIdentifier));
    cq.cdw10 = 5 | (15u << 16); // Past max_io_queues (4).
    EXPECT_EQ(NvmeTestDriver::status_of(d.admin(cq)), sc(Status::InvalidQueueIdentifier));
    cq.cdw10 = 1 | (64u << 16); // 65 entries > MQES + 1.
    EXPECT_EQ(NvmeTestDriver::status_of(d.admin(cq)), sc(Status::InvalidQueueSize));
    cq.cdw10 = 1 | (0u << 16); // 1 entry.
    EXPECT_EQ(NvmeTestDriver::status_of(d.admin(cq)), sc(Status::InvalidQueueSize));
    cq.cdw10 = 1 | (15u << 16);
    cq.cdw11 = 1 | 2 | (5u << 16); // Vector 5 of a 5-entry MSI-X table.
    EXPECT_EQ(NvmeTestDriver::status_of(d.admin(cq)), sc(Status::InvalidInterruptVector));
    cq.cdw11 = 1 | 2 | (1u << 16);
    cq.prp1 = HOLE_GPA;
    EXPECT_EQ(NvmeTestDriver::status_of(d.admin(cq)), sc(Status::DataTransferError));
    cq.prp1 = 0x21010;
    EXPECT_EQ(NvmeTestDriver::status_of(d.admin(cq)), sc(Status::InvalidPrpOffset));

    // SQ before its CQ.
    auto sq = NvmeTestDriver::command(0x01);
    sq.prp1 = 0x20000;
    sq.cdw10 = 1 | (15u << 16);
    sq.cdw11 = 1 | (1u << 16);
    EXPECT_EQ(NvmeTestDriver::status_of(d.admin(sq)), sc(Status::CompletionQueueInvalid));

    ASSERT_EQ(d.create_pair(1, 0x20000, 0x21000, 16, 1), 0);
    EXPECT_EQ(d.create_pair(1, 0x22000, 0x23000, 16, 1), sc(Status::InvalidQueueIdentifier)); // Exists.

    // Delete the CQ while its SQ lives: Invalid Queue Deletion. SQ first, then CQ.
    auto del_cq = NvmeTestDriver::command(0x04);
    del_cq.cdw10 = 1;
    EXPECT_EQ(NvmeTestDriver::status_of(d.admin(del_cq)), sc(Status::InvalidQueueDeletion));
    auto del_sq = NvmeTestDriver::command(0x00);
    del_sq.cdw10 = 1;
    EXPECT_EQ(NvmeTestDriver::status_of(d.admin(del_sq)), 0);
    EXPECT_EQ(NvmeTestDriver::status_of(d.admin(del_sq)), sc(Status::InvalidQueueIdentifier));
    EXPECT_EQ(NvmeTestDriver::status_of(d.admin(del_cq)), 0);
    EXPECT_EQ(NvmeTestDriver::status_of(d.admin(del_cq)), sc(Status::InvalidQueueIdentifier));
    del_sq.cdw10 = 0xFFFF;
    EXPECT_EQ(NvmeTestDriver::status_of(d.admin(del_sq)), sc(Status::InvalidQueueIdentifier));
    del_sq.cdw10 = 0;
    EXPECT_EQ(NvmeTestDriver::status_of(d.admin(del_sq)), sc(Status::InvalidQueueIdentifier));
}

TEST(NvmeAdmin, NumberOfQueuesFeature)
{
    NvmeRig rig;
    rig.driver.enable();
    auto set = NvmeTestDriver::command(0x09);
    set.cdw10 = nvme::FEATURE_NUMBER_OF_QUEUES;
    set.cdw11 = 63 | (63u << 16); // Linux asks for one pair per CPU (and more).
    auto cqe = rig.driver.admin(set);
    ASSERT_EQ(NvmeTestDriver::status_of(cqe), 0);
    EXPECT_EQ(cqe.dw0, 3u | (3u << 16)); // 4 granted, 0-based.
    set.cdw11 = 1 | (1u << 16);
    ASSERT_EQ(NvmeTestDriver::status_of(rig.driver.admin(set)), 0);
    EXPECT_EQ(rig.driver.create_pair(3, 0x20000, 0x21000, 16, 1), sc(Status::InvalidQueueIdentifier)); // Only 2.
    ASSERT_EQ(rig.driver.create_pair(2, 0x20000, 0x21000, 16, 1), 0);
    // Changing it with queues alive is a sequence error.
    EXPECT_EQ(NvmeTestDriver::status_of(rig.driver.admin(set)), sc(Status::CommandSequenceError));
    set.cdw11 = 0xFFFF;
    EXPECT_EQ(NvmeTestDriver::status_of(rig.driver.admin(set)), sc(Status::InvalidField));
    auto get = NvmeTestDriver::command(0x0A);
    get.cdw10 = nvme::FEATURE_NUMBER_OF_QUEUES;
    cqe = rig.driver.admin(get);
    EXPECT_EQ(cqe.dw0, 1u | (1u << 16));
}

TEST(NvmeAdmin, OtherFeatures)
{
    NvmeRig rig;
    rig.driver.enable();
    auto set = NvmeTestDriver::command(0x09);
    auto get = NvmeTestDriver::command(0x0A);
    for (u8 fid : { nvme::FEATURE_ARBITRATION, nvme::FEATURE_INTERRUPT_COALESCING, nvme::FEATURE_ASYNC_EVENT_CONFIG,
             nvme::FEATURE_WRITE_ATOMICITY, nvme::FEATURE_ERROR_RECOVERY }) {
        set.cdw10 = fid;
        set.cdw11 = 1;
        EXPECT_EQ(NvmeTestDriver::status_of(rig.driver.admin(set)), 0) << int(fid);
        get.cdw10 = fid;
        auto cqe = rig.driver.admin(get);
        EXPECT_EQ(NvmeTestDriver::status_of(cqe), 0);
        EXPECT_EQ(cqe.dw0, 1u) << int(fid);
        get.cdw10 = fid | (3u << 8); // Capabilities: changeable, not saveable.
        EXPECT_EQ(rig.driver.admin(get).dw0, 4u);
    }
    set.cdw10 = nvme::FEATURE_VOLATILE_WRITE_CACHE;
    set.cdw11 = 0;
    EXPECT_EQ(NvmeTestDriver::status_of(rig.driver.admin(set)), 0);
    get.cdw10 = nvme::FEATURE_VOLATILE_WRITE_CACHE;
    EXPECT_EQ(rig.driver.admin(get).dw0, 0u);
    get.cdw10 = nvme::FEATURE_VOLATILE_WRITE_CACHE | (1u << 8); // Default: enabled.
    EXPECT_EQ(rig.driver.admin(get).dw0, 1u);
    set.cdw10 = nvme::FEATURE_POWER_MANAGEMENT;
    set.cdw11 = 1; // Power state 1 does not exist (NPSS 0).
    EXPECT_EQ(NvmeTestDriver::status_of(rig.driver.admin(set)), sc(Status::InvalidField));
    set.cdw10 = nvme::FEATURE_ARBITRATION | (1u << 31); // Save.
    EXPECT_EQ(NvmeTestDriver::status_of(rig.driver.admin(set)), sc(Status::FeatureNotSaveable));
    set.cdw10 = 0x0C; // Autonomous power state transition: not supported.
    EXPECT_EQ(NvmeTestDriver::status_of(rig.driver.admin(set)), sc(Status::InvalidField));
    set.cdw10 = nvme::FEATURE_INTERRUPT_VECTOR_CONFIG;
    set.cdw11 = 9;
    EXPECT_EQ(NvmeTestDriver::status_of(rig.driver.admin(set)), sc(Status::InvalidField));
}

TEST(NvmeAdmin, LogPages)
{
    NvmeRig rig;
    rig.bring_up();
    auto log = NvmeTestDriver::command(0x02, 0xFFFFFFFF);
    log.prp1 = 0x30000;
    log.cdw10 = nvme::LOG_SMART_HEALTH | ((512 / 4 - 1) << 16);
    ASSERT_EQ(NvmeTestDriver::status_of(rig.driver.admin(log)), 0);
    EXPECT_EQ(rig.ram.read<u8>(0x30000 + 3), 100); // Available spare.
    log.cdw10 = nvme::LOG_FIRMWARE_SLOT | ((512 / 4 - 1) << 16);
    ASSERT_EQ(NvmeTestDriver::status_of(rig.driver.admin(log)), 0);
    EXPECT_EQ(rig.ram.read<u8>(0x30000), 1);
    log.cdw10 = nvme::LOG_ERROR_INFORMATION | ((256 / 4 - 1) << 16);
    ASSERT_EQ(NvmeTestDriver::status_of(rig.driver.admin(log)), 0);
    log.cdw10 = 0x80 | (15u << 16); // Vendor specific.
    EXPECT_EQ(NvmeTestDriver::status_of(rig.driver.admin(log)), sc(Status::InvalidLogPage));
    // The failed command above is in the error log now, newest first.
    log.cdw10 = nvme::LOG_ERROR_INFORMATION | ((64 / 4 - 1) << 16);
    ASSERT_EQ(NvmeTestDriver::status_of(rig.driver.admin(log)), 0);
    auto entry = rig.ram.read<nvme::ErrorLogEntry>(0x30000);
    EXPECT_GE(entry.error_count, 1u);
    EXPECT_EQ(entry.status >> 1, sc(Status::InvalidLogPage));
    // Offset past the page.
    log.cdw10 = nvme::LOG_SMART_HEALTH | (15u << 16);
    log.cdw12 = 512;
    EXPECT_EQ(NvmeTestDriver::status_of(rig.driver.admin(log)), sc(Status::InvalidField));
}

TEST(NvmeAdmin, AsyncEventsHeldBoundedAndReportInvalidDoorbells)
{
    NvmeRig rig;
    rig.bring_up();
    auto aer = NvmeTestDriver::command(0x0C);
    for (int i = 0; i < 4; ++i)
        rig.driver.submit(0, aer);
    EXPECT_FALSE(rig.driver.reap(0).has_value()); // Held.
    EXPECT_EQ(NvmeTestDriver::status_of(rig.driver.admin(aer)), sc(Status::AsyncEventLimitExceeded));

    // SQ tail past the queue's size: Invalid Doorbell Write Value, reported by one held AER.
    rig.driver.ring_sq(1, 16);
    auto cqe = rig.driver.reap(0);
    ASSERT_TRUE(cqe.has_value());
    EXPECT_EQ(NvmeTestDriver::status_of(*cqe), 0);
    EXPECT_EQ(cqe->dw0, nvme::AEN_TYPE_ERROR | (nvme::AEN_ERROR_INVALID_DOORBELL_VALUE << 8) | (u32 { nvme::LOG_ERROR_INFORMATION } << 16));
    // Masked until the error log is read: a doorbell of a queue that does not exist is dropped.
    rig.driver.ring_sq(3, 0);
    EXPECT_FALSE(rig.driver.reap(0).has_value());
    auto log = NvmeTestDriver::command(0x02);
    log.prp1 = 0x30000;
    log.cdw10 = nvme::LOG_ERROR_INFORMATION | (15u << 16);
    ASSERT_EQ(NvmeTestDriver::status_of(rig.driver.admin(log)), 0);
    rig.driver.ring_cq(3, 0); // CQ 3 does not exist: Invalid Doorbell Register.
    cqe = rig.driver.reap(0);
    ASSERT_TRUE(cqe.has_value());
    EXPECT_EQ(cqe->dw0, nvme::AEN_TYPE_ERROR | (nvme::AEN_ERROR_INVALID_DOORBELL << 8) | (u32 { nvme::LOG_ERROR_INFORMATION } << 16));
    // A doorbell far past every queue (still in BAR0) and one for a CQ head beyond the tail.
    rig.driver.write32(0x3FFC, 1);
    rig.driver.ring_cq(1, 5);
    EXPECT_TRUE(rig.controller.enabled());
    EXPECT_FALSE(rig.controller.fatal());
    EXPECT_GE(rig.controller.stats().guest_errors, 4u);
}

TEST(NvmeAdmin, AbortIsHonest)
{
    NvmeRig rig;
    rig.driver.enable();
    auto abort = NvmeTestDriver::command(0x08);
    abort.cdw10 = 1 | (7u << 16);
    auto cqe = rig.driver.admin(abort);
    EXPECT_EQ(NvmeTestDriver::status_of(cqe), 0);
    EXPECT_EQ(cqe.dw0 & 1, 1u); // Not aborted.
}

TEST(NvmeAdmin, AdminInterruptOnVectorZero)
{
    NvmeRig rig;
    rig.driver.enable();
    auto id = NvmeTestDriver::command(0x06);
    id.cdw10 = nvme::CNS_CONTROLLER;
    id.prp1 = 0x30000;
    rig.driver.admin(id);
    ASSERT_FALSE(rig.interrupts.raised.empty());
    EXPECT_EQ(rig.interrupts.raised.back(), 0);
}

} // namespace
} // namespace vmm::test

// SPDX-License-Identifier: MIT
// NvmeController I/O commands, PRPs (hostile ones too), reset and shutdown with I/O in flight.
#include <gtest/gtest.h>

#include <algorithm>
#include <tuple>
#include <utility>
#include <vector>

#include <cstring>

#include "tests/unit/nvme/nvme_test_rig.hpp"

namespace vmm::test {
namespace {

using nvme::BlockOp;
using nvme::Status;

u16 sc(Status s) { return static_cast<u16>(s); }

std::vector<std::byte> disk_bytes(NvmeRig& rig, u64 offset, u64 size)
{
    return { rig.backend.disk().begin() + static_cast<std::ptrdiff_t>(offset),
        rig.backend.disk().begin() + static_cast<std::ptrdiff_t>(offset + size) };
}

TEST(NvmeIo, WriteThenReadOnePageTwoPagesAndAPrpList)
{
    NvmeRig rig;
    rig.bring_up();
    // One page at an in-page offset (dword aligned), two pages (PRP2 = page), 64 KiB through
    // a PRP list.
    rig.fill(DATA_GPA + 0x200, 1024, 1);
    ASSERT_EQ(rig.io(NvmeRig::rw(true, 0, 2, DATA_GPA + 0x200)), 0);
    EXPECT_EQ(disk_bytes(rig, 0, 1024), rig.ram.read_bytes(DATA_GPA + 0x200, 1024));

    rig.fill(DATA_GPA + 0x1000, 8192, 2);
    ASSERT_EQ(rig.io(NvmeRig::rw(true, 100, 16, DATA_GPA + 0x1000, DATA_GPA + 0x2000)), 0);
    EXPECT_EQ(disk_bytes(rig, 100 * 512, 8192), rig.ram.read_bytes(DATA_GPA + 0x1000, 8192));

    // 16 data pages scattered in reverse order: PRP1 + a list of 15 entries.
    u64 const bytes = 16 * 4096;
    std::vector<std::byte> expected;
    for (u64 i = 0; i < 16; ++i) {
        u64 const page = DATA_GPA + 0x100000 + (15 - i) * 0x1000;
        rig.fill(page, 4096, static_cast<u8>(10 + i));
        auto chunk = rig.ram.read_bytes(page, 4096);
        expected.insert(expected.end(), chunk.begin(), chunk.end());
        if (i > 0)
            rig.ram.write<u64>(LIST_GPA + (i - 1) * 8, page);
    }
    ASSERT_EQ(rig.io(NvmeRig::rw(true, 1000, bytes / 512, DATA_GPA + 0x100000 + 15 * 0x1000, LIST_GPA)), 0);
    EXPECT_EQ(disk_bytes(rig, 1000 * 512, bytes), expected);
    // Read it back into fresh pages through the same list shape.
    for (u64 i = 1; i < 16; ++i)
        rig.ram.write<u64>(LIST_GPA + (i - 1) * 8, DATA_GPA + 0x200000 + i * 0x1000);
    ASSERT_EQ(rig.io(NvmeRig::rw(false, 1000, bytes / 512, DATA_GPA + 0x200000, LIST_GPA)), 0);
    EXPECT_EQ(rig.ram.read_bytes(DATA_GPA + 0x200000, bytes), expected);
    EXPECT_EQ(rig.controller.stats().read_commands, 1u);
    EXPECT_EQ(rig.controller.stats().write_commands, 3u);
    // Contiguous guest pages became one segment.
    EXPECT_EQ(rig.interrupts.raised.back(), 1);
}

TEST(NvmeIo, PrpListChainsAcrossListPages)
{
    NvmeRig rig;
    rig.bring_up();
    // 128 pages = 512 KiB (MDTS): PRP1 + 127 entries. The list starts 8 bytes before the end of
    // its page, so its only entry is a pointer to the next list page (§4.3).
    u64 const first_list = LIST_GPA + 0x1000 - 8;
    u64 const second_list = LIST_GPA + 0x3000;
    rig.ram.write<u64>(first_list, second_list);
    for (u64 i = 0; i < 127; ++i)
        rig.ram.write<u64>(second_list + i * 8, DATA_GPA + (i + 1) * 0x1000);
    rig.fill(DATA_GPA, 128 * 4096, 5);
    ASSERT_EQ(rig.io(NvmeRig::rw(true, 0, 1024, DATA_GPA, first_list)), 0);
    EXPECT_EQ(disk_bytes(rig, 0, 128 * 4096), rig.ram.read_bytes(DATA_GPA, 128 * 4096));
    // One past MDTS: Invalid Field.
    EXPECT_EQ(rig.io(NvmeRig::rw(true, 0, 1025, DATA_GPA, first_list)), sc(Status::InvalidField));
}

TEST(NvmeIo, HostilePrps)
{
    NvmeRig rig;
    rig.bring_up();
    // PRP1 not dword aligned.
    EXPECT_EQ(rig.io(NvmeRig::rw(false, 0, 1, DATA_GPA + 2)), sc(Status::InvalidPrpOffset));
    // PRP2 (second data page) with an offset.
    EXPECT_EQ(rig.io(NvmeRig::rw(false, 0, 16, DATA_GPA, DATA_GPA + 0x1010)), sc(Status::InvalidPrpOffset));
    // Data in the hole, across the end of RAM, at an MMIO address.
    EXPECT_EQ(rig.io(NvmeRig::rw(false, 0, 1, HOLE_GPA)), sc(Status::DataTransferError));
    EXPECT_EQ(rig.io(NvmeRig::rw(false, 0, 16, 16 * MIB - 0x1000, HOLE_GPA)), sc(Status::DataTransferError));
    EXPECT_EQ(rig.io(NvmeRig::rw(false, 0, 8, RAM_END - 0x200, RAM_END)), sc(Status::DataTransferError));
    EXPECT_EQ(rig.io(NvmeRig::rw(false, 0, 1, 0xFEE0'0000)), sc(Status::DataTransferError));
    EXPECT_EQ(rig.io(NvmeRig::rw(false, 0, 1, ~u64 { 0 } - 3)), sc(Status::DataTransferError));
    // PRP list in the hole; list not qword aligned; list entry misaligned; list entry in the hole.
    EXPECT_EQ(rig.io(NvmeRig::rw(false, 0, 24, DATA_GPA, HOLE_GPA)), sc(Status::DataTransferError));
    EXPECT_EQ(rig.io(NvmeRig::rw(false, 0, 24, DATA_GPA, LIST_GPA + 4)), sc(Status::InvalidPrpOffset));
    rig.ram.write<u64>(LIST_GPA, DATA_GPA + 0x1000);
    rig.ram.write<u64>(LIST_GPA + 8, DATA_GPA + 0x2008);
    EXPECT_EQ(rig.io(NvmeRig::rw(false, 0, 24, DATA_GPA, LIST_GPA)), sc(Status::InvalidPrpOffset));
    rig.ram.write<u64>(LIST_GPA + 8, HOLE_GPA + 0x5000);
    EXPECT_EQ(rig.io(NvmeRig::rw(false, 0, 24, DATA_GPA, LIST_GPA)), sc(Status::DataTransferError));
    // The chain pointer of a list page misaligned, or in the hole.
    u64 const tail_list = LIST_GPA + 0x1000 - 8;
    rig.ram.write<u64>(tail_list, HOLE_GPA);
    EXPECT_EQ(rig.io(NvmeRig::rw(false, 0, 24, DATA_GPA, tail_list)), sc(Status::DataTransferError));
    rig.ram.write<u64>(tail_list, LIST_GPA + 0x10);
    EXPECT_EQ(rig.io(NvmeRig::rw(false, 0, 24, DATA_GPA, tail_list)), sc(Status::InvalidPrpOffset));
    // A list whose last entry points back at its own page: the walk is bounded by the transfer
    // length (MDTS), so it ends; every page it names is RAM, so the read succeeds.
    u64 const loop = LIST_GPA + 0x4000;
    for (u64 i = 0; i < 511; ++i)
        rig.ram.write<u64>(loop + i * 8, DATA_GPA + 0x1000);
    rig.ram.write<u64>(loop + 511 * 8, loop);
    EXPECT_EQ(rig.io(NvmeRig::rw(false, 0, 1024, DATA_GPA, loop)), 0);
    // Nothing was submitted for any refused command, and the controller still works.
    EXPECT_EQ(rig.backend.log().size(), 1u);
    EXPECT_FALSE(rig.controller.fatal());
    EXPECT_EQ(rig.controller.stats().io_errors, 0u);
}

TEST(NvmeIo, RangeNamespaceOpcodeAndFieldChecks)
{
    NvmeRig rig;
    rig.bring_up();
    u64 const lbas = DISK_BYTES / 512;
    EXPECT_EQ(rig.io(NvmeRig::rw(false, lbas - 1, 2, DATA_GPA, DATA_GPA + 0x1000)), sc(Status::LbaOutOfRange));
    EXPECT_EQ(rig.io(NvmeRig::rw(false, ~u64 { 0 }, 2, DATA_GPA)), sc(Status::LbaOutOfRange));
    EXPECT_EQ(rig.io(NvmeRig::rw(false, lbas - 1, 1, DATA_GPA)), 0);
    auto bad_ns = NvmeRig::rw(false, 0, 1, DATA_GPA);
    bad_ns.nsid = 2;
    EXPECT_EQ(rig.io(bad_ns), sc(Status::InvalidNamespace));
    EXPECT_EQ(rig.io(NvmeTestDriver::command(0x05, 1)), sc(Status::InvalidOpcode)); // Compare: unsupported.
    auto sgl = NvmeRig::rw(false, 0, 1, DATA_GPA);
    sgl.cdw0 |= 1u << 14;
    EXPECT_EQ(rig.io(sgl), sc(Status::InvalidField));
    auto fused = NvmeRig::rw(false, 0, 1, DATA_GPA);
    fused.cdw0 |= 1u << 8;
    EXPECT_EQ(rig.io(fused), sc(Status::InvalidField));
}

TEST(NvmeIo, FuaFlushWriteZeroesAndDeallocate)
{
    NvmeRig rig;
    rig.bring_up();
    rig.fill(DATA_GPA, 4096, 9);
    auto fua = NvmeRig::rw(true, 8, 8, DATA_GPA);
    fua.cdw12 |= 1u << 30;
    ASSERT_EQ(rig.io(fua), 0);
    EXPECT_TRUE(rig.backend.log().back().fua);
    ASSERT_EQ(rig.io(NvmeRig::rw(true, 8, 8, DATA_GPA)), 0);
    EXPECT_FALSE(rig.backend.log().back().fua);
    EXPECT_EQ(rig.io(NvmeTestDriver::command(0x00, 1)), 0);
    EXPECT_EQ(rig.backend.log().back().op, BlockOp::Flush);
    EXPECT_EQ(rig.io(NvmeTestDriver::command(0x00, 0xFFFFFFFF)), 0);
    EXPECT_EQ(rig.io(NvmeTestDriver::command(0x00, 7)), sc(Status::InvalidNamespace));
    EXPECT_EQ(rig.controller.stats().flushes, 2u);

    // Write Zeroes over what was written.
    auto wz = NvmeTestDriver::command(0x08, 1);
    wz.cdw10 = 8;
    wz.cdw12 = 3;
    ASSERT_EQ(rig.io(wz), 0);
    EXPECT_EQ(rig.backend.log().back().op, BlockOp::WriteZeroes);
    EXPECT_EQ(rig.backend.log().back().offset, 8u * 512);
    EXPECT_EQ(rig.backend.log().back().length, 4u * 512);
    EXPECT_EQ(disk_bytes(rig, 8 * 512, 2048), std::vector<std::byte>(2048));
    wz.cdw10 = static_cast<u32>(DISK_BYTES / 512);
    EXPECT_EQ(rig.io(wz), sc(Status::LbaOutOfRange));

    // Dataset Management: two deallocate ranges (one empty) in one command.
    nvme::DsmRange ranges[3] { { 0, 4, 12 }, { 0, 0, 0 }, { 0, 2, 100 } };
    rig.ram.write_bytes(0x40000, std::as_bytes(std::span { ranges }));
    auto dsm = NvmeTestDriver::command(0x09, 1);
    dsm.cdw10 = 2;
    dsm.cdw11 = 1u << 2;
    dsm.prp1 = 0x40000;
    std::size_t const before = rig.backend.log().size();
    ASSERT_EQ(rig.io(dsm), 0);
    ASSERT_EQ(rig.backend.log().size(), before + 2);
    EXPECT_EQ(rig.backend.log()[before].op, BlockOp::Discard);
    EXPECT_EQ(rig.backend.log()[before].offset, 12u * 512);
    EXPECT_EQ(rig.backend.log()[before + 1].length, 2u * 512);
    // Out of range, range list in the hole, hints only (no deallocate): nothing submitted.
    nvme::DsmRange bad { 0, 8, DISK_BYTES / 512 - 4 };
    rig.ram.write(0x40000, bad);
    dsm.cdw10 = 0;
    EXPECT_EQ(rig.io(dsm), sc(Status::LbaOutOfRange));
    dsm.prp1 = HOLE_GPA;
    EXPECT_EQ(rig.io(dsm), sc(Status::DataTransferError));
    dsm.cdw11 = 0;
    EXPECT_EQ(rig.io(dsm), 0);
    EXPECT_EQ(rig.backend.log().size(), before + 2);
}

TEST(NvmeIo, WriteCacheDisabledMakesWritesDurable)
{
    NvmeRig rig;
    rig.bring_up();
    auto set = NvmeTestDriver::command(0x09);
    set.cdw10 = nvme::FEATURE_VOLATILE_WRITE_CACHE;
    set.cdw11 = 0;
    ASSERT_EQ(NvmeTestDriver::status_of(rig.driver.admin(set)), 0);
    ASSERT_EQ(rig.io(NvmeRig::rw(true, 0, 1, DATA_GPA)), 0);
    EXPECT_TRUE(rig.backend.log().back().fua);
}

TEST(NvmeIo, ReadOnlyNamespaceRefusesWrites)
{
    NvmeRig rig(true);
    rig.bring_up();
    EXPECT_EQ(rig.io(NvmeRig::rw(true, 0, 1, DATA_GPA)), sc(Status::NamespaceWriteProtected));
    auto wz = NvmeTestDriver::command(0x08, 1);
    EXPECT_EQ(rig.io(wz), sc(Status::NamespaceWriteProtected));
    auto dsm = NvmeTestDriver::command(0x09, 1);
    dsm.cdw11 = 1u << 2;
    dsm.prp1 = 0x40000;
    EXPECT_EQ(rig.io(dsm), sc(Status::NamespaceWriteProtected));
    EXPECT_EQ(rig.io(NvmeRig::rw(false, 0, 1, DATA_GPA)), 0);
    EXPECT_EQ(rig.io(NvmeTestDriver::command(0x00, 1)), 0);
    EXPECT_EQ(rig.backend.log().size(), 2u); // The read and the flush only.
}

TEST(NvmeIo, BackendErrorsBecomeMediaStatus)
{
    NvmeRig rig;
    rig.bring_up();
    rig.driver.submit(1, NvmeRig::rw(false, 0, 1, DATA_GPA));
    rig.backend.complete_one(rig.controller, EIO);
    auto cqe = rig.driver.reap(1);
    ASSERT_TRUE(cqe.has_value());
    EXPECT_EQ(NvmeTestDriver::status_of(*cqe), sc(Status::UnrecoveredReadError));
    EXPECT_EQ(cqe->status & nvme::STATUS_DNR, 0); // May be retried.
    rig.driver.submit(1, NvmeRig::rw(true, 0, 1, DATA_GPA));
    rig.backend.complete_one(rig.controller, EIO);
    EXPECT_EQ(NvmeTestDriver::status_of(*rig.driver.reap(1)), sc(Status::WriteFault));
    rig.driver.submit(1, NvmeRig::rw(true, 0, 1, DATA_GPA));
    rig.backend.complete_one(rig.controller, ENOSPC);
    EXPECT_EQ(NvmeTestDriver::status_of(*rig.driver.reap(1)), sc(Status::CapacityExceeded));
    EXPECT_EQ(rig.controller.stats().io_errors, 3u);
    EXPECT_TRUE(rig.controller.enabled());
}

TEST(NvmeIo, FullCompletionQueueHoldsCompletionsUntilHeadMoves)
{
    NvmeRig rig;
    rig.driver.enable();
    ASSERT_EQ(rig.driver.create_pair(1, 0x20000, 0x21000, 4, 1), 0); // 3 usable CQ entries.
    for (int i = 0; i < 3; ++i)
        rig.driver.submit(1, NvmeRig::rw(false, 0, 1, DATA_GPA));
    rig.backend.complete_all(rig.controller);
    // 3 posted; now 3 more: the CQ is full, so they wait in the backlog.
    for (int i = 0; i < 3; ++i)
        rig.driver.submit(1, NvmeRig::rw(false, 0, 1, DATA_GPA));
    rig.backend.complete_all(rig.controller);
    int reaped = 0;
    while (rig.driver.reap(1).has_value()) // Each head doorbell lets one more through.
        ++reaped;
    EXPECT_EQ(reaped, 6);
}

TEST(NvmeIo, QueuesThatRunIntoTheHoleAreRefused)
{
    NvmeRig rig;
    rig.driver.enable();
    // 64 entries * 64 bytes = 4 KiB: a SQ in the last page of low RAM fits, one page later not.
    auto cq = NvmeTestDriver::command(0x05);
    cq.prp1 = HOLE_GPA - 0x400;
    cq.cdw10 = 1 | (63u << 16);
    cq.cdw11 = 1 | 2 | (1u << 16);
    EXPECT_EQ(NvmeTestDriver::status_of(rig.driver.admin(cq)), static_cast<u16>(Status::InvalidPrpOffset));
    EXPECT_EQ(rig.driver.create_pair(1, HOLE_GPA - 0x1000, HOLE_GPA - 0x2000, 64, 1), 0);
    EXPECT_EQ(rig.driver.create_pair(2, HOLE_GPA, 0x30000, 64, 1), static_cast<u16>(Status::DataTransferError));
    EXPECT_FALSE(rig.controller.fatal());
}

TEST(NvmeIo, DeleteSqWaitsForItsCommands)
{
    NvmeRig rig;
    rig.bring_up();
    rig.driver.submit(1, NvmeRig::rw(false, 0, 1, DATA_GPA));
    auto del = NvmeTestDriver::command(0x00);
    del.cdw10 = 1;
    rig.driver.submit(0, del);
    EXPECT_FALSE(rig.driver.reap(0).has_value());
    // A command on the SQ being deleted: the doorbell is refused.
    rig.driver.submit(1, NvmeRig::rw(false, 0, 1, DATA_GPA));
    EXPECT_EQ(rig.backend.pending().size(), 1u);
    rig.backend.complete_all(rig.controller);
    ASSERT_TRUE(rig.driver.reap(1).has_value());
    auto done = rig.driver.reap(0);
    ASSERT_TRUE(done.has_value());
    EXPECT_EQ(NvmeTestDriver::status_of(*done), 0);
    // Commands on the deleted queue: ignored, nothing reaches the back-end.
    rig.driver.submit(1, NvmeRig::rw(false, 0, 1, DATA_GPA));
    EXPECT_TRUE(rig.backend.pending().empty());
}

TEST(NvmeIo, ResetWithIoInFlightWaitsThenDropsCompletions)
{
    NvmeRig rig;
    rig.bring_up();
    rig.driver.submit(1, NvmeRig::rw(false, 0, 8, DATA_GPA));
    rig.driver.submit(1, NvmeRig::rw(true, 8, 8, DATA_GPA + 0x1000));
    ASSERT_EQ(rig.controller.backend_in_flight(), 2u);
    auto const cq_before = rig.ram.read_bytes(0x21000, 4096);
    rig.driver.write32(nvme::REG_CC, 0);
    // The back-end may still write guest RAM: RDY stays 1 until it is done.
    EXPECT_EQ(rig.driver.read32(nvme::REG_CSTS) & nvme::CSTS_RDY, nvme::CSTS_RDY);
    EXPECT_EQ(rig.driver.read32(nvme::REG_CC), 0u);
    rig.driver.write32(nvme::REG_CC, NvmeTestDriver::cc_value()); // Too early: ignored.
    rig.backend.complete_one(rig.controller);
    EXPECT_EQ(rig.driver.read32(nvme::REG_CSTS) & nvme::CSTS_RDY, nvme::CSTS_RDY);
    rig.backend.complete_one(rig.controller);
    EXPECT_EQ(rig.driver.read32(nvme::REG_CSTS), 0u);
    EXPECT_EQ(rig.ram.read_bytes(0x21000, 4096), cq_before); // No completion posted after reset.
    EXPECT_EQ(rig.controller.stats().resets, 1u);
    // Old doorbells now do nothing; a fresh bring-up works.
    rig.driver.ring_sq(1, 3);
    rig.driver.enable(0x50000, 0x51000, 8);
    ASSERT_TRUE(rig.controller.enabled());
    ASSERT_EQ(rig.driver.create_pair(1, 0x60000, 0x61000, 16, 2), 0);
    EXPECT_EQ(rig.io(NvmeRig::rw(false, 0, 1, DATA_GPA)), 0);
}

TEST(NvmeIo, ShutdownCompletesAfterIoAndAFlush)
{
    NvmeRig rig;
    rig.bring_up();
    rig.driver.submit(1, NvmeRig::rw(true, 0, 1, DATA_GPA));
    rig.driver.write32(nvme::REG_CC, NvmeTestDriver::cc_value() | (1u << nvme::CC_SHN_SHIFT));
    EXPECT_EQ((rig.driver.read32(nvme::REG_CSTS) >> nvme::CSTS_SHST_SHIFT) & 3, nvme::SHST_OCCURRING);
    rig.backend.complete_one(rig.controller); // The write.
    EXPECT_EQ((rig.driver.read32(nvme::REG_CSTS) >> nvme::CSTS_SHST_SHIFT) & 3, nvme::SHST_OCCURRING);
    ASSERT_EQ(rig.backend.pending().size(), 1u);
    EXPECT_EQ(rig.backend.pending().front().request.op, BlockOp::Flush);
    rig.backend.complete_one(rig.controller);
    EXPECT_EQ((rig.driver.read32(nvme::REG_CSTS) >> nvme::CSTS_SHST_SHIFT) & 3, nvme::SHST_COMPLETE);
    // Then a reset (Linux disables after shutdown on reboot) returns to normal.
    rig.driver.write32(nvme::REG_CC, 0);
    EXPECT_EQ(rig.driver.read32(nvme::REG_CSTS), 0u);
}

TEST(NvmeIo, ShadowDoorbellsLetIoeventfdKicksCarryNoValue)
{
    NvmeRig rig;
    rig.bring_up();
    // Before Doorbell Buffer Config a value-less kick is refused: the value would be lost.
    rig.driver.submit(1, NvmeRig::rw(false, 0, 1, DATA_GPA), false);
    rig.controller.doorbell_kick(nvme::REG_DOORBELL_BASE + 2 * 4);
    EXPECT_TRUE(rig.backend.pending().empty());
    rig.driver.ring_sq(1, rig.driver.queue(1).sq_tail);
    rig.backend.complete_all(rig.controller);
    ASSERT_TRUE(rig.driver.reap(1).has_value());

    u64 const shadow = 0x70000, events = 0x71000;
    auto config = NvmeTestDriver::command(0x7C);
    config.prp1 = shadow;
    config.prp2 = HOLE_GPA; // Not RAM.
    EXPECT_EQ(NvmeTestDriver::status_of(rig.driver.admin(config)), sc(Status::InvalidField));
    config.prp2 = events + 8; // Not page aligned.
    EXPECT_EQ(NvmeTestDriver::status_of(rig.driver.admin(config)), sc(Status::InvalidField));
    config.prp2 = events;
    ASSERT_EQ(NvmeTestDriver::status_of(rig.driver.admin(config)), 0);
    EXPECT_TRUE(rig.controller.shadow_doorbells_enabled());
    EXPECT_EQ(rig.interrupts.shadow_changes, std::vector<bool> { true });
    // The existing queue's state was published: SQ 1 tail 1, CQ 1 head 1.
    EXPECT_EQ(rig.ram.read<u32>(shadow + 2 * 4), 1u);
    EXPECT_EQ(rig.ram.read<u32>(shadow + 3 * 4), 1u);

    // Three submissions, the shadow tail moved, one kick: all three run.
    for (int i = 0; i < 3; ++i)
        rig.driver.submit(1, NvmeRig::rw(false, 0, 1, DATA_GPA), false);
    rig.ram.write<u32>(shadow + 2 * 4, rig.driver.queue(1).sq_tail);
    rig.controller.doorbell_kick(nvme::REG_DOORBELL_BASE + 2 * 4);
    EXPECT_EQ(rig.backend.pending().size(), 3u);
    EXPECT_EQ(rig.ram.read<u32>(events + 2 * 4), 4u); // EventIdx = the tail it saw.
    rig.backend.complete_all(rig.controller);
    int reaped = 0;
    while (rig.driver.reap(1, false))
        ++reaped;
    EXPECT_EQ(reaped, 3);
    rig.ram.write<u32>(shadow + 3 * 4, rig.driver.queue(1).cq_head);
    // A hostile shadow tail (past the queue) is an invalid doorbell value, not a crash.
    rig.ram.write<u32>(shadow + 2 * 4, 999);
    rig.controller.doorbell_kick(nvme::REG_DOORBELL_BASE + 2 * 4);
    EXPECT_TRUE(rig.backend.pending().empty());
    EXPECT_FALSE(rig.controller.fatal());
    // The admin queue has no shadow: its kick is refused; a reset turns shadows off.
    rig.controller.doorbell_kick(nvme::REG_DOORBELL_BASE);
    rig.driver.write32(nvme::REG_CC, 0);
    EXPECT_FALSE(rig.controller.shadow_doorbells_enabled());
    EXPECT_EQ(rig.interrupts.shadow_changes, (std::vector<bool> { true, false }));
}

} // namespace
// The traffic recorder's seam: every fetched entry (admin and I/O) as the guest wrote it, and the
// PRP list a read/write walked (data and chain pointers, in order); nothing without a tap.
TEST(NvmeIo, CommandTapSeesEveryEntryAndTheWalkedPrpList)
{
    struct Tap final : nvme::CommandTap {
        std::vector<std::pair<u16, nvme::SubmissionEntry>> commands;
        std::vector<std::tuple<u16, u16, std::vector<u64>>> lists;
        void on_command(u16 sqid, nvme::SubmissionEntry const& e) override { commands.emplace_back(sqid, e); }
        void on_prp_list(u16 sqid, u16 cid, std::span<u64 const> entries) override
        {
            lists.emplace_back(sqid, cid, std::vector<u64>(entries.begin(), entries.end()));
        }
    } tap;
    NvmeRig rig;
    rig.controller.set_command_tap(&tap);
    rig.bring_up();
    ASSERT_GE(tap.commands.size(), 2u); // Create I/O CQ and SQ.
    EXPECT_TRUE(std::ranges::all_of(tap.commands, [](auto const& c) { return c.first == 0; }));
    tap.commands.clear();
    // Three pages: PRP1 and a list of two entries.
    rig.ram.write<u64>(LIST_GPA, DATA_GPA + 0x1000);
    rig.ram.write<u64>(LIST_GPA + 8, DATA_GPA + 0x2000);
    auto entry = NvmeRig::rw(false, 8, 24, DATA_GPA, LIST_GPA);
    entry.cdw0 |= u32 { 0x4321 } << 16; // The CID, so the driver keeps the entry as is.
    ASSERT_EQ(rig.io(entry), 0);
    ASSERT_EQ(tap.commands.size(), 1u);
    EXPECT_EQ(tap.commands[0].first, 1);
    EXPECT_EQ(std::memcmp(&tap.commands[0].second, &entry, sizeof entry), 0);
    ASSERT_EQ(tap.lists.size(), 1u);
    EXPECT_EQ(std::get<0>(tap.lists[0]), 1);
    EXPECT_EQ(std::get<1>(tap.lists[0]), entry.cid());
    EXPECT_EQ(std::get<2>(tap.lists[0]), (std::vector<u64> { DATA_GPA + 0x1000, DATA_GPA + 0x2000 }));
    // Two pages need no list.
    ASSERT_EQ(rig.io(NvmeRig::rw(false, 8, 16, DATA_GPA, DATA_GPA + 0x1000)), 0);
    EXPECT_EQ(tap.commands.size(), 2u);
    EXPECT_EQ(tap.lists.size(), 1u);
}

} // namespace vmm::test

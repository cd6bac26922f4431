// SPDX-License-Identifier: MIT
// The fuzz_nvme harness (tests/fuzz/nvme/fuzz_nvme.cpp), shared with the unit test that replays
// the seeds recorded from the Linux test guest (tests/unit/nvme/nvme_corpus_test.cpp): the input
// is a script of what a hostile guest does (enable with any admin queue, raw 64-byte commands with
// addresses biased towards RAM edges, the hole and bad alignments, arbitrary register and doorbell
// writes, PRP list bytes, resets, shutdowns, value-less kicks) and what the back-end does
// (complete requests in any order, with errors). ASan/UBSan catch host memory errors; the
// invariants checked after every step (FUZZ_CHECK aborts):
//   - every back-end request lies inside the namespace, and its buffers inside guest RAM
//     (FakeGuestMemory's guard pages fault on anything else) with the declared total length;
//   - the engine's count of outstanding back-end requests equals the fake back-end's;
//   - after the script, completing everything leaves nothing outstanding, and a reset then
//     reaches CSTS.RDY = 0.
#include "tests/support/nvme_fuzz_driver.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tests/support/fuzz_script.hpp"
#include "tests/support/nvme_fakes.hpp"

using namespace vmm;
using vmm::test::FakeBlockBackend;
using vmm::test::FakeGuestMemory;
using vmm::test::FakeNvmeInterrupts;
using vmm::test::FuzzScript;

namespace {

constexpr u64 RAM_BYTES = 1 * MIB;
constexpr u64 HIGH_GPA = 2 * MIB; // [1 MiB, 2 MiB) is a hole.
constexpr u64 HIGH_BYTES = 64 * KIB;
constexpr u64 DISK_BYTES = 256 * KIB;

FakeGuestMemory& ram()
{
    static FakeGuestMemory memory({ { 0, RAM_BYTES }, { HIGH_GPA, HIGH_BYTES } });
    return memory;
}

// Addresses a guest would pick to hurt: page starts, edges of RAM and the hole, misaligned.
u64 address(FuzzScript& s)
{
    u8 const kind = s.byte();
    u64 const page = s.byte();
    switch (kind % 8) {
    case 0: return page * 0x1000;                          // A low RAM page.
    case 1: return page * 0x1000 + (s.byte() & 0xFC);      // Dword aligned, in page.
    case 2: return RAM_BYTES - 0x1000 + (s.byte() << 4);   // Last page before the hole.
    case 3: return RAM_BYTES + page * 0x1000;              // The hole.
    case 4: return HIGH_GPA + (page % 16) * 0x1000;        // High RAM.
    case 5: return HIGH_GPA + HIGH_BYTES - 0x1000 + s.byte(); // End of RAM, any alignment.
    case 6: return 0xFEE0'0000 + page * 8;                 // MMIO-like.
    default: {
        u64 raw = 0;
        for (int i = 0; i < 8; ++i)
            raw |= u64 { s.byte() } << (8 * i);
        return raw;
    }
    }
}

// Low half first.
u32 dword(FuzzScript& s)
{
    u32 const low = s.u16();
    return low | (s.u16() << 16);
}

nvme::SubmissionEntry command(FuzzScript& s)
{
    nvme::SubmissionEntry e {};
    // Every read is its own statement: the operands of | (and a call's arguments) may be
    // evaluated in any order, and g++ (the corpus replay) and clang (libFuzzer) differ.
    u32 const opcode = s.byte();
    u32 const flags = s.byte() & 0xC3;
    e.cdw0 = opcode | (flags << 8) | (s.u16() << 16);
    e.nsid = s.byte() < 200 ? 1 : dword(s);
    e.prp1 = address(s);
    e.prp2 = address(s);
    e.cdw10 = dword(s);
    e.cdw11 = dword(s);
    e.cdw12 = dword(s);
    e.cdw13 = s.byte();
    return e;
}

// One back-end for every input, reset() to an all-zero disk: allocating 256 KiB per input cost
// a page fault per page.
FakeBlockBackend& shared_backend()
{
    static FakeBlockBackend backend { DISK_BYTES };
    return backend;
}

struct Harness {
    FakeBlockBackend& backend { shared_backend() };
    FakeNvmeInterrupts interrupts;
    nvme::NvmeController controller;
    u32 admin_tail { 0 };
    u32 admin_entries { 2 };
    u64 asq { 0 };

    static nvme::NvmeControllerConfig config()
    {
        nvme::NvmeControllerConfig c;
        c.serial = "FUZZ";
        c.max_io_queues = 4;
        c.msix_vectors = 5;
        c.max_queue_entries = 64;
        return c;
    }
    Harness()
        : controller(config(), ram().memory(), backend, interrupts)
    {
    }
    void write32(u64 offset, u32 value) { controller.mmio_write(offset, std::as_bytes(std::span { &value, 1 })); }
    void check()
    {
        FUZZ_CHECK(controller.backend_in_flight() == backend.pending().size());
        for (auto const& p : backend.pending()) {
            auto const& r = p.request;
            FUZZ_CHECK(r.offset <= DISK_BYTES && r.length <= DISK_BYTES - r.offset);
            if (r.op == nvme::BlockOp::Read || r.op == nvme::BlockOp::Write) {
                u64 total = 0;
                for (auto buffer : p.buffers)
                    total += buffer.size();
                FUZZ_CHECK(total == r.length && total > 0);
            }
        }
    }
};

} // namespace

namespace vmm::test {

void run_nvme_fuzz_input(std::uint8_t const* data, std::size_t size, nvme::NvmeStats* stats)
{
    ram().reset();
    shared_backend().reset();
    Harness h;
    FuzzScript s { data, size };
    for (int step = 0; step < 256 && !s.done(); ++step) {
        switch (s.byte() % 11) {
        case 0: { // Enable with an admin queue somewhere.
            h.admin_entries = 2 + s.byte() % 32;
            h.asq = address(s) & ~u64 { 0xFFF };
            u64 const acq = address(s) & ~u64 { 0xFFF };
            h.write32(nvme::REG_CC, 0);
            h.write32(nvme::REG_AQA, (h.admin_entries - 1) | ((h.admin_entries - 1) << 16));
            h.write32(nvme::REG_ASQ, static_cast<u32>(h.asq));
            h.write32(nvme::REG_ASQ + 4, static_cast<u32>(h.asq >> 32));
            h.write32(nvme::REG_ACQ, static_cast<u32>(acq));
            h.write32(nvme::REG_ACQ + 4, static_cast<u32>(acq >> 32));
            h.write32(nvme::REG_CC, test::NvmeTestDriver::cc_value() | ((s.byte() % 16) == 0 ? (1u << nvme::CC_MPS_SHIFT) : 0));
            h.admin_tail = 0;
            break;
        }
        case 1: { // An admin command (creating queues is most of what matters).
            auto e = command(s);
            if (s.byte() & 1)
                e.cdw0 = (e.cdw0 & ~0xFFu) | (s.byte() % 2 ? 0x05 : 0x01);
            if (ram().memory().is_ram(mem::Gpa { h.asq + u64 { h.admin_tail } * 64 }, 64))
                ram().write(h.asq + u64 { h.admin_tail } * 64, e);
            h.admin_tail = (h.admin_tail + 1) % h.admin_entries;
            h.write32(nvme::REG_DOORBELL_BASE, h.admin_tail);
            break;
        }
        case 2: { // An I/O command written at an address the guest chose for its SQ.
            u64 const at = address(s);
            if (ram().memory().is_ram(mem::Gpa { at }, 64))
                ram().write(at, command(s));
            break;
        }
        case 3: { // Any doorbell, any value.
            u64 const offset = nvme::REG_DOORBELL_BASE + (s.u16() % 0x3000);
            h.write32(offset, s.u16() % 80);
            break;
        }
        case 4: { // Any register.
            u64 const offset = s.byte() & 0x3C;
            h.write32(offset, dword(s));
            break;
        }
        case 5: { // PRP list / data bytes.
            u64 const at = address(s);
            u64 const value = address(s);
            if (ram().memory().is_ram(mem::Gpa { at }, 8))
                ram().write(at, value);
            break;
        }
        case 6: // Complete the oldest request, maybe failing.
            h.backend.complete_one(h.controller, (s.byte() % 4) == 0 ? 5 : 0);
            break;
        case 7: // Shutdown or reset.
            h.write32(nvme::REG_CC, (s.byte() & 1) ? test::NvmeTestDriver::cc_value() | (1u << nvme::CC_SHN_SHIFT) : 0);
            break;
        case 8: // A value-less ioeventfd kick.
            h.controller.doorbell_kick(nvme::REG_DOORBELL_BASE + (s.u16() % 0x3000));
            break;
        case 9: { // Any read.
            u32 value;
            h.controller.mmio_read(s.u16() % 0x4000, std::as_writable_bytes(std::span { &value, 1 }));
            break;
        }
        default: // Complete everything.
            h.backend.complete_all(h.controller);
            break;
        }
        h.check();
    }
    h.backend.complete_all(h.controller);
    FUZZ_CHECK(h.controller.backend_in_flight() == 0);
    if (stats != nullptr)
        *stats = h.controller.stats();
    h.write32(nvme::REG_CC, 0);
    FUZZ_CHECK(!h.controller.enabled());
}

} // namespace vmm::test

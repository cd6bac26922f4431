// SPDX-License-Identifier: MIT
// TrafficRecorder's file format for the NVMe and Hyper-V records (vmm/backends/
// traffic_recorder.hpp), as tests/fuzz/traffic_to_corpus.py reads it: one 56-byte header per
// record, then its header bytes and payload.
#include "vmm/backends/traffic_recorder.hpp"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <vector>

namespace vmm::backends {
namespace {

struct Record {
    TrafficRecordHeader header;
    std::vector<std::byte> header_bytes;
    std::vector<std::byte> payload;
};

std::vector<Record> read_all(int fd)
{
    std::vector<std::byte> file(static_cast<std::size_t>(::lseek(fd, 0, SEEK_END)));
    EXPECT_EQ(::pread(fd, file.data(), file.size(), 0), static_cast<ssize_t>(file.size()));
    std::vector<Record> out;
    for (std::size_t at = 0; at + sizeof(TrafficRecordHeader) <= file.size();) {
        Record r;
        std::memcpy(&r.header, file.data() + at, sizeof r.header);
        at += sizeof r.header;
        r.header_bytes.assign(file.begin() + static_cast<std::ptrdiff_t>(at),
            file.begin() + static_cast<std::ptrdiff_t>(at + r.header.header_bytes));
        at += r.header.header_bytes;
        r.payload.assign(file.begin() + static_cast<std::ptrdiff_t>(at), file.begin() + static_cast<std::ptrdiff_t>(at + r.header.payload_bytes));
        at += r.header.payload_bytes;
        out.push_back(std::move(r));
    }
    return out;
}

TEST(TrafficRecorder, WritesNvmeCommandsPrpListsMsrWritesAndHypercalls)
{
    int const fd = ::memfd_create("traffic", MFD_CLOEXEC);
    ASSERT_GE(fd, 0);
    TrafficRecorder recorder { Fd { ::dup(fd) } };
    nvme::SubmissionEntry entry {};
    entry.cdw0 = 0x0007'0002; // Read, CID 7.
    entry.prp2 = 0x5000;
    recorder.on_command(1, entry);
    std::array<u64, 2> const list { 0x6000, 0x7000 };
    recorder.on_prp_list(1, 7, list);
    recorder.on_msr_write(2, 0x4000'0001, 0x1234'5001);
    std::array<std::byte, 24> input {};
    input[0] = std::byte { 0xAB };
    recorder.on_hypercall(0, 0x5C, 0x3000, 0x4000, input);

    auto records = read_all(fd);
    ::close(fd);
    ASSERT_EQ(records.size(), 4u);
    EXPECT_EQ(records[0].header.kind, static_cast<u8>(TrafficKind::NvmeCommand));
    EXPECT_EQ(records[0].header.id, 1u);
    ASSERT_EQ(records[0].payload.size(), sizeof entry);
    EXPECT_EQ(std::memcmp(records[0].payload.data(), &entry, sizeof entry), 0);
    EXPECT_EQ(records[1].header.kind, static_cast<u8>(TrafficKind::NvmePrpList));
    EXPECT_EQ(records[1].header.id, 1u);
    EXPECT_EQ(records[1].header.type, 7u);
    ASSERT_EQ(records[1].payload.size(), sizeof list);
    EXPECT_EQ(std::memcmp(records[1].payload.data(), list.data(), sizeof list), 0);
    EXPECT_EQ(records[2].header.kind, static_cast<u8>(TrafficKind::HypervMsrWrite));
    EXPECT_EQ(records[2].header.id, 0x4000'0001u);
    EXPECT_EQ(records[2].header.vp_or_flags, 2u);
    u64 value = 0;
    ASSERT_EQ(records[2].payload.size(), sizeof value);
    std::memcpy(&value, records[2].payload.data(), sizeof value);
    EXPECT_EQ(value, 0x1234'5001u);
    EXPECT_EQ(records[3].header.kind, static_cast<u8>(TrafficKind::Hypercall));
    ASSERT_EQ(records[3].header_bytes.size(), 24u);
    u64 regs[3];
    std::memcpy(regs, records[3].header_bytes.data(), sizeof regs);
    EXPECT_EQ(regs[0], 0x5Cu);
    EXPECT_EQ(regs[1], 0x3000u);
    EXPECT_EQ(regs[2], 0x4000u);
    ASSERT_EQ(records[3].payload.size(), input.size());
    EXPECT_EQ(records[3].payload[0], std::byte { 0xAB });
    for (auto const& r : records)
        EXPECT_NE(r.header.monotonic_ns, 0u);
}

} // namespace
} // namespace vmm::backends

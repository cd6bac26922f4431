// SPDX-License-Identifier: MIT
// TrafficRecorder: an opt-in debug facility that writes what the guest sends the VMBus host
// (every HvPostMessage payload and every guest->host ring packet a device accepted), its Hyper-V
// partition (synthetic MSR writes, hypercalls with their input) and its NVMe controllers (every
// submission queue entry fetched, the PRP lists reads and writes walked) to one binary file, so
// tests/fuzz/traffic_to_corpus.py can turn a real Linux guest's traffic into fuzz seeds (README
// "Fuzzing"). Off unless MICROVMM_RECORD_GUEST_TRAFFIC names a directory; then main() opens
// DIR/guest-traffic-<pid>.bin before the sandbox forbids creating files, and every machine of the
// process (reboots too) appends to it. The guest controls what is written and how much: a
// debugging aid for a trusted test guest, never for production. Off, each tap is a null pointer
// the device tests.
//
// File: "MVTRAF1\n", then records: TrafficRecordHeader, `header_bytes` packet header bytes
// (descriptor to offset8*8; a Hypercall's registers), `payload_bytes` payload bytes.
// Little-endian.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/wire.hpp"
#include "devices/nvme/command_tap.hpp"
#include "devices/vmbus/traffic_tap.hpp"
#include "vmm/hyperv/traffic_tap.hpp"

namespace vmm::backends {

inline constexpr char TRAFFIC_MAGIC[8] = { 'M', 'V', 'T', 'R', 'A', 'F', '1', '\n' };
inline constexpr char const* TRAFFIC_ENVIRONMENT = "MICROVMM_RECORD_GUEST_TRAFFIC";

enum class TrafficKind : std::uint8_t {
    GuestMessage = 1, // HvPostMessage: id = connection id, type = SynIC message type, vp_or_flags = VP.
    GuestPacket = 2,  // Ring packet: id = relid, type = VmPacketType, vp_or_flags = descriptor flags.
    GuestBytes = 3,   // A message a device gathered from guest memory (netvsc RNDIS): id = relid.
    NvmeCommand = 4,  // An NVMe submission queue entry (64 bytes): id = SQ id (0 admin).
    NvmePrpList = 5,  // The PRP list entries (u64 each) a read/write walked: id = SQ id, type = CID.
    HypervMsrWrite = 6, // A synthetic WRMSR: id = MSR, vp_or_flags = VP, payload = the u64 value.
    Hypercall = 7,    // vp_or_flags = VP; header = control, input GPA/rdx, output GPA/r8 (u64 each);
                      // payload = the start of a memory call's input page.
};

struct TrafficRecordHeader {
    std::uint8_t kind;
    std::uint8_t reserved[3];
    std::uint32_t id;
    std::uint32_t type;
    std::uint32_t vp_or_flags;
    std::uint64_t monotonic_ns;         // CLOCK_MONOTONIC when recorded (gaps show timer-driven host requests).
    std::uint64_t transaction_id;       // Packets only.
    std::uint8_t interface_type[16];    // Packets only: the device's class GUID (wire order).
    std::uint32_t header_bytes;
    std::uint32_t payload_bytes;
};
static_assert(sizeof(TrafficRecordHeader) == 56 && Wire<TrafficRecordHeader>);

// Threads: VMBus records come under the VMBus glue lock, NVMe ones under each disk's controller
// lock (vCPU and nvme-io threads): one writev per record on a regular file, whose offset the
// kernel updates atomically per write, so records never interleave.
class TrafficRecorder final : public vmbus::TrafficTap, public nvme::CommandTap, public hyperv::TrafficTap {
public:
    // Opens the process's recording if the environment asks for one (main, before the sandbox).
    // Errors name the file; without the variable it does nothing.
    static Result<void> open_from_environment();
    // The process's recorder, or nullptr when recording is off.
    static TrafficRecorder* instance();

    void on_guest_message(u32 vp, u32 connection_id, u32 message_type, std::span<std::byte const> payload) override;
    void on_guest_packet(vmbus::Guid const& interface_type, u32 relid, vmbus::InboundPacket const& packet) override;
    void on_guest_bytes(vmbus::Guid const& interface_type, u32 relid, std::span<std::byte const> bytes) override;
    void on_command(u16 sqid, nvme::SubmissionEntry const&) override;
    void on_prp_list(u16 sqid, u16 cid, std::span<u64 const> entries) override;
    void on_msr_write(std::uint32_t vp, std::uint32_t msr, std::uint64_t value) override;
    void on_hypercall(std::uint32_t vp, std::uint64_t control, std::uint64_t input, std::uint64_t output,
        std::span<std::byte const> input_bytes) override;

    explicit TrafficRecorder(Fd file)
        : m_file(std::move(file))
    {
    }

private:
    void write_record(TrafficRecordHeader const& header, std::span<std::byte const> first, std::span<std::byte const> second);

    Fd m_file;
    std::atomic<bool> m_failed { false }; // After a write error: stop recording, the VM runs on.
};

} // namespace vmm::backends

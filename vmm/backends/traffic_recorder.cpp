// SPDX-License-Identifier: MIT
// TrafficRecorder: see traffic_recorder.hpp.
#include "vmm/backends/traffic_recorder.hpp"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>

#include <fmt/format.h>

#include "base/log.hpp"

namespace vmm::backends {

namespace {

std::unique_ptr<TrafficRecorder>& process_recorder()
{
    static std::unique_ptr<TrafficRecorder> recorder;
    return recorder;
}

} // namespace

Result<void> TrafficRecorder::open_from_environment()
{
    char const* directory = std::getenv(TRAFFIC_ENVIRONMENT);
    if (directory == nullptr || *directory == '\0' || process_recorder())
        return {};
    auto path = fmt::format("{}/guest-traffic-{}.bin", directory, ::getpid());
    Fd file { ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) };
    if (!file.is_open())
        return fail(Errc::Syscall, fmt::format("{}: creating the guest traffic recording {}: {}", TRAFFIC_ENVIRONMENT, path,
                                   std::strerror(errno)));
    if (::write(file.get(), TRAFFIC_MAGIC, sizeof TRAFFIC_MAGIC) != sizeof TRAFFIC_MAGIC)
        return fail(Errc::Syscall, fmt::format("writing {}: {}", path, std::strerror(errno)));
    log::warn("vmm", "recording guest VMBus traffic to {} (debugging aid: {} is set)", path, TRAFFIC_ENVIRONMENT);
    process_recorder() = std::make_unique<TrafficRecorder>(std::move(file));
    return {};
}

TrafficRecorder* TrafficRecorder::instance() { return process_recorder().get(); }

void TrafficRecorder::on_guest_message(u32 vp, u32 connection_id, u32 message_type, std::span<std::byte const> payload)
{
    TrafficRecordHeader header {};
    header.kind = static_cast<std::uint8_t>(TrafficKind::GuestMessage);
    header.id = connection_id;
    header.type = message_type;
    header.vp_or_flags = vp;
    header.payload_bytes = static_cast<std::uint32_t>(payload.size());
    write_record(header, {}, payload);
}

void TrafficRecorder::on_guest_packet(vmbus::Guid const& interface_type, u32 relid, vmbus::InboundPacket const& packet)
{
    TrafficRecordHeader header {};
    header.kind = static_cast<std::uint8_t>(TrafficKind::GuestPacket);
    header.id = relid;
    header.type = static_cast<std::uint32_t>(packet.type);
    header.vp_or_flags = packet.flags;
    header.transaction_id = packet.transaction_id;
    std::memcpy(header.interface_type, interface_type.bytes.data(), sizeof header.interface_type);
    header.header_bytes = static_cast<std::uint32_t>(packet.header.size());
    header.payload_bytes = static_cast<std::uint32_t>(packet.payload.size());
    write_record(header, packet.header, packet.payload);
}

void TrafficRecorder::on_guest_bytes(vmbus::Guid const& interface_type, u32 relid, std::span<std::byte const> bytes)
{
    TrafficRecordHeader header {};
    header.kind = static_cast<std::uint8_t>(TrafficKind::GuestBytes);
    header.id = relid;
    std::memcpy(header.interface_type, interface_type.bytes.data(), sizeof header.interface_type);
    header.payload_bytes = static_cast<std::uint32_t>(bytes.size());
    write_record(header, {}, bytes);
}

void TrafficRecorder::on_command(u16 sqid, nvme::SubmissionEntry const& entry)
{
    TrafficRecordHeader header {};
    header.kind = static_cast<std::uint8_t>(TrafficKind::NvmeCommand);
    header.id = sqid;
    header.payload_bytes = sizeof entry;
    write_record(header, {}, std::as_bytes(std::span { &entry, 1 }));
}

void TrafficRecorder::on_prp_list(u16 sqid, u16 cid, std::span<u64 const> entries)
{
    TrafficRecordHeader header {};
    header.kind = static_cast<std::uint8_t>(TrafficKind::NvmePrpList);
    header.id = sqid;
    header.type = cid;
    header.payload_bytes = static_cast<std::uint32_t>(entries.size_bytes());
    write_record(header, {}, std::as_bytes(entries));
}

void TrafficRecorder::on_msr_write(std::uint32_t vp, std::uint32_t msr, std::uint64_t value)
{
    TrafficRecordHeader header {};
    header.kind = static_cast<std::uint8_t>(TrafficKind::HypervMsrWrite);
    header.id = msr;
    header.vp_or_flags = vp;
    header.payload_bytes = sizeof value;
    write_record(header, {}, std::as_bytes(std::span { &value, 1 }));
}

void TrafficRecorder::on_hypercall(std::uint32_t vp, std::uint64_t control, std::uint64_t input, std::uint64_t output,
    std::span<std::byte const> input_bytes)
{
    std::uint64_t const regs[3] = { control, input, output };
    TrafficRecordHeader header {};
    header.kind = static_cast<std::uint8_t>(TrafficKind::Hypercall);
    header.vp_or_flags = vp;
    header.header_bytes = sizeof regs;
    header.payload_bytes = static_cast<std::uint32_t>(input_bytes.size());
    write_record(header, std::as_bytes(std::span { regs }), input_bytes);
}

void TrafficRecorder::write_record(TrafficRecordHeader const& header, std::span<std::byte const> first,
    std::span<std::byte const> second)
{
    if (m_failed.load(std::memory_order_relaxed))
        return;
    timespec now {};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    auto stamped = header;
    stamped.monotonic_ns = static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(now.tv_nsec);
    iovec parts[3] = { { &stamped, sizeof stamped },
        { const_cast<std::byte*>(first.data()), first.size() }, { const_cast<std::byte*>(second.data()), second.size() } };
    auto const total = sizeof header + first.size() + second.size();
    // One writev per record: a regular file takes it whole or fails (a short write is an error too).
    if (::writev(m_file.get(), parts, 3) != static_cast<ssize_t>(total)) {
        m_failed.store(true, std::memory_order_relaxed);
        log::warn("vmm", "guest traffic recording stopped: write failed: {}", std::strerror(errno));
    }
}

} // namespace vmm::backends

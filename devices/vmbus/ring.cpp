// SPDX-License-Identifier: MIT
// VMBus ring reader/writer over GPADL pages; see ring.hpp. Memory ordering mirrors the guest
// side in Linux drivers/hv/ring_buffer.c: data before write_index (release), read_index after
// the copy (release), and a full fence between publishing an index and reading the other
// side's signalling word (interrupt_mask / pending_send_sz).
#include "devices/vmbus/ring.hpp"

#include <atomic>
#include <cstring>

namespace vmm::vmbus {

namespace {

// Keeps every ring offset sum (index + packet bytes) far from u32 overflow.
constexpr std::size_t MAX_RING_PAGES = 65536;
// len8 is a u16 count of 8-byte units (include/linux/hyperv.h:335-341).
constexpr u64 MAX_PACKET_BYTES = u64 { 0xffff } * PACKET_ALIGN_BYTES;

bool valid_index(u32 index, u32 data_bytes) { return index < data_bytes && index % PACKET_ALIGN_BYTES == 0; }

} // namespace

Result<RingPages> RingPages::from_pages(std::span<mem::Gpn const> pages)
{
    if (pages.size() < 2 || pages.size() > MAX_RING_PAGES)
        return fail(Errc::GuestProtocol, "ring page count", pages.size());
    RingPages ring;
    ring.m_pages.assign(pages.begin(), pages.end());
    ring.m_data_bytes = static_cast<u32>((pages.size() - 1) * mem::PAGE_SIZE);
    return ring;
}

Result<void> RingPages::copy(mem::GuestMemory const& memory, u32 offset, std::span<std::byte> out,
    std::span<std::byte const> in) const
{
    std::size_t total = out.empty() ? in.size() : out.size();
    if (offset >= m_data_bytes || total > m_data_bytes)
        return fail(Errc::OutOfRange, "ring copy", offset);
    std::size_t done = 0;
    u64 position = offset;
    while (done < total) {
        // Data byte p lives in GPADL page 1 + p / 4096 (page 0 is the header page).
        u64 page_index = 1 + position / mem::PAGE_SIZE;
        u64 in_page = position % mem::PAGE_SIZE;
        std::size_t chunk = std::min<std::size_t>(total - done, mem::PAGE_SIZE - in_page);
        mem::Gpa gpa { m_pages[page_index].address().raw() + in_page };
        if (!out.empty())
            VMM_TRY(memory.read(gpa, out.subspan(done, chunk)));
        else
            VMM_TRY(memory.write(gpa, in.subspan(done, chunk)));
        done += chunk;
        position += chunk;
        if (position == m_data_bytes)
            position = 0; // Wrap to the first data page.
    }
    return {};
}

Result<void> RingPages::read(mem::GuestMemory const& memory, u32 offset, std::span<std::byte> out) const
{
    if (out.empty())
        return {};
    return copy(memory, offset, out, {});
}

Result<void> RingPages::write(mem::GuestMemory const& memory, u32 offset, std::span<std::byte const> in) const
{
    if (in.empty())
        return {};
    return copy(memory, offset, {}, in);
}

Result<u32> RingPages::load(mem::GuestMemory const& memory, u64 field_offset) const
{
    auto word = VMM_TRY(memory.contiguous(mem::Gpa { m_pages[0].address().raw() + field_offset }, sizeof(u32)));
    // atomic_ref needs a naturally aligned object: host RAM is page aligned, so only a broken
    // host mapping could fail this.
    if (reinterpret_cast<std::uintptr_t>(word.data()) % alignof(u32) != 0)
        return fail(Errc::InvalidArgument, "ring header not aligned in host memory", field_offset);
    // SAFETY: the word lies in guest RAM that the guest writes concurrently; atomic_ref gives a
    // single untorn load, acquire pairs with the guest's barrier before its index store.
    return std::atomic_ref<u32>(*reinterpret_cast<u32*>(word.data())).load(std::memory_order_acquire);
}

Result<void> RingPages::store(mem::GuestMemory const& memory, u64 field_offset, u32 value) const
{
    auto word = VMM_TRY(memory.contiguous(mem::Gpa { m_pages[0].address().raw() + field_offset }, sizeof(u32)));
    if (reinterpret_cast<std::uintptr_t>(word.data()) % alignof(u32) != 0)
        return fail(Errc::InvalidArgument, "ring header not aligned in host memory", field_offset);
    // SAFETY: as in load(); release orders our earlier data copies before the index.
    std::atomic_ref<u32>(*reinterpret_cast<u32*>(word.data())).store(value, std::memory_order_release);
    return {};
}

// ---- RingReader ---------------------------------------------------------------------------------

RingReader::RingReader(mem::GuestMemory const& memory, RingPages pages)
    : m_memory(memory)
    , m_pages(std::move(pages))
{
}

Result<u32> RingReader::load_index(u64 field_offset) const
{
    u32 index = VMM_TRY(m_pages.load(m_memory, field_offset));
    if (!valid_index(index, m_pages.data_bytes()))
        return fail(Errc::GuestProtocol, "ring index out of range or unaligned", index);
    return index;
}

Result<void> RingReader::start()
{
    m_read = VMM_TRY(load_index(RING_READ_INDEX_OFFSET));
    m_published_read = m_read;
    return {};
}

Result<bool> RingReader::has_data()
{
    u32 write = VMM_TRY(load_index(RING_WRITE_INDEX_OFFSET));
    return write != m_read;
}

Result<std::optional<ReceivedPacket>> RingReader::next(std::vector<std::byte>& buffer)
{
    u32 size = m_pages.data_bytes();
    u32 write = VMM_TRY(load_index(RING_WRITE_INDEX_OFFSET));
    u32 available = write >= m_read ? write - m_read : size - m_read + write;
    if (available == 0)
        return std::nullopt;
    // The guest publishes whole packets only (ring_buffer.c:386-400): less than a descriptor and
    // trailer means the indices lie.
    if (available < sizeof(PacketDescriptor) + PACKET_TRAILER_BYTES)
        return fail(Errc::GuestProtocol, "ring holds a partial packet", available);

    PacketDescriptor descriptor;
    VMM_TRY(m_pages.read(m_memory, m_read, std::as_writable_bytes(std::span { &descriptor, 1 })));
    u64 packet_bytes = u64 { descriptor.len8 } * PACKET_ALIGN_BYTES;
    u64 offset_bytes = u64 { descriptor.offset8 } * PACKET_ALIGN_BYTES;
    // Contract §7.5: 16 <= offset8*8 <= len8*8 and len8*8 + 8 <= bytes available.
    if (offset_bytes < sizeof(PacketDescriptor) || offset_bytes > packet_bytes
        || packet_bytes + PACKET_TRAILER_BYTES > available)
        return fail(Errc::GuestProtocol, "ring packet descriptor lies", descriptor.len8);

    // Copy the whole packet once; only the validated descriptor copy above is used for sizes.
    buffer.resize(packet_bytes);
    VMM_TRY(m_pages.read(m_memory, m_read, buffer));
    m_read = static_cast<u32>((m_read + packet_bytes + PACKET_TRAILER_BYTES) % size);
    return ReceivedPacket { descriptor,
        std::span<std::byte const>(buffer).subspan(offset_bytes, packet_bytes - offset_bytes) };
}

Result<bool> RingReader::commit()
{
    u32 size = m_pages.data_bytes();
    u32 start_read = m_published_read;
    VMM_TRY(m_pages.store(m_memory, RING_READ_INDEX_OFFSET, m_read));
    m_published_read = m_read;
    // The guest sets feat_pending_send_sz on its outbound ring when it will wait on
    // pending_send_sz (include/linux/hyperv.h:120-150).
    u32 features = VMM_TRY(m_pages.load(m_memory, RING_FEATURE_BITS_OFFSET));
    if ((features & RING_FEATURE_PENDING_SEND_SZ) == 0)
        return false;
    // Publish read_index before sampling pending_send_sz (ring_buffer.c:623-633).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    u32 pending = VMM_TRY(m_pages.load(m_memory, RING_PENDING_SEND_SZ_OFFSET));
    if (pending == 0)
        return false;
    u32 write = VMM_TRY(load_index(RING_WRITE_INDEX_OFFSET));
    u32 free_now = write >= m_read ? size - (write - m_read) : m_read - write;
    u32 bytes_read = m_read >= start_read ? m_read - start_read : size - start_read + m_read;
    // Signal only on the "not enough room" -> "enough room" transition; a full ring is "not
    // enough" (ring_buffer.c:655-674).
    if (free_now >= bytes_read && free_now - bytes_read > pending)
        return false;
    return free_now > pending;
}

Result<void> RingReader::set_interrupt_mask(bool masked)
{
    VMM_TRY(m_pages.store(m_memory, RING_INTERRUPT_MASK_OFFSET, masked ? 1 : 0));
    // Unmask, then re-check write_index: the guest writes data, then reads interrupt_mask.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return {};
}

// ---- RingWriter ---------------------------------------------------------------------------------

RingWriter::RingWriter(mem::GuestMemory const& memory, RingPages pages)
    : m_memory(memory)
    , m_pages(std::move(pages))
{
}

Result<void> RingWriter::start()
{
    u32 write = VMM_TRY(m_pages.load(m_memory, RING_WRITE_INDEX_OFFSET));
    if (!valid_index(write, m_pages.data_bytes()))
        return fail(Errc::GuestProtocol, "ring write index out of range or unaligned", write);
    m_write = write;
    VMM_TRY(free_bytes()); // Validates read_index too.
    // pending_send_sz of this ring is ours; the guest may have left anything there.
    VMM_TRY(m_pages.store(m_memory, RING_PENDING_SEND_SZ_OFFSET, 0));
    m_pending_send_bytes = 0;
    return {};
}

Result<u32> RingWriter::free_bytes() const
{
    u32 read = VMM_TRY(m_pages.load(m_memory, RING_READ_INDEX_OFFSET));
    u32 size = m_pages.data_bytes();
    if (!valid_index(read, size))
        return fail(Errc::GuestProtocol, "ring read index out of range or unaligned", read);
    // hv_get_bytes_to_write (hyperv_vmbus.h): read == write means empty.
    return read > m_write ? read - m_write : size - (m_write - read);
}

Result<u64> RingWriter::payload_space_bytes() const
{
    u64 free = VMM_TRY(free_bytes());
    // A packet must leave at least one byte free (ring_buffer.c:327), so it takes < free bytes.
    u64 overhead = sizeof(PacketDescriptor) + PACKET_TRAILER_BYTES;
    if (free <= overhead + 1)
        return 0;
    u64 payload = (free - overhead - 1) & ~(PACKET_ALIGN_BYTES - 1);
    return std::min(payload, MAX_PACKET_BYTES - sizeof(PacketDescriptor));
}

Result<bool> RingWriter::write(VmPacketType type, u16 flags, u64 transaction_id, std::span<std::byte const> header,
    std::span<std::byte const> payload)
{
    u32 size = m_pages.data_bytes();
    if (header.size() % PACKET_ALIGN_BYTES != 0 || header.size() > MAX_PACKET_BYTES)
        return fail(Errc::InvalidArgument, "packet header not 8-byte sized", header.size());
    u64 total = packet_ring_bytes(header.size() + payload.size());
    if (total - PACKET_TRAILER_BYTES > MAX_PACKET_BYTES || total >= size)
        return fail(Errc::InvalidArgument, "packet larger than the ring", payload.size());
    u32 free = VMM_TRY(free_bytes());
    if (free <= total) {
        // Ask the guest to signal once it has freed enough (guest-interface §7.6), then re-check in case
        // it read everything before seeing pending_send_sz.
        m_pending_send_bytes = static_cast<u32>(total);
        VMM_TRY(m_pages.store(m_memory, RING_PENDING_SEND_SZ_OFFSET, m_pending_send_bytes));
        std::atomic_thread_fence(std::memory_order_seq_cst);
        free = VMM_TRY(free_bytes());
        if (free <= total)
            return fail(Errc::Busy, "host->guest ring full", total);
    }

    std::vector<std::byte> packet(total, std::byte { 0 });
    PacketDescriptor descriptor { static_cast<u16>(type),
        static_cast<u16>((sizeof(PacketDescriptor) + header.size()) / PACKET_ALIGN_BYTES),
        static_cast<u16>((total - PACKET_TRAILER_BYTES) / PACKET_ALIGN_BYTES), flags, transaction_id };
    std::memcpy(packet.data(), &descriptor, sizeof(descriptor));
    if (!header.empty())
        std::memcpy(packet.data() + sizeof(descriptor), header.data(), header.size());
    if (!payload.empty())
        std::memcpy(packet.data() + sizeof(descriptor) + header.size(), payload.data(), payload.size());
    // Trailer: the packet's start offset in the upper half (ring_buffer.c:96-101, Appendix A).
    u64 trailer = u64 { m_write } << 32;
    std::memcpy(packet.data() + total - PACKET_TRAILER_BYTES, &trailer, sizeof(trailer));
    VMM_TRY(m_pages.write(m_memory, m_write, packet));

    u32 old_write = m_write;
    m_write = static_cast<u32>((m_write + total) % size);
    VMM_TRY(m_pages.store(m_memory, RING_WRITE_INDEX_OFFSET, m_write));
    if (m_pending_send_bytes != 0) {
        m_pending_send_bytes = 0;
        VMM_TRY(m_pages.store(m_memory, RING_PENDING_SEND_SZ_OFFSET, 0));
    }
    // Publish write_index before reading interrupt_mask (ring_buffer.c:52-70).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    u32 masked = VMM_TRY(m_pages.load(m_memory, RING_INTERRUPT_MASK_OFFSET));
    if (masked != 0)
        return false;
    u32 read = VMM_TRY(m_pages.load(m_memory, RING_READ_INDEX_OFFSET));
    return read == old_write; // Empty -> non-empty: the only transition that needs a signal.
}

Result<bool> RingWriter::space_freed()
{
    if (m_pending_send_bytes == 0)
        return false;
    u32 free = VMM_TRY(free_bytes());
    if (free <= m_pending_send_bytes)
        return false;
    m_pending_send_bytes = 0;
    VMM_TRY(m_pages.store(m_memory, RING_PENDING_SEND_SZ_OFFSET, 0));
    return true;
}

} // namespace vmm::vmbus

// SPDX-License-Identifier: MIT
// TestVmbusGuest: the Linux guest side of VMBus for tests; see vmbus_test_guest.hpp.
#include "tests/support/vmbus_test_guest.hpp"

#include <cstring>

namespace vmm::test {

using namespace vmm::vmbus;

namespace {

template<typename T>
T header_of(MessageType type)
{
    T message {};
    message.header.msgtype = static_cast<std::uint32_t>(type);
    return message;
}

} // namespace

std::uint16_t TestVmbusGuest::post_bytes(std::span<std::byte const> bytes, std::optional<std::uint32_t> connection_id)
{
    return m_host.handle_post_message(m_vp, connection_id.value_or(m_msg_conn_id), HVMSG_VMBUS, bytes);
}

std::optional<FakeSynicPort::Posted> TestVmbusGuest::receive()
{
    auto message = m_synic.take(m_vp);
    if (message)
        m_host.on_slot_freed(m_vp, VMBUS_MESSAGE_SINT); // EOM: the host may post the next one.
    return message;
}

std::vector<FakeSynicPort::Posted> TestVmbusGuest::receive_all()
{
    std::vector<FakeSynicPort::Posted> all;
    // Random refusals can leave the slot empty while the host still queues: kick it a few times.
    for (int idle = 0; idle < 64; ++idle) {
        auto message = receive();
        if (!message) {
            m_host.on_slot_freed(m_vp, VMBUS_MESSAGE_SINT);
            continue;
        }
        all.push_back(std::move(*message));
        idle = 0;
    }
    return all;
}

InitiateContact TestVmbusGuest::initiate_contact_message(std::uint32_t version) const
{
    auto message = header_of<InitiateContact>(MessageType::CHANNELMSG_INITIATE_CONTACT);
    message.vmbus_version_requested = version;
    message.target_vcpu = m_vp;
    // connection.c:99-108: >= 5.0 sends msg_sint, older versions the interrupt page GPA.
    message.interrupt_page_or_sint = version >= VERSION_WIN10_V5 ? VMBUS_MESSAGE_SINT : 0x10000;
    message.monitor_page1 = 0x11000;
    message.monitor_page2 = 0x12000;
    return message;
}

bool TestVmbusGuest::initiate_contact(std::uint32_t version)
{
    std::uint32_t connection = version >= VERSION_WIN10_V5 ? VMBUS_MESSAGE_CONNECTION_ID_4 : VMBUS_MESSAGE_CONNECTION_ID;
    if (post(initiate_contact_message(version), connection) != HV_STATUS_SUCCESS)
        return false;
    for (auto const& message : receive_all()) {
        if (message.msgtype() != static_cast<std::uint32_t>(MessageType::CHANNELMSG_VERSION_RESPONSE))
            continue;
        auto response = as<VersionResponse>(message);
        if (!response.version_supported)
            return false;
        m_msg_conn_id = version >= VERSION_WIN10_V5 ? response.msg_conn_id : VMBUS_MESSAGE_CONNECTION_ID;
        return true;
    }
    return false;
}

std::optional<std::uint32_t> TestVmbusGuest::negotiate(std::span<std::uint32_t const> versions)
{
    for (std::uint32_t version : versions)
        if (initiate_contact(version))
            return version;
    return std::nullopt;
}

std::vector<OfferChannel> TestVmbusGuest::request_offers()
{
    std::vector<OfferChannel> offers;
    post(header_of<InitiateContact>(MessageType::CHANNELMSG_REQUESTOFFERS).header);
    for (auto const& message : receive_all()) {
        if (message.msgtype() == static_cast<std::uint32_t>(MessageType::CHANNELMSG_OFFERCHANNEL))
            offers.push_back(as<OfferChannel>(message));
        if (message.msgtype() == static_cast<std::uint32_t>(MessageType::CHANNELMSG_ALLOFFERS_DELIVERED))
            break;
    }
    return offers;
}

std::uint32_t TestVmbusGuest::create_gpadl(std::uint32_t relid, std::uint32_t gpadl, std::span<mem::Gpn const> pages)
{
    // channel.c:311-446: header with up to 26 PFNs, bodies with up to 28, msgnumber left 0.
    constexpr std::size_t HEADER_PFNS = 26, BODY_PFNS = 28;
    std::vector<std::byte> header(sizeof(GpadlHeader) + sizeof(GpaRange) + 8 * std::min(pages.size(), HEADER_PFNS));
    auto fixed = header_of<GpadlHeader>(MessageType::CHANNELMSG_GPADL_HEADER);
    fixed.child_relid = relid;
    fixed.gpadl = gpadl;
    fixed.range_buflen = static_cast<std::uint16_t>(sizeof(GpaRange) + 8 * pages.size());
    fixed.rangecount = 1;
    GpaRange range { static_cast<std::uint32_t>(pages.size() * 4096), 0 };
    std::memcpy(header.data(), &fixed, sizeof(fixed));
    std::memcpy(header.data() + sizeof(fixed), &range, sizeof(range));
    for (std::size_t i = 0; i < std::min(pages.size(), HEADER_PFNS); ++i) {
        std::uint64_t pfn = pages[i].raw();
        std::memcpy(header.data() + sizeof(fixed) + sizeof(range) + 8 * i, &pfn, 8);
    }
    post_bytes(header);
    for (std::size_t next = HEADER_PFNS; next < pages.size(); next += BODY_PFNS) {
        std::size_t count = std::min(BODY_PFNS, pages.size() - next);
        std::vector<std::byte> body(sizeof(GpadlBody) + 8 * count);
        auto body_fixed = header_of<GpadlBody>(MessageType::CHANNELMSG_GPADL_BODY);
        body_fixed.gpadl = gpadl;
        std::memcpy(body.data(), &body_fixed, sizeof(body_fixed));
        for (std::size_t i = 0; i < count; ++i) {
            std::uint64_t pfn = pages[next + i].raw();
            std::memcpy(body.data() + sizeof(body_fixed) + 8 * i, &pfn, 8);
        }
        post_bytes(body);
    }
    for (auto const& message : receive_all()) {
        if (message.msgtype() != static_cast<std::uint32_t>(MessageType::CHANNELMSG_GPADL_CREATED))
            continue;
        auto created = as<GpadlCreated>(message);
        if (created.gpadl == gpadl && created.child_relid == relid)
            return created.creation_status;
    }
    return NO_REPLY;
}

std::uint32_t TestVmbusGuest::open_channel(std::uint32_t relid, std::uint32_t gpadl, std::uint32_t downstream_page_offset,
    std::uint32_t target_vp)
{
    auto open = header_of<OpenChannel>(MessageType::CHANNELMSG_OPENCHANNEL);
    open.child_relid = relid;
    open.openid = relid; // channel.c:736-752
    open.ringbuffer_gpadlhandle = gpadl;
    open.target_vp = target_vp;
    open.downstream_ringbuffer_pageoffset = downstream_page_offset;
    post(open);
    for (auto const& message : receive_all()) {
        if (message.msgtype() != static_cast<std::uint32_t>(MessageType::CHANNELMSG_OPENCHANNEL_RESULT))
            continue;
        auto result = as<OpenResult>(message);
        if (result.child_relid == relid && result.openid == relid)
            return result.status;
    }
    return NO_REPLY;
}

std::uint32_t TestVmbusGuest::bring_up(OfferChannel const& offer, std::span<mem::Gpn const> pages,
    std::uint32_t downstream_page_offset, std::uint32_t gpadl)
{
    m_pages.assign(pages.begin(), pages.end());
    m_downstream = downstream_page_offset;
    m_connection_id = offer.connection_id;
    // ring_buffer.c:190-258: zeroed pages, read = write = 0, feature_bits = 1 on both rings.
    for (auto page : m_pages)
        m_memory.fill_page(page, std::byte { 0 });
    set_header_word(outbound_header(), RING_FEATURE_BITS_OFFSET, RING_FEATURE_PENDING_SEND_SZ);
    set_header_word(inbound_header(), RING_FEATURE_BITS_OFFSET, RING_FEATURE_PENDING_SEND_SZ);
    std::uint32_t status = create_gpadl(offer.child_relid, gpadl, m_pages);
    if (status != CHANNEL_STATUS_SUCCESS)
        return status;
    return open_channel(offer.child_relid, gpadl, downstream_page_offset);
}

std::uint32_t TestVmbusGuest::header_word(mem::Gpa header, std::uint64_t offset) const
{
    return m_memory.memory().read_obj<std::uint32_t>(mem::Gpa { header.raw() + offset }).value();
}

void TestVmbusGuest::set_header_word(mem::Gpa header, std::uint64_t offset, std::uint32_t value)
{
    (void)m_memory.memory().write_obj(mem::Gpa { header.raw() + offset }, value);
}

void TestVmbusGuest::ring_copy(mem::Gpa header, std::uint32_t data_bytes, std::uint32_t offset,
    std::span<std::byte> out, std::span<std::byte const> in)
{
    // The ring's pages follow its header page in m_pages; data byte p is in page 1 + p / 4096.
    std::size_t first = header == outbound_header() ? 0 : m_downstream;
    std::size_t total = out.empty() ? in.size() : out.size();
    // Page by page (a byte loop made bulk transfers, e.g. bench/hvsock_bench.cpp, measure it).
    for (std::size_t i = 0; i < total;) {
        std::uint32_t position = static_cast<std::uint32_t>((offset + i) % data_bytes);
        std::size_t run = std::min<std::size_t>({ total - i, 4096 - position % 4096, data_bytes - position });
        mem::Gpa gpa { m_pages[first + 1 + position / 4096].address().raw() + position % 4096 };
        if (!out.empty())
            (void)m_memory.memory().read(gpa, out.subspan(i, run));
        else
            (void)m_memory.memory().write(gpa, in.subspan(i, run));
        i += run;
    }
}

bool TestVmbusGuest::write_packet(std::span<std::byte const> payload, std::uint64_t transaction_id, std::uint16_t type,
    std::span<std::byte const> extra, std::uint16_t flags)
{
    mem::Gpa header = outbound_header();
    std::uint32_t size = outbound_data_bytes();
    std::uint32_t read = header_word(header, RING_READ_INDEX_OFFSET);
    std::uint32_t write = header_word(header, RING_WRITE_INDEX_OFFSET);
    std::uint32_t packet_bytes = static_cast<std::uint32_t>(16 + extra.size() + ((payload.size() + 7) & ~std::size_t { 7 }));
    std::uint32_t total = packet_bytes + 8;
    std::uint32_t available = write >= read ? size - (write - read) : read - write;
    if (available <= total) // ring_buffer.c:322-336: never fill completely.
        return false;
    std::vector<std::byte> packet(total, std::byte { 0 });
    PacketDescriptor descriptor { type, static_cast<std::uint16_t>((16 + extra.size()) / 8),
        static_cast<std::uint16_t>(packet_bytes / 8), flags, transaction_id };
    std::memcpy(packet.data(), &descriptor, sizeof(descriptor));
    if (!extra.empty())
        std::memcpy(packet.data() + 16, extra.data(), extra.size());
    if (!payload.empty())
        std::memcpy(packet.data() + 16 + extra.size(), payload.data(), payload.size());
    std::uint64_t trailer = std::uint64_t { write } << 32;
    std::memcpy(packet.data() + packet_bytes, &trailer, 8);
    ring_copy(header, size, write, {}, packet);
    set_header_word(header, RING_WRITE_INDEX_OFFSET, (write + total) % size);
    // hv_signal_on_write (ring_buffer.c:52-70).
    if (header_word(header, RING_INTERRUPT_MASK_OFFSET) == 0 && header_word(header, RING_READ_INDEX_OFFSET) == write) {
        ++m_signals;
        m_host.handle_signal_event(m_connection_id);
    }
    return true;
}

std::optional<std::vector<std::byte>> TestVmbusGuest::read_packet()
{
    auto full = read_full_packet();
    if (!full)
        return std::nullopt;
    return std::move(full->payload);
}

std::optional<TestVmbusGuest::FullPacket> TestVmbusGuest::read_full_packet()
{
    mem::Gpa header = inbound_header();
    std::uint32_t size = inbound_data_bytes();
    std::uint32_t read = header_word(header, RING_READ_INDEX_OFFSET);
    std::uint32_t write = header_word(header, RING_WRITE_INDEX_OFFSET);
    if (read == write)
        return std::nullopt;
    PacketDescriptor descriptor;
    ring_copy(header, size, read, std::as_writable_bytes(std::span { &descriptor, 1 }), {});
    std::uint32_t packet_bytes = descriptor.len8 * 8u;
    std::uint32_t offset = descriptor.offset8 * 8u;
    if (offset > packet_bytes || packet_bytes > size)
        return std::nullopt; // A corrupted ring (fuzzing): Linux would clamp; the test guest stops.
    if (offset < 16)
        return std::nullopt;
    std::vector<std::byte> payload(packet_bytes - offset);
    ring_copy(header, size, (read + offset) % size, payload, {});
    std::vector<std::byte> extra(offset - 16);
    if (!extra.empty())
        ring_copy(header, size, (read + 16) % size, extra, {});
    std::uint32_t new_read = (read + packet_bytes + 8) % size;
    set_header_word(header, RING_READ_INDEX_OFFSET, new_read);
    // hv_pkt_iter_close (ring_buffer.c:593-675).
    std::uint32_t pending = header_word(header, RING_PENDING_SEND_SZ_OFFSET);
    if (pending != 0) {
        std::uint32_t now_write = header_word(header, RING_WRITE_INDEX_OFFSET);
        std::uint32_t free_now = now_write >= new_read ? size - (now_write - new_read) : new_read - now_write;
        std::uint32_t bytes_read = packet_bytes + 8;
        if (!(free_now - bytes_read > pending) && free_now > pending) {
            ++m_signals;
            m_host.handle_signal_event(m_connection_id);
        }
    }
    return FullPacket { descriptor, std::move(extra), std::move(payload) };
}

std::vector<mem::Gpn> TestVmbusGuest::scattered_pages(std::size_t count, std::uint64_t salt)
{
    std::vector<mem::Gpn> pages;
    for (std::size_t i = 0; i < count; ++i) {
        if (i % 2 == 0)
            pages.push_back(mem::Gpn { 120 - 2 * i - salt * 40 }); // Low region, descending.
        else
            pages.push_back(mem::Gpn { (VmbusRam::HIGH_GPA >> 12) + 3 * i + salt * 40 });
    }
    return pages;
}

} // namespace vmm::test

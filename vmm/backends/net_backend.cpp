// SPDX-License-Identifier: MIT
#include "vmm/backends/net_backend.hpp"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "base/log.hpp"
#include "vmm/sandbox/thread_sandbox.hpp"

namespace vmm {

namespace {

// The offer's if_instance: stable per NIC (Linux names nothing after it, Windows keys the
// adapter's settings on it): a fixed prefix, the NIC index and its MAC.
vmbus::Guid instance_for(std::size_t index, std::array<u8, 6> const& mac)
{
    vmbus::Guid id { { 0x6d, 0x76, 0x6d, 0x6e, 0x65, 0x74, 0x00, 0x40, 0x80, static_cast<u8>(index), mac[0], mac[1],
        mac[2], mac[3], mac[4], mac[5] } };
    return id;
}

std::string mac_text(std::array<u8, 6> const& mac)
{
    return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

void add_stats(netvsc::NetvscStats& into, netvsc::NetvscStats const& now, netvsc::NetvscStats const& before)
{
    into.rx_packets += now.rx_packets - before.rx_packets;
    into.rx_bytes += now.rx_bytes - before.rx_bytes;
    into.rx_queue_full += now.rx_queue_full - before.rx_queue_full;
    into.rx_no_driver += now.rx_no_driver - before.rx_no_driver;
    into.rx_link_down += now.rx_link_down - before.rx_link_down;
    into.rx_filtered += now.rx_filtered - before.rx_filtered;
    into.rx_too_big += now.rx_too_big - before.rx_too_big;
    into.tx_packets += now.tx_packets - before.tx_packets;
    into.tx_bytes += now.tx_bytes - before.tx_bytes;
    into.tx_queue_full += now.tx_queue_full - before.tx_queue_full;
    into.tx_link_down += now.tx_link_down - before.tx_link_down;
    into.guest_errors += now.guest_errors - before.guest_errors;
    into.stale_completions += now.stale_completions - before.stale_completions;
    into.control_dropped += now.control_dropped - before.control_dropped;
}

} // namespace

NetBackend::NetBackend(std::vector<NetSection> const& nics, api::ApiBackend& inner)
    : ForwardingApiBackend(inner)
{
    for (auto const& config : nics)
        m_nics.push_back(Nic { .config = config });
}

NetBackend::~NetBackend()
{
    if (m_thread.joinable()) {
        m_stop = true;
        wake();
        m_thread.join();
    }
}

Result<void> NetBackend::start()
{
    if (m_nics.empty())
        return {};
    for (auto& nic : m_nics) {
        auto tap = TapDevice::open(nic.config.tap, nic.config.mtu).context("opening TAP {} for [[net]]", nic.config.tap);
        if (!tap)
            return std::unexpected(tap.error());
        log::info("net", "NIC {} on TAP {} ({}), MAC {}, MTU {}", &nic - m_nics.data(), nic.config.tap,
            tap->created() ? "created" : "existing", mac_text(nic.config.mac), nic.config.mtu);
        nic.tap.emplace(std::move(*tap));
    }
    m_epoll = Fd { ::epoll_create1(EPOLL_CLOEXEC) };
    m_wake = Fd { ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) };
    if (!m_epoll.is_open() || !m_wake.is_open())
        return fail_errno("net: epoll/eventfd");
    epoll_event event {};
    event.events = EPOLLIN;
    event.data.u64 = m_nics.size(); // The eventfd.
    if (::epoll_ctl(m_epoll.get(), EPOLL_CTL_ADD, m_wake.get(), &event) < 0)
        return fail_errno("net: epoll_ctl eventfd");
    for (std::size_t i = 0; i < m_nics.size(); ++i) {
        event.data.u64 = i;
        if (::epoll_ctl(m_epoll.get(), EPOLL_CTL_ADD, m_nics[i].tap->fd(), &event) < 0)
            return fail_errno("net: epoll_ctl TAP");
    }
    // The largest frame: MTU + Ethernet header + a VLAN tag.
    u32 largest = 0;
    for (auto const& nic : m_nics)
        largest = std::max(largest, nic.config.mtu + 18);
    m_frame.resize(largest + 1); // +1: a longer read is a frame too big for the NIC.
    m_thread = std::thread([this] {
        ::pthread_setname_np(::pthread_self(), "net");
        sandbox::enter_thread(sandbox::ThreadKind::Net); // Before the first guest frame.
        run();
    });
    return {};
}

void NetBackend::wake()
{
    if (m_wake_pending.exchange(true))
        return;
    u64 one = 1;
    [[maybe_unused]] ssize_t ignored = ::write(m_wake.get(), &one, sizeof(one));
}

void NetBackend::attach(Machine& machine)
{
    if (machine.vmbus() != nullptr)
        attach(machine.guest_memory(), *machine.vmbus());
}

void NetBackend::detach(Machine& machine)
{
    if (machine.vmbus() != nullptr)
        detach(*machine.vmbus());
}

void NetBackend::attach(mem::GuestMemory const& memory, VmbusGlue& glue)
{
    if (m_nics.empty())
        return;
    std::lock_guard guard { m_lock };
    m_glue = &glue;
    for (std::size_t i = 0; i < m_nics.size(); ++i) {
        auto& nic = m_nics[i];
        netvsc::NetvscConfig config;
        config.instance = instance_for(i, nic.config.mac);
        config.mac = nic.config.mac;
        config.mtu = nic.config.mtu;
        config.link_up = nic.link_up;
        nic.device = std::make_unique<netvsc::NetvscDevice>(memory, config);
        nic.device->set_change_hook([this] { wake(); });
        nic.last = {};
        auto added = glue.with_host([&](vmbus::VmbusHost& host) { return host.add_device(*nic.device); });
        if (!added) {
            log::error("net", "NIC {} not offered: {}", i, added.error());
            nic.device.reset();
        }
    }
    wake();
}

void NetBackend::detach(VmbusGlue& glue)
{
    std::lock_guard guard { m_lock };
    if (m_glue != &glue)
        return;
    glue.with_host([&](vmbus::VmbusHost& host) {
        for (auto& nic : m_nics) {
            if (!nic.device)
                continue;
            fold_stats(nic);
            host.rescind(*nic.device); // The host never calls it again after this.
        }
    });
    for (auto& nic : m_nics)
        nic.device.reset();
    m_glue = nullptr;
}

void NetBackend::fold_stats(Nic& nic)
{
    auto now = nic.device->stats();
    add_stats(nic.total, now, nic.last);
    nic.last = now;
}

void NetBackend::set_reading(Nic& nic, bool on)
{
    if (nic.reading == on)
        return;
    epoll_event event {};
    event.events = on ? EPOLLIN : 0;
    event.data.u64 = static_cast<u64>(&nic - m_nics.data());
    if (::epoll_ctl(m_epoll.get(), EPOLL_CTL_MOD, nic.tap->fd(), &event) == 0)
        nic.reading = on;
}

void NetBackend::run()
{
    std::array<epoll_event, 16> events {};
    while (!m_stop) {
        int n = ::epoll_wait(m_epoll.get(), events.data(), static_cast<int>(events.size()), -1);
        if (n < 0 && errno != EINTR) {
            log::error("net", "epoll_wait: {}", std::strerror(errno));
            return;
        }
        for (int i = 0; i < n; ++i) {
            if (events[static_cast<std::size_t>(i)].data.u64 == m_nics.size()) {
                u64 count;
                [[maybe_unused]] ssize_t ignored = ::read(m_wake.get(), &count, sizeof(count));
                m_wake_pending = false;
            }
        }
        if (m_stop)
            return;
        // Every NIC each time: a wake-up does not say which device changed. Bounded rounds,
        // then back to epoll so one busy NIC cannot starve the wake-up of the others.
        std::lock_guard guard { m_lock };
        for (int round = 0; round < 8; ++round) {
            bool moved = false;
            for (auto& nic : m_nics)
                moved |= service(nic);
            if (!moved)
                break;
        }
    }
}

bool NetBackend::service(Nic& nic)
{
    bool moved = false;
    // Guest -> host: take a batch under the VMBus lock, write it without.
    std::vector<std::vector<std::byte>> out;
    std::size_t room = 0;
    bool active = false;
    if (nic.device && m_glue) {
        m_glue->with_host([&](vmbus::VmbusHost& host) {
            while (out.size() < BATCH) {
                auto frame = nic.device->take_frame();
                if (!frame)
                    break;
                out.push_back(std::move(*frame));
            }
            if (!out.empty())
                host.resume_receive(*nic.device);
            room = nic.device->rx_queue_room();
            active = nic.device->guest_active();
            fold_stats(nic);
        });
    }
    for (auto const& frame : out) {
        auto wrote = nic.tap->write(frame);
        if (!wrote) {
            ++nic.tap_errors;
            VMM_GUEST_WARN("net", "TAP {}: {}", nic.config.tap, wrote.error());
        } else if (!*wrote) {
            ++nic.tap_full;
        }
    }
    moved |= !out.empty();
    // Host -> guest: while the device has room; with no guest driver, read and drop (counted)
    // so stale frames do not wait in the TAP queue for the next boot.
    std::size_t budget = active ? std::min(room, BATCH) : BATCH;
    if (active && room == 0) {
        set_reading(nic, false); // Re-armed when a change hook wakes us with room again.
        return moved;
    }
    set_reading(nic, true);
    std::vector<std::vector<std::byte>> in;
    for (std::size_t i = 0; i < budget; ++i) {
        auto got = nic.tap->read(m_frame);
        if (!got) {
            ++nic.tap_errors;
            VMM_GUEST_WARN("net", "TAP {}: {}", nic.config.tap, got.error());
            break;
        }
        if (*got == 0)
            break;
        if (!active) {
            ++(nic.link_up ? nic.no_driver : nic.link_down);
            continue;
        }
        in.emplace_back(m_frame.begin(), m_frame.begin() + static_cast<std::ptrdiff_t>(*got));
    }
    if (!in.empty() && nic.device && m_glue) {
        m_glue->with_host([&](vmbus::VmbusHost&) {
            for (auto const& frame : in)
                nic.device->deliver_frame(frame);
            fold_stats(nic);
        });
        moved = true;
    }
    return moved;
}

std::vector<api::NicInfo> NetBackend::nic_info()
{
    std::vector<api::NicInfo> out;
    std::lock_guard guard { m_lock };
    for (std::size_t i = 0; i < m_nics.size(); ++i)
        out.push_back(info_of(i));
    return out;
}

api::NicInfo NetBackend::info_of(std::size_t index)
{
    auto& nic = m_nics[index];
    api::NicInfo info;
    info.index = static_cast<u32>(index);
    info.tap = nic.config.tap;
    info.tap_created = nic.tap && nic.tap->created();
    info.mac = mac_text(nic.config.mac);
    info.mtu = nic.config.mtu;
    info.link = nic.link_up ? "up" : "down";
    info.guest = "absent";
    if (nic.device && m_glue) {
        m_glue->with_host([&](vmbus::VmbusHost&) {
            fold_stats(nic);
            info.guest = nic.device->guest_active() ? "ready" : nic.device->open() ? "connected" : "absent";
        });
    }
    auto const& t = nic.total;
    info.rx_packets = t.rx_packets;
    info.rx_bytes = t.rx_bytes;
    // Every host frame read from the TAP and not delivered, once, by why:
    //  queue_full: the guest's receive buffer and the bounded queue were full (the "net"
    //    thread stops reading the TAP first, so this stays 0 unless the guest stalls mid-batch);
    //  too_big: longer than the guest's MTU allows;
    //  no_driver: no guest driver ready (before boot, while hv_netvsc binds or rebinds, across
    //    a reboot: e.g. the host's IPv6 router and neighbour solicitations on a fresh TAP);
    //  link_down: the host set the link down;
    //  filtered: not accepted by the guest's packet filter (e.g. multicast it did not ask for).
    info.rx_dropped_by = { { "queue_full", t.rx_queue_full }, { "too_big", t.rx_too_big },
        { "no_driver", t.rx_no_driver + nic.no_driver }, { "link_down", t.rx_link_down + nic.link_down },
        { "filtered", t.rx_filtered } };
    //  queue_full: the "net" thread's queue from the guest was full; link_down: sent while the
    //  host had the link down; tap_full: the TAP refused the write (its queue full, or the
    //  host interface down); tap_error: any other write error (logged).
    info.tx_dropped_by = { { "queue_full", t.tx_queue_full }, { "link_down", t.tx_link_down },
        { "tap_full", nic.tap_full }, { "tap_error", nic.tap_errors } };
    for (auto const& [reason, count] : info.rx_dropped_by)
        info.rx_dropped += count;
    for (auto const& [reason, count] : info.tx_dropped_by)
        info.tx_dropped += count;
    info.tx_packets = t.tx_packets;
    info.tx_bytes = t.tx_bytes;
    info.guest_errors = t.guest_errors;
    return info;
}

std::expected<api::NicInfo, std::string> NetBackend::set_link(std::uint32_t index, bool up)
{
    std::lock_guard guard { m_lock };
    if (index >= m_nics.size())
        return std::unexpected(fmt::format("no NIC {} (this VM has {})", index, m_nics.size()));
    auto& nic = m_nics[index];
    if (nic.link_up != up)
        log::info("net", "NIC {} ({}): link {} by the API", index, nic.config.tap, up ? "up" : "down");
    nic.link_up = up;
    if (nic.device && m_glue)
        m_glue->with_host([&](vmbus::VmbusHost&) { nic.device->set_link(up); });
    wake(); // The device queued an indication; "net" re-reads the NIC's state.
    return info_of(index);
}

api::VmInfo NetBackend::vm_info()
{
    auto info = m_inner.vm_info();
    info.nics = nic_info();
    return info;
}

std::string NetBackend::extra_metrics()
{
    std::string out = m_inner.extra_metrics();
    if (m_nics.empty())
        return out;
    auto nics = nic_info();
    auto family = [&](char const* name, char const* help, auto field, char const* type = "counter") {
        out += fmt::format("# HELP microvmm_net_{} {}\n# TYPE microvmm_net_{} {}\n", name, help, name, type);
        for (auto const& nic : nics)
            out += fmt::format("microvmm_net_{}{{nic=\"{}\",tap=\"{}\"}} {}\n", name, nic.index, nic.tap, field(nic));
    };
    family("rx_packets_total", "Frames delivered host -> guest.", [](api::NicInfo const& n) { return n.rx_packets; });
    family("rx_bytes_total", "Bytes delivered host -> guest.", [](api::NicInfo const& n) { return n.rx_bytes; });
    auto reasons = [&](char const* name, char const* help, auto field) {
        out += fmt::format("# HELP microvmm_net_{} {}\n# TYPE microvmm_net_{} counter\n", name, help, name);
        for (auto const& nic : nics)
            for (auto const& [reason, count] : field(nic))
                out += fmt::format("microvmm_net_{}{{nic=\"{}\",tap=\"{}\",reason=\"{}\"}} {}\n", name, nic.index,
                    nic.tap, reason, count);
    };
    family("link_up", "1 while the link the guest sees is up (PUT /api/v1/net/{nic}/link).",
        [](api::NicInfo const& n) { return n.link == "up" ? 1 : 0; }, "gauge");
    reasons("rx_dropped_total", "Host frames not delivered to the guest, by reason (API.md).",
        [](api::NicInfo const& n) { return n.rx_dropped_by; });
    family("tx_packets_total", "Frames sent guest -> host.", [](api::NicInfo const& n) { return n.tx_packets; });
    family("tx_bytes_total", "Bytes sent guest -> host.", [](api::NicInfo const& n) { return n.tx_bytes; });
    reasons("tx_dropped_total", "Guest frames not written to the TAP, by reason (API.md).",
        [](api::NicInfo const& n) { return n.tx_dropped_by; });
    family("guest_errors_total", "Malformed or out-of-order guest messages refused.",
        [](api::NicInfo const& n) { return n.guest_errors; });
    return out;
}

} // namespace vmm

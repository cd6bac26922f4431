// SPDX-License-Identifier: MIT
// hv_sock's vsock port <-> VMBus service GUID mapping. Linux's hv_sock (and Windows' hvsocket for
// Linux guests) names a vsock port P by the GUID P-facb-11e6-bd58-64006a7986d3: the template
// with its first 4 bytes (Data1, little endian on the wire) replaced by P
// (net/vmw_vsock/hyperv_transport.c:153-168).
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>

#include "devices/vmbus/channel_device.hpp"

namespace vmm::hvsock {

// 00000000-facb-11e6-bd58-64006a7986d3 in wire order (Data1..Data3 little endian).
inline constexpr vmbus::Guid SERVICE_ID_TEMPLATE { { 0x00, 0x00, 0x00, 0x00, 0xcb, 0xfa, 0xe6, 0x11, 0xbd, 0x58, 0x64, 0x00,
    0x6a, 0x79, 0x86, 0xd3 } };

inline vmbus::Guid service_id_for_port(std::uint32_t port)
{
    vmbus::Guid id = SERVICE_ID_TEMPLATE;
    for (unsigned i = 0; i < 4; ++i)
        id.bytes[i] = static_cast<std::uint8_t>(port >> (8 * i));
    return id;
}

// The port of a template-derived GUID; nullopt for any other GUID (is_valid_srv_id(),
// hyperv_transport.c:160-163), e.g. a Windows service GUID this host does not serve.
inline std::optional<std::uint32_t> port_of_service_id(vmbus::Guid const& id)
{
    if (std::memcmp(id.bytes.data() + 4, SERVICE_ID_TEMPLATE.bytes.data() + 4, 12) != 0)
        return std::nullopt;
    return static_cast<std::uint32_t>(id.bytes[0]) | static_cast<std::uint32_t>(id.bytes[1]) << 8
        | static_cast<std::uint32_t>(id.bytes[2]) << 16 | static_cast<std::uint32_t>(id.bytes[3]) << 24;
}

} // namespace vmm::hvsock

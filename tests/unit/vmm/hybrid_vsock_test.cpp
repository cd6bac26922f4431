// SPDX-License-Identifier: MIT
// The host client's side of hv_sock's Unix-socket convention (vmm/backends/hybrid_vsock.hpp):
// CONNECT lines are the only host input the back-end parses; anything off-format is refused.
#include <gtest/gtest.h>

#include "vmm/backends/hybrid_vsock.hpp"

using vmm::hybrid_vsock::ok_reply;
using vmm::hybrid_vsock::parse_connect;

TEST(HybridVsock, ConnectLinesAsFirecrackerClientsWriteThem)
{
    EXPECT_EQ(parse_connect("CONNECT 52"), 52u);
    EXPECT_EQ(parse_connect("CONNECT 0"), 0u);
    EXPECT_EQ(parse_connect("CONNECT 4294967295"), 4294967295u);
    EXPECT_EQ(ok_reply(1073741824), "OK 1073741824\n");
}

TEST(HybridVsock, AnythingElseIsRefused)
{
    for (char const* line : { "", "CONNECT", "CONNECT ", "CONNECT 4294967296", "CONNECT -1", "CONNECT +5", "CONNECT 5 ",
             "CONNECT 5x", "connect 5", " CONNECT 5", "CONNECT  5", "CONNECT 5\r", "LISTEN 5",
             "CONNECT 00000000000000000000000000000000005" })
        EXPECT_FALSE(parse_connect(line).has_value()) << '"' << line << '"';
}

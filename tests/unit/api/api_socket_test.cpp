// SPDX-License-Identifier: MIT
// The API socket file: mode 0600, stale sockets replaced, live sockets and other files refused.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <fstream>

#include "tests/unit/api/api_test_fixture.hpp"
#include "vmm/api/api_socket.hpp"

namespace vmm::api::test {
namespace {

TEST_F(ApiServerTest, SocketIsCreatedWithMode0600EvenWithAPermissiveUmask)
{
    mode_t const old = ::umask(0);
    start();
    ::umask(old);
    struct stat st {};
    ASSERT_EQ(::lstat(m_path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(ApiServerTest, StaleSocketFileIsReplaced)
{
    {
        // A socket file nobody listens on, as a crashed VMM leaves behind.
        Fd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
        sockaddr_un address {};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, m_path.c_str(), sizeof(address.sun_path) - 1);
        ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    }
    ASSERT_TRUE(std::filesystem::exists(m_path));
    start();
    auto response = request("GET", "/api/v1/vm");
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 200);
}

TEST_F(ApiServerTest, LiveSocketIsRefusedAndKeepsWorking)
{
    start();
    EventHub other_hub;
    FakeBackend other(other_hub);
    auto second = ApiServer::start(other, other_hub, config());
    ASSERT_FALSE(second.has_value());
    EXPECT_EQ(second.error().code(), Errc::Busy);
    EXPECT_NE(second.error().message().find("is in use by a live process"), std::string::npos)
        << second.error().message();
    EXPECT_EQ(request("GET", "/api/v1/vm")->status, 200) << "the first server's socket was left alone";
}

TEST_F(ApiServerTest, PathThatIsNotASocketIsRefusedAndLeftAlone)
{
    std::ofstream(m_path) << "precious";
    auto server = ApiServer::start(m_fake, m_hub, config());
    ASSERT_FALSE(server.has_value());
    EXPECT_EQ(server.error().code(), Errc::Config);
    std::ifstream file(m_path);
    std::string content;
    file >> content;
    EXPECT_EQ(content, "precious");
}

TEST_F(ApiServerTest, OverlongSocketPathIsAConfigError)
{
    auto long_config = config();
    long_config.socket_path = m_dir + "/" + std::string(120, 's');
    auto server = ApiServer::start(m_fake, m_hub, long_config);
    ASSERT_FALSE(server.has_value());
    EXPECT_EQ(server.error().code(), Errc::Config);
}

TEST_F(ApiServerTest, StopUnlinksOnlyItsOwnSocket)
{
    start();
    m_server->stop();
    EXPECT_FALSE(std::filesystem::exists(m_path));
    // A restarted server may bind the same path right away.
    start();
    EXPECT_EQ(request("GET", "/api/v1/vm")->status, 200);
    // If someone replaced the path meanwhile, stop() leaves their file in place.
    std::filesystem::remove(m_path);
    std::ofstream(m_path) << "theirs";
    m_server->stop();
    EXPECT_TRUE(std::filesystem::exists(m_path));
}

} // namespace
} // namespace vmm::api::test

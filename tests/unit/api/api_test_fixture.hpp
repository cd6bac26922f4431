// SPDX-License-Identifier: MIT
// Fixture: a real ApiServer on a socket in a fresh temporary directory, over a FakeBackend.
#pragma once

#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "tests/unit/api/fake_backend.hpp"
#include "tests/unit/api/raw_client.hpp"
#include "vmm/api/api_server.hpp"

namespace vmm::api::test {

class ApiServerTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        char pattern[] = "/tmp/microvmm-api-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        m_dir = pattern;
        m_path = m_dir + "/api.sock";
    }
    void TearDown() override
    {
        m_server.reset();
        std::error_code ignored;
        std::filesystem::remove_all(m_dir, ignored);
    }

    ApiServerConfig config()
    {
        ApiServerConfig config;
        config.socket_path = m_path;
        config.request_timeout = std::chrono::milliseconds(400); // Fast half-sent-request tests.
        config.write_timeout = std::chrono::milliseconds(1000);
        config.wait_poll_interval = std::chrono::milliseconds(5);
        return config;
    }
    void start(ApiServerConfig const& server_config)
    {
        auto server = ApiServer::start(m_fake, m_hub, server_config);
        ASSERT_TRUE(server.has_value()) << server.error().message();
        m_server = std::move(*server);
    }
    void start() { start(config()); }

    std::optional<RawResponse> request(std::string const& method, std::string const& target,
        std::string const& body = {})
    {
        return roundtrip(m_path, http_request(method, target, body));
    }

    std::string m_dir;
    std::string m_path;
    EventHub m_hub { 64 };
    FakeBackend m_fake { m_hub };
    std::unique_ptr<ApiServer> m_server;
};

} // namespace vmm::api::test

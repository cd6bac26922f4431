// SPDX-License-Identifier: MIT
// Every fd microvmm opens is close-on-exec (SECURITY.md "Least privilege"): builds the objects
// that open fds without KVM (event loop, its eventfd, timerfd and signalfd, guest RAM's memfd,
// the API listener and an accepted API connection, the hv_sock listener) and checks FD_CLOEXEC
// on every fd that appeared in /proc/self/fd. The KVM fds (/dev/kvm, VM, vCPU) are checked in
// the running VMM by tests/e2e/e2e_sandbox.py.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "mem/boot_ram.hpp"
#include "tests/unit/api/fake_backend.hpp"
#include "vmm/api/api_server.hpp"
#include "vmm/api/api_socket.hpp"
#include "vmm/api/event_hub.hpp"
#include "vmm/backends/hvsock_backend.hpp"
#include "vmm/config.hpp"
#include "vmm/event_loop.hpp"

namespace vmm {
namespace {

std::set<int> open_fds()
{
    std::set<int> fds;
    for (auto const& entry : std::filesystem::directory_iterator("/proc/self/fd"))
        fds.insert(std::stoi(entry.path().filename().string()));
    return fds;
}

TEST(CloseOnExec, EveryFdTheVmmOpensWithoutKvm)
{
    auto const before = open_fds();
    auto dir = std::filesystem::temp_directory_path() / ("microvmm-cloexec-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);

    auto loop = EventLoop::create();
    ASSERT_TRUE(loop);
    auto timer = (*loop)->create_timer([] {});
    ASSERT_TRUE(timer);
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &set, &old), 0);
    auto signals = (*loop)->watch_signals([](int) {});
    ASSERT_TRUE(signals);
    mem::BootRam::Range const range { mem::Gpa { 0 }, 1 << 20 };
    auto ram = mem::BootRam::create(std::span { &range, 1 });
    ASSERT_TRUE(ram);

    api::EventHub hub;
    api::test::FakeBackend backend { hub };
    auto server = api::ApiServer::start(backend, hub, api::ApiServerConfig { (dir / "api.sock").string() });
    ASSERT_TRUE(server);
    auto client = api::connect_unix_socket((dir / "api.sock").string());
    ASSERT_TRUE(client);
    // The accepted connection appears on the API thread: wait for it.
    for (int i = 0; i < 200 && (*server)->stats().connections_accepted.load() == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_EQ((*server)->stats().connections_accepted.load(), 1u);

    VsockSection vsock_config;
    vsock_config.uds_path = dir / "vsock.sock";
    HvSockBackend vsock { vsock_config, **loop };
    ASSERT_TRUE(vsock.start());

    auto const after = open_fds();
    int checked = 0;
    for (int fd : after) {
        if (before.contains(fd))
            continue;
        int const flags = ::fcntl(fd, F_GETFD);
        if (flags < 0)
            continue; // The directory_iterator's own fd, closed by now.
        std::error_code link_error;
        auto const target = std::filesystem::read_symlink("/proc/self/fd/" + std::to_string(fd), link_error);
        EXPECT_TRUE(flags & FD_CLOEXEC) << "fd " << fd << " (" << target.string() << ") is not close-on-exec";
        ++checked;
    }
    // epoll, eventfd, timerfd, signalfd, memfd, the API's listener, epoll, eventfd, timerfd,
    // its accepted connection, our client, the vsock listener: at least ten new fds.
    EXPECT_GE(checked, 10);
    (*server)->stop();
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
}

} // namespace
} // namespace vmm

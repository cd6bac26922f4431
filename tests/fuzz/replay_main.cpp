// SPDX-License-Identifier: MIT
// A plain main() for the fuzz targets, so `make check` replays every corpus without libFuzzer:
// each target's LLVMFuzzerTestOneInput is compiled with g++ against this file and run, as a meson
// unit test, on every file of its tests/corpus/<name>/ (arguments: files or directories).
// A broken invariant traps (SIGILL) like under libFuzzer; the handler first names the input, so
// the test log says which corpus file regressed.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size);

namespace {

char g_current[4096] = "(none)"; // The input being replayed, for the signal handler.

void on_fatal_signal(int signal)
{
    // Only async-signal-safe calls: write() the name, then die of the same signal.
    static constexpr char prefix[] = "fuzz replay: input ";
    static constexpr char middle[] = " failed: signal ";
    [[maybe_unused]] auto a = ::write(STDERR_FILENO, prefix, sizeof(prefix) - 1);
    [[maybe_unused]] auto b = ::write(STDERR_FILENO, g_current, std::strlen(g_current));
    [[maybe_unused]] auto c = ::write(STDERR_FILENO, middle, sizeof(middle) - 1);
    char digits[4] = { static_cast<char>('0' + signal / 10 % 10), static_cast<char>('0' + signal % 10), '\n', 0 };
    [[maybe_unused]] auto d = ::write(STDERR_FILENO, digits, 3);
    ::signal(signal, SIG_DFL);
    ::raise(signal);
}

std::vector<std::uint8_t> read_file(std::filesystem::path const& path)
{
    std::ifstream file { path, std::ios::binary };
    return { std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>() };
}

} // namespace

int main(int argc, char** argv)
{
    for (int signal : { SIGILL, SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGTRAP })
        ::signal(signal, on_fatal_signal);
    std::vector<std::filesystem::path> inputs;
    for (int i = 1; i < argc; ++i) {
        std::filesystem::path arg { argv[i] };
        if (std::filesystem::is_directory(arg)) {
            for (auto const& entry : std::filesystem::directory_iterator { arg })
                if (entry.is_regular_file())
                    inputs.push_back(entry.path());
        } else {
            inputs.push_back(arg);
        }
    }
    std::ranges::sort(inputs); // Same order on every run.
    if (inputs.empty()) {
        std::fprintf(stderr, "fuzz replay: no inputs (give corpus files or directories)\n");
        return 1;
    }
    for (auto const& path : inputs) {
        std::snprintf(g_current, sizeof(g_current), "%s", path.c_str());
        auto bytes = read_file(path);
        LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    }
    // The empty input and short ones reach the harness's exhausted-input paths.
    for (std::size_t size = 0; size < 64; ++size) {
        std::snprintf(g_current, sizeof(g_current), "(built-in: %zu bytes of 0x%02zx)", size, size * 37 % 256);
        std::vector<std::uint8_t> bytes(size, static_cast<std::uint8_t>(size * 37));
        LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    }
    std::printf("fuzz replay: %zu corpus inputs and 64 built-in ones passed\n", inputs.size());
    return 0;
}

// SPDX-License-Identifier: MIT
// What the scripted fuzz targets (fuzz_ic, fuzz_hvsock) share: the input read as a script of
// bytes (zeros once it runs out, so every input is a complete script) and an invariant check
// that aborts, which libFuzzer reports as a crash and the corpus replay as a failed test.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <algorithm>

#define FUZZ_CHECK(condition)                                                                      \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            std::fprintf(stderr, "invariant failed: %s (%s:%d)\n", #condition, __FILE__, __LINE__); \
            std::abort();                                                                          \
        }                                                                                          \
    } while (0)

namespace vmm::test {

struct FuzzScript {
    std::uint8_t const* data;
    std::size_t size;
    std::size_t at = 0;
    std::uint8_t byte() { return at < size ? data[at++] : 0; }
    std::uint32_t u16() { return byte() | (std::uint32_t { byte() } << 8); }
    bool done() const { return at >= size; }
    // Fills `out` from the script (zeros once it runs out) with one copy: a byte() loop costs a
    // coverage callback per byte under -fsanitize=fuzzer, most of fuzz_ic's time on KB packets.
    void fill(std::span<std::byte> out)
    {
        std::size_t const n = std::min(out.size(), size - std::min(at, size));
        if (n != 0)
            std::memcpy(out.data(), data + at, n);
        if (out.size() > n)
            std::memset(out.data() + n, 0, out.size() - n);
        at += n;
    }
};

} // namespace vmm::test

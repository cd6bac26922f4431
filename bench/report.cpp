// SPDX-License-Identifier: MIT
// Helpers shared by the benchmark programs (heap accounting, run counts).
#include "bench/report.hpp"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>

namespace {
// Live heap bytes as malloc charges them: usable size plus the 8-byte chunk header
// (glibc malloc/malloc.c, SIZE_SZ). Counted here, not with mallinfo2(), because mallinfo2
// counts chunks parked in the per-thread cache as in use.
std::atomic<std::size_t> g_live_bytes { 0 };
constexpr std::size_t CHUNK_HEADER_BYTES = 8;

void* counted_alloc(std::size_t size)
{
    void* p = std::malloc(size == 0 ? 1 : size);
    if (p == nullptr) {
        std::fputs("bench: out of memory\n", stderr); // Nothing to measure without memory.
        std::abort();
    }
    g_live_bytes.fetch_add(::malloc_usable_size(p) + CHUNK_HEADER_BYTES, std::memory_order_relaxed);
    return p;
}

void counted_free(void* p) noexcept
{
    if (p == nullptr)
        return;
    g_live_bytes.fetch_sub(::malloc_usable_size(p) + CHUNK_HEADER_BYTES, std::memory_order_relaxed);
    std::free(p);
}
} // namespace

// Every container in the benchmark programs allocates through these.
void* operator new(std::size_t size) { return counted_alloc(size); }
void* operator new[](std::size_t size) { return counted_alloc(size); }
void* operator new(std::size_t size, std::nothrow_t const&) noexcept
{
    void* p = std::malloc(size == 0 ? 1 : size);
    if (p != nullptr)
        g_live_bytes.fetch_add(::malloc_usable_size(p) + CHUNK_HEADER_BYTES, std::memory_order_relaxed);
    return p;
}
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p); }

namespace vmm::bench {

std::size_t heap_bytes_in_use() { return g_live_bytes.load(std::memory_order_relaxed); }

int runs_from_env(int fallback, int minimum)
{
    char const* text = std::getenv("BENCH_RUNS");
    int runs = fallback;
    if (text != nullptr && *text != '\0')
        runs = std::atoi(text);
    return std::max(runs, minimum);
}

} // namespace vmm::bench

// SPDX-License-Identifier: MIT
// memdirty: dirties N MiB of guest RAM and frees it again, for the balloon mode of the test
// guest's /init (guest/README.md). Usage: memdirty MIB [touch|populate]
//        memdirty MIB hold TOUCH_MIB FILE: maps MIB (commits it: Committed_AS grows at mmap,
// mm/mmap.c accountable_mapping), dirties the first TOUCH_MIB of it, holds it all until FILE
// exists, then frees it (the hold mode of /init: auto memory balancing).
//
// Why a program and not dd into the tmpfs: on this host the guest kernel runs in KVM's
// instruction emulator, so dd's read/copy per MiB costs seconds, while user space runs
// natively. Anonymous memory costs the kernel only the page allocation and zeroing:
//   touch     one write per 4 KiB page, i.e. one page fault per page;
//   populate  (default) mmap(MAP_POPULATE) faults the whole range in within the one system
//             call, which saves the emulated exception entry and exit per page. (madvise is
//             compiled out of the test kernel: CONFIG_ADVISE_SYSCALLS=n.)
// After munmap the pages are free in the guest but still resident on the host, which is what
// the host's balloon test wants to see handed back.
//
// Freestanding (guest/freestanding.h says why).
// Output: "MEMDIRTY: mib=<n> mode=<mode> dirty_ms=<ms> free_ms=<ms>" or "MEMDIRTY: error ...".

#include "freestanding.h"

enum {
    PROT_RW = 0x3,
    MAP_PRIVATE_ANON = 0x22,
    MAP_POPULATE = 0x8000, // include/uapi/asm-generic/mman-common.h
    PAGE = 4096,
    MAX_MIB = 1 << 20,
};

static _Noreturn void die(char const* what, i64 err)
{
    out_str("MEMDIRTY: error ");
    out_str(what);
    out_str(" errno=");
    out_u64((u64)-err);
    out_line();
    exit_now(1);
}

static u64 now_ms(void) { return monotonic_ns() / 1000000; }

// Decimal MiB count; 0 on anything else (the caller refuses it).
static u64 parse_mib(char const* s) { return parse_u64_max(s, MAX_MIB); }

// Mapped in 64 MiB pieces: the heuristic overcommit check refuses one mapping larger than the
// guest's RAM (mm/util.c __vm_enough_memory), but not several that add up to more.
enum { HOLD_CHUNK = 64 << 20, MAX_CHUNKS = 1024 };

static _Noreturn void hold(u64 mib, u64 touch_mib, char const* file)
{
    static i64 chunks[MAX_CHUNKS];
    u64 const n = (mib + 63) / 64;
    if (n > MAX_CHUNKS)
        die("hold: too many MiB", -22);
    for (u64 i = 0; i < n; ++i) {
        chunks[i] = sys6(__NR_mmap, 0, HOLD_CHUNK, PROT_RW, MAP_PRIVATE_ANON, -1, 0);
        if (sys_failed(chunks[i]))
            die("mmap", chunks[i]);
    }
    u64 const t0 = now_ms();
    u64 const touch = (touch_mib < mib ? touch_mib : mib) << 20;
    for (u64 off = 0; off < touch; off += PAGE)
        ((char volatile*)chunks[off / HOLD_CHUNK])[off % HOLD_CHUNK] = 1;
    out_str("MEMDIRTY: holding mib=");
    out_u64(n * 64);
    out_str(" dirtied_mib=");
    out_u64(touch >> 20);
    out_str(" dirty_ms=");
    out_u64(now_ms() - t0);
    out_line();
    while (sys3(__NR_access, file, 0, 0) != 0)
        sleep_ns(200 * 1000 * 1000);
    for (u64 i = 0; i < n; ++i)
        sys3(__NR_munmap, chunks[i], HOLD_CHUNK, 0);
    out_str("MEMDIRTY: released mib=");
    out_u64(n * 64);
    out_line();
    exit_now(0);
}

__attribute__((used)) _Noreturn void memdirty_main(i64* sp)
{
    i64 const argc = sp[0];
    char** const argv = (char**)(sp + 1);
    u64 const mib = argc >= 2 ? parse_mib(argv[1]) : 0;
    char const* const mode = argc >= 3 ? argv[2] : "populate";
    if (mib != 0 && argc == 5 && str_eq(mode, "hold"))
        hold(mib, parse_mib(argv[3]), argv[4]);
    int const populate = str_eq(mode, "populate");
    if (mib == 0 || argc > 3 || (!populate && !str_eq(mode, "touch"))) {
        char const usage[] = "MEMDIRTY: error usage: memdirty MIB [touch|populate] | memdirty MIB hold TOUCH_MIB FILE\n";
        sys3(__NR_write, 2, usage, sizeof usage - 1);
        exit_now(2);
    }
    u64 const bytes = mib << 20;
    u64 const t0 = now_ms();
    i64 const flags = MAP_PRIVATE_ANON | (populate ? MAP_POPULATE : 0);
    i64 const addr = sys6(__NR_mmap, 0, (i64)bytes, PROT_RW, flags, -1, 0);
    if (sys_failed(addr))
        die("mmap", addr);
    // MAP_POPULATE cannot fail after the mapping exists; it may stop early under memory
    // pressure, and this loop then faults the rest in (a no-op for populated pages).
    for (u64 off = 0; off < bytes; off += PAGE)
        ((char volatile*)addr)[off] = 1;
    u64 const t1 = now_ms();
    i64 const r = sys3(__NR_munmap, addr, bytes, 0);
    if (r < 0)
        die("munmap", r);
    u64 const t2 = now_ms();
    out_str("MEMDIRTY: mib=");
    out_u64(mib);
    out_str(" mode=");
    out_str(mode);
    out_str(" dirty_ms=");
    out_u64(t1 - t0);
    out_str(" free_ms=");
    out_u64(t2 - t1);
    out_line();
    exit_now(0);
}

FREESTANDING_ENTRY(memdirty_main);

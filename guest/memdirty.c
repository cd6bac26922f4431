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
// Freestanding (no libc): the initramfs is unpacked by the emulated kernel at ~1.2 ms per KiB,
// so a ~1 KB binary beats a ~700 KB static glibc one by close to a second of boot.
// Output: "MEMDIRTY: mib=<n> mode=<mode> dirty_ms=<ms> free_ms=<ms>" or "MEMDIRTY: error ...".

typedef unsigned long u64;
typedef long i64;

enum {
    SYS_write = 1,
    SYS_mmap = 9,
    SYS_munmap = 11,
    SYS_access = 21,
    SYS_nanosleep = 35,
    SYS_exit_group = 231,
    SYS_clock_gettime = 228,
};
enum {
    PROT_RW = 0x3,
    MAP_PRIVATE_ANON = 0x22,
    MAP_POPULATE = 0x8000,
    CLOCK_MONOTONIC = 1,
    PAGE = 4096,
    MAX_MIB = 1 << 20,
};

static i64 syscall6(i64 n, i64 a, i64 b, i64 c, i64 d, i64 e, i64 f)
{
    register i64 r10 __asm__("r10") = d;
    register i64 r8 __asm__("r8") = e;
    register i64 r9 __asm__("r9") = f;
    i64 ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

static int str_eq(char const* a, char const* b)
{
    while (*a && *a == *b)
        ++a, ++b;
    return *a == *b;
}

// One line per write() so the serial console never interleaves it with /init's output.
struct line {
    char text[160];
    u64 len;
};

static void put(struct line* l, char const* s)
{
    while (*s && l->len < sizeof l->text - 1)
        l->text[l->len++] = *s++;
}

static void put_u64(struct line* l, u64 v)
{
    char digits[24];
    int n = 0;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n > 0 && l->len < sizeof l->text - 1)
        l->text[l->len++] = digits[--n];
}

static void emit(struct line* l)
{
    l->text[l->len++] = '\n';
    syscall6(SYS_write, 1, (i64)l->text, (i64)l->len, 0, 0, 0);
}

static _Noreturn void die(char const* what, i64 err)
{
    struct line l = { .len = 0 };
    put(&l, "MEMDIRTY: error ");
    put(&l, what);
    put(&l, " errno=");
    put_u64(&l, (u64)-err);
    emit(&l);
    syscall6(SYS_exit_group, 1, 0, 0, 0, 0, 0);
    __builtin_unreachable();
}

static u64 now_ms(void)
{
    struct {
        i64 sec, nsec;
    } ts = { 0, 0 };
    syscall6(SYS_clock_gettime, CLOCK_MONOTONIC, (i64)&ts, 0, 0, 0, 0);
    return (u64)ts.sec * 1000 + (u64)ts.nsec / 1000000;
}

// Decimal MiB count; 0 on anything else (the caller refuses it).
static u64 parse_mib(char const* s)
{
    u64 v = 0;
    if (!*s)
        return 0;
    for (; *s; ++s) {
        if (*s < '0' || *s > '9' || v > MAX_MIB)
            return 0;
        v = v * 10 + (u64)(*s - '0');
    }
    return v <= MAX_MIB ? v : 0;
}

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
        chunks[i] = syscall6(SYS_mmap, 0, HOLD_CHUNK, PROT_RW, MAP_PRIVATE_ANON, -1, 0);
        if (chunks[i] < 0 && chunks[i] > -4096)
            die("mmap", chunks[i]);
    }
    u64 const t0 = now_ms();
    u64 const touch = (touch_mib < mib ? touch_mib : mib) << 20;
    for (u64 off = 0; off < touch; off += PAGE)
        ((char volatile*)chunks[off / HOLD_CHUNK])[off % HOLD_CHUNK] = 1;
    struct line l = { .len = 0 };
    put(&l, "MEMDIRTY: holding mib=");
    put_u64(&l, n * 64);
    put(&l, " dirtied_mib=");
    put_u64(&l, touch >> 20);
    put(&l, " dirty_ms=");
    put_u64(&l, now_ms() - t0);
    emit(&l);
    struct {
        i64 sec, nsec;
    } const nap = { 0, 200 * 1000 * 1000 };
    while (syscall6(SYS_access, (i64)file, 0, 0, 0, 0, 0) != 0)
        syscall6(SYS_nanosleep, (i64)&nap, 0, 0, 0, 0, 0);
    for (u64 i = 0; i < n; ++i)
        syscall6(SYS_munmap, chunks[i], HOLD_CHUNK, 0, 0, 0, 0);
    struct line r = { .len = 0 };
    put(&r, "MEMDIRTY: released mib=");
    put_u64(&r, n * 64);
    emit(&r);
    syscall6(SYS_exit_group, 0, 0, 0, 0, 0, 0);
    __builtin_unreachable();
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
        syscall6(SYS_write, 2, (i64)usage, sizeof usage - 1, 0, 0, 0);
        syscall6(SYS_exit_group, 2, 0, 0, 0, 0, 0);
    }
    u64 const bytes = mib << 20;
    u64 const t0 = now_ms();
    i64 const flags = MAP_PRIVATE_ANON | (populate ? MAP_POPULATE : 0);
    i64 const addr = syscall6(SYS_mmap, 0, (i64)bytes, PROT_RW, flags, -1, 0);
    if (addr < 0 && addr > -4096)
        die("mmap", addr);
    // MAP_POPULATE cannot fail after the mapping exists; it may stop early under memory
    // pressure, and this loop then faults the rest in (a no-op for populated pages).
    for (u64 off = 0; off < bytes; off += PAGE)
        ((char volatile*)addr)[off] = 1;
    u64 const t1 = now_ms();
    i64 const r = syscall6(SYS_munmap, addr, (i64)bytes, 0, 0, 0, 0);
    if (r < 0)
        die("munmap", r);
    u64 const t2 = now_ms();
    struct line l = { .len = 0 };
    put(&l, "MEMDIRTY: mib=");
    put_u64(&l, mib);
    put(&l, " mode=");
    put(&l, mode);
    put(&l, " dirty_ms=");
    put_u64(&l, t1 - t0);
    put(&l, " free_ms=");
    put_u64(&l, t2 - t1);
    emit(&l);
    syscall6(SYS_exit_group, 0, 0, 0, 0, 0, 0);
    __builtin_unreachable();
}

// The kernel enters at _start with argc, argv[] and envp[] on the stack; align it for the call.
__asm__(".text\n"
        ".globl _start\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call memdirty_main\n"
        "  hlt\n");

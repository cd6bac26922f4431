// SPDX-License-Identifier: MIT
// nvmet: the NVMe mode's disk tool in the test guest (guest/init mode nvme, tests/e2e/e2e_nvme.py).
// Every block is 4 KiB and holds one 64-bit word repeated: (SEED << 32) | block number, so the
// host checks a block without knowing anything else. All I/O is O_DIRECT (the device, not the
// guest's page cache, answers) and writes are O_DSYNC: write() returns only after the NVMe
// controller acknowledged the data as durable (a Flush or FUA: the host's fdatasync).
//
//   nvmet read DEV FIRST COUNT SEED    reads and checks COUNT blocks from block FIRST
//   nvmet write DEV FIRST COUNT SEED   writes them
//   nvmet stream DEV FIRST COUNT SEED AFTER
//                                      a child writes blocks FIRST.. one at a time, printing
//                                      "NVMET: acked N" after each write() returned; once AFTER
//                                      are acked the parent reboots at once (reboot(2) RESTART,
//                                      no sync), while the child's next write is in flight
//   nvmet marker DEV BLOCK             exit 0 if BLOCK holds the stream's marker word, else 1
//
// Output: "NVMET: <op> ok blocks=N", "NVMET: <op> mismatch block=B", "NVMET: <op> error
// errno=E block=B". Freestanding like memdirty.c: a ~2 KB binary costs the emulated kernel less
// to unpack than a static libc one.

typedef unsigned long u64;
typedef long i64;

enum {
    SYS_read = 0,
    SYS_write = 1,
    SYS_open = 2,
    SYS_pread64 = 17,
    SYS_pwrite64 = 18,
    SYS_mmap = 9,
    SYS_nanosleep = 35,
    SYS_fork = 57,
    SYS_reboot = 169,
    SYS_exit_group = 231,
};
enum {
    O_RDONLY = 0,
    O_RDWR = 2,
    O_DSYNC = 010000,
    O_DIRECT = 040000,
    PROT_RW = 0x3,
    MAP_SHARED_ANON = 0x21,
    BLOCK = 4096,
};
// include/uapi/linux/reboot.h
#define LINUX_REBOOT_MAGIC1 0xfee1deadL
#define LINUX_REBOOT_MAGIC2 672274793L
#define LINUX_REBOOT_CMD_RESTART 0x01234567L
#define MARKER 0x4d41524b45523031UL // "MARKER01"

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

static u64 parse(char const* s)
{
    u64 v = 0;
    for (; *s >= '0' && *s <= '9'; ++s)
        v = v * 10 + (u64)(*s - '0');
    return v;
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

static void report(char const* op, char const* what, char const* key, u64 value)
{
    struct line l = { .len = 0 };
    put(&l, "NVMET: ");
    put(&l, op);
    put(&l, " ");
    put(&l, what);
    put(&l, " ");
    put(&l, key);
    put(&l, "=");
    put_u64(&l, value);
    l.text[l.len++] = '\n';
    syscall6(SYS_write, 1, (i64)l.text, (i64)l.len, 0, 0, 0);
}

static _Noreturn void quit(int status)
{
    for (;;)
        syscall6(SYS_exit_group, status, 0, 0, 0, 0, 0);
}

static u64 buffer[BLOCK / 8] __attribute__((aligned(BLOCK)));

static void fill(u64 seed, u64 block)
{
    for (u64 i = 0; i < BLOCK / 8; ++i)
        buffer[i] = (seed << 32) | block;
}

static i64 open_dev(char const* dev, int flags)
{
    i64 fd = syscall6(SYS_open, (i64)dev, flags | O_DIRECT, 0, 0, 0, 0);
    return fd;
}

static int write_block(i64 fd, u64 seed, u64 block)
{
    fill(seed, block);
    return syscall6(SYS_pwrite64, fd, (i64)buffer, BLOCK, (i64)(block * BLOCK), 0, 0) == BLOCK;
}

int nvmet_main(u64* stack)
{
    int argc = (int)stack[0];
    char** argv = (char**)(stack + 1);
    if (argc < 4)
        quit(2);
    char const* op = argv[1];
    char const* dev = argv[2];
    u64 first = parse(argv[3]);
    if (str_eq(op, "marker")) {
        i64 fd = open_dev(dev, O_RDONLY);
        if (fd < 0 || syscall6(SYS_pread64, fd, (i64)buffer, BLOCK, (i64)(first * BLOCK), 0, 0) != BLOCK)
            quit(1);
        quit(buffer[0] == MARKER ? 0 : 1);
    }
    if (argc < 6)
        quit(2);
    u64 count = parse(argv[4]);
    u64 seed = parse(argv[5]);
    if (str_eq(op, "read")) {
        i64 fd = open_dev(dev, O_RDONLY);
        if (fd < 0)
            report(op, "error", "errno", (u64)-fd), quit(1);
        for (u64 b = first; b < first + count; ++b) {
            i64 got = syscall6(SYS_pread64, fd, (i64)buffer, BLOCK, (i64)(b * BLOCK), 0, 0);
            if (got != BLOCK)
                report(op, "error", got < 0 ? "errno" : "short", (u64)(got < 0 ? -got : got)), quit(1);
            for (u64 i = 0; i < BLOCK / 8; ++i)
                if (buffer[i] != ((seed << 32) | b))
                    report(op, "mismatch", "block", b), quit(1);
        }
        report(op, "ok", "blocks", count);
        quit(0);
    }
    if (str_eq(op, "write")) {
        i64 fd = open_dev(dev, O_RDWR | O_DSYNC);
        if (fd < 0)
            report(op, "error", "errno", (u64)-fd), quit(1);
        for (u64 b = first; b < first + count; ++b) {
            fill(seed, b);
            i64 put_bytes = syscall6(SYS_pwrite64, fd, (i64)buffer, BLOCK, (i64)(b * BLOCK), 0, 0);
            if (put_bytes != BLOCK)
                report(op, "error", "errno", (u64)(put_bytes < 0 ? -put_bytes : 0)), quit(1);
        }
        report(op, "ok", "blocks", count);
        quit(0);
    }
    if (str_eq(op, "stream") && argc >= 7) {
        u64 after = parse(argv[6]);
        i64 fd = open_dev(dev, O_RDWR | O_DSYNC);
        if (fd < 0)
            report(op, "error", "errno", (u64)-fd), quit(1);
        // Marker first (block first - 1): a later boot knows the stream ran.
        for (u64 i = 0; i < BLOCK / 8; ++i)
            buffer[i] = MARKER;
        if (syscall6(SYS_pwrite64, fd, (i64)buffer, BLOCK, (i64)((first - 1) * BLOCK), 0, 0) != BLOCK)
            report(op, "error", "marker", 0), quit(1);
        volatile u64* acked = (volatile u64*)syscall6(SYS_mmap, 0, BLOCK, PROT_RW, MAP_SHARED_ANON, -1, 0);
        if ((i64)acked < 0)
            report(op, "error", "mmap", 0), quit(1);
        i64 child = syscall6(SYS_fork, 0, 0, 0, 0, 0, 0);
        if (child == 0) {
            for (u64 b = first; b < first + count; ++b) {
                if (!write_block(fd, seed, b))
                    report(op, "error", "block", b), quit(1);
                report(op, "acked", "block", b);
                *acked = *acked + 1;
            }
            quit(0);
        }
        while (*acked < after) {
            i64 ts[2] = { 0, 2000000 }; // 2 ms
            syscall6(SYS_nanosleep, (i64)ts, 0, 0, 0, 0, 0);
        }
        report(op, "reboot", "acked", *acked);
        syscall6(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_RESTART, 0, 0, 0);
        report(op, "error", "reboot", 0);
        quit(1);
    }
    quit(2);
}

// The kernel enters at _start with argc, argv[] and envp[] on the stack; align it for the call.
__asm__(".text\n"
        ".globl _start\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call nvmet_main\n"
        "  hlt\n");

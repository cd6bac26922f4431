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
// errno=E block=B". Freestanding (guest/freestanding.h says why).

#include "freestanding.h"

enum {
    O_RDONLY = 0,
    O_RDWR = 2,
    O_DSYNC = 010000,  // include/uapi/asm-generic/fcntl.h
    O_DIRECT = 040000, // the same (x86)
    PROT_RW = 0x3,
    MAP_SHARED_ANON = 0x21,
    BLOCK = 4096,
};
// include/uapi/linux/reboot.h
#define LINUX_REBOOT_MAGIC1 0xfee1deadL
#define LINUX_REBOOT_MAGIC2 672274793L
#define LINUX_REBOOT_CMD_RESTART 0x01234567L
#define MARKER 0x4d41524b45523031UL // "MARKER01"

static void report(char const* op, char const* what, char const* key, u64 value)
{
    out_str("NVMET: ");
    out_str(op);
    out_str(" ");
    out_str(what);
    out_str(" ");
    out_str(key);
    out_str("=");
    out_u64(value);
    out_line();
}

static u64 buffer[BLOCK / 8] __attribute__((aligned(BLOCK)));

static void fill(u64 seed, u64 block)
{
    for (u64 i = 0; i < BLOCK / 8; ++i)
        buffer[i] = (seed << 32) | block;
}

static i64 open_dev(char const* dev, int flags)
{
    i64 fd = sys3(__NR_open, dev, flags | O_DIRECT, 0);
    return fd;
}

static int write_block(i64 fd, u64 seed, u64 block)
{
    fill(seed, block);
    return sys4(__NR_pwrite64, fd, buffer, BLOCK, block * BLOCK) == BLOCK;
}

__attribute__((used)) _Noreturn void nvmet_main(u64* stack)
{
    int argc = (int)stack[0];
    char** argv = (char**)(stack + 1);
    if (argc < 4)
        exit_now(2);
    char const* op = argv[1];
    char const* dev = argv[2];
    u64 first = parse_u64(argv[3]);
    if (str_eq(op, "marker")) {
        i64 fd = open_dev(dev, O_RDONLY);
        if (fd < 0 || sys4(__NR_pread64, fd, buffer, BLOCK, first * BLOCK) != BLOCK)
            exit_now(1);
        exit_now(buffer[0] == MARKER ? 0 : 1);
    }
    if (argc < 6)
        exit_now(2);
    u64 count = parse_u64(argv[4]);
    u64 seed = parse_u64(argv[5]);
    if (str_eq(op, "read")) {
        i64 fd = open_dev(dev, O_RDONLY);
        if (fd < 0)
            report(op, "error", "errno", (u64)-fd), exit_now(1);
        for (u64 b = first; b < first + count; ++b) {
            i64 got = sys4(__NR_pread64, fd, buffer, BLOCK, b * BLOCK);
            if (got != BLOCK)
                report(op, "error", got < 0 ? "errno" : "short", (u64)(got < 0 ? -got : got)), exit_now(1);
            for (u64 i = 0; i < BLOCK / 8; ++i)
                if (buffer[i] != ((seed << 32) | b))
                    report(op, "mismatch", "block", b), exit_now(1);
        }
        report(op, "ok", "blocks", count);
        exit_now(0);
    }
    if (str_eq(op, "write")) {
        i64 fd = open_dev(dev, O_RDWR | O_DSYNC);
        if (fd < 0)
            report(op, "error", "errno", (u64)-fd), exit_now(1);
        for (u64 b = first; b < first + count; ++b) {
            fill(seed, b);
            i64 put_bytes = sys4(__NR_pwrite64, fd, buffer, BLOCK, b * BLOCK);
            if (put_bytes != BLOCK)
                report(op, "error", "errno", (u64)(put_bytes < 0 ? -put_bytes : 0)), exit_now(1);
        }
        report(op, "ok", "blocks", count);
        exit_now(0);
    }
    if (str_eq(op, "stream") && argc >= 7) {
        u64 after = parse_u64(argv[6]);
        i64 fd = open_dev(dev, O_RDWR | O_DSYNC);
        if (fd < 0)
            report(op, "error", "errno", (u64)-fd), exit_now(1);
        // Marker first (block first - 1): a later boot knows the stream ran.
        for (u64 i = 0; i < BLOCK / 8; ++i)
            buffer[i] = MARKER;
        if (sys4(__NR_pwrite64, fd, buffer, BLOCK, (first - 1) * BLOCK) != BLOCK)
            report(op, "error", "marker", 0), exit_now(1);
        volatile u64* acked = (volatile u64*)sys6(__NR_mmap, 0, BLOCK, PROT_RW, MAP_SHARED_ANON, -1, 0);
        if (sys_failed((i64)acked))
            report(op, "error", "mmap", 0), exit_now(1);
        i64 child = sys3(__NR_fork, 0, 0, 0);
        if (child == 0) {
            for (u64 b = first; b < first + count; ++b) {
                if (!write_block(fd, seed, b))
                    report(op, "error", "block", b), exit_now(1);
                report(op, "acked", "block", b);
                *acked = *acked + 1;
            }
            exit_now(0);
        }
        while (*acked < after) {
            sleep_ns(2000000); // 2 ms
        }
        report(op, "reboot", "acked", *acked);
        sys4(__NR_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_RESTART, 0);
        report(op, "error", "reboot", 0);
        exit_now(1);
    }
    exit_now(2);
}

FREESTANDING_ENTRY(nvmet_main);

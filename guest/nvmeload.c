// SPDX-License-Identifier: MIT
// nvmeload: the nvmebench mode's 4 KiB block load generator (bench/nvme.py).
//   nvmeload DEVICE SECONDS MAXOPS
// runs four cases one after another on DEVICE, opened O_RDWR | O_DIRECT (so every operation
// reaches the device, not the guest's page cache), one 4 KiB request at a time (queue depth 1):
//   seqread   pread  at 0, 4 KiB, 8 KiB, ... (wrapping at the device's end)
//   seqwrite  pwrite likewise, then one fdatasync (a device flush), counted in the case's time
//   randread  pread  at 4 KiB-aligned offsets from xorshift64 over the whole device
//   randwrite pwrite likewise, then one fdatasync
// Each case stops after SECONDS or after MAXOPS operations (0 = no limit), whichever is first.
// Before a case it prints "NVME: start case=NAME" (the host samples its own CPU clocks there),
// after it one line:
//   "NVME: case=NAME ops=N bytes=B seconds=S.ssssss iops=I.i mbps=M.mmm errors=E"
// (MB/s in 10^6 bytes per second). Time is CLOCK_MONOTONIC read by the clock_gettime system
// call after every operation: one more guest system call per I/O (~1 ms on this emulating host,
// BENCHMARKS.md §7), against ~100 ms per I/O, so a case ends within one operation of SECONDS.
// Freestanding and static like memdirty, clockprobe and vsockt (raw x86-64 system calls).
#include <stddef.h>
#include <stdint.h>

#define SYS_WRITE 1
#define SYS_OPEN 2
#define SYS_CLOSE 3
#define SYS_IOCTL 16
#define SYS_PREAD64 17
#define SYS_PWRITE64 18
#define SYS_EXIT 60
#define SYS_FDATASYNC 75
#define SYS_CLOCK_GETTIME 228
#define CLOCK_MONOTONIC 1
#define O_RDWR 2
#define O_DIRECT 040000                 // include/uapi/asm-generic/fcntl.h (x86)
#define BLKGETSIZE64 0x80081272ul       // _IOR(0x12, 114, size_t), include/uapi/linux/fs.h
#define BLOCK 4096ul

static long sys4(long n, long a, long b, long c, long d)
{
	long ret;
	register long r10 __asm__("r10") = d;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
	return ret;
}
#define sys3(n, a, b, c) sys4(n, (long)(a), (long)(b), (long)(c), 0)

static int str_eq(const char *a, const char *b)
{
	while (*a && *a == *b)
		++a, ++b;
	return *a == *b;
}

static unsigned long parse_uint(const char *s)
{
	unsigned long v = 0;
	while (*s >= '0' && *s <= '9')
		v = v * 10 + (unsigned long)(*s++ - '0');
	return v;
}

static char out[256];
static unsigned long out_len;

static void put(const char *s)
{
	while (*s && out_len < sizeof out - 1)
		out[out_len++] = *s++;
}

static void put_uint(unsigned long v)
{
	char digits[24];
	int n = 0;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n && out_len < sizeof out - 1)
		out[out_len++] = digits[--n];
}

// v / 10^places with `places` decimals, e.g. put_fixed(1234, 3) = "1.234".
static void put_fixed(unsigned long v, int places)
{
	unsigned long scale = 1;
	for (int i = 0; i < places; ++i)
		scale *= 10;
	put_uint(v / scale);
	put(".");
	unsigned long frac = v % scale;
	for (unsigned long s = scale / 10; s > 1 && frac < s; s /= 10)
		put("0");
	put_uint(frac);
}

static void flush(void)
{
	out[out_len++] = '\n';
	sys3(SYS_WRITE, 1, out, out_len);
	out_len = 0;
}

static __attribute__((noreturn)) void exit_now(int status)
{
	sys3(SYS_EXIT, status, 0, 0);
	__builtin_unreachable();
}

struct ts {
	long sec;
	long nsec;
};

static unsigned long now_ns(void)
{
	struct ts t = { 0, 0 };
	sys3(SYS_CLOCK_GETTIME, CLOCK_MONOTONIC, &t, 0);
	return (unsigned long)t.sec * 1000000000ul + (unsigned long)t.nsec;
}

// O_DIRECT needs the buffer aligned to the device's logical block size (at most 4 KiB).
static uint8_t buf[BLOCK] __attribute__((aligned(4096)));

enum kind { SEQREAD, SEQWRITE, RANDREAD, RANDWRITE };
static const char *const names[] = { "seqread", "seqwrite", "randread", "randwrite" };

static int run_case(int fd, enum kind kind, unsigned long blocks, unsigned long seconds, unsigned long max_ops)
{
	int write = kind == SEQWRITE || kind == RANDWRITE;
	int random = kind == RANDREAD || kind == RANDWRITE;
	uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)kind; // xorshift64 state, never 0
	unsigned long ops = 0, errors = 0, block = 0;
	put("NVME: start case=");
	put(names[kind]);
	flush();
	unsigned long start = now_ns(), end = start, limit = seconds * 1000000000ul;
	for (;;) {
		if (random) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			block = (unsigned long)(x % blocks);
		}
		if (write) {
			// Each block written carries its number and the operation count: not all zeroes,
			// so neither side can shortcut it.
			*(uint64_t *)buf = block;
			*(uint64_t *)(buf + 8) = ops;
		}
		long r = sys4(write ? SYS_PWRITE64 : SYS_PREAD64, fd, (long)buf, (long)BLOCK, (long)(block * BLOCK));
		if (r != (long)BLOCK)
			++errors;
		++ops;
		if (!random)
			block = (block + 1) % blocks;
		if (max_ops && ops >= max_ops)
			break;
		if ((end = now_ns()) - start >= limit)
			break;
	}
	if (write && sys3(SYS_FDATASYNC, fd, 0, 0) != 0)
		++errors;
	end = now_ns();
	unsigned long ns = end > start ? end - start : 1;
	unsigned long bytes = ops * BLOCK;
	put("NVME: case=");
	put(names[kind]);
	put(" ops=");
	put_uint(ops);
	put(" bytes=");
	put_uint(bytes);
	put(" seconds=");
	put_fixed(ns / 1000, 6);
	put(" iops=");
	put_fixed(ops * 10000000000ul / ns, 1); // fits 64 bits below 1.8e9 operations
	put(" mbps=");
	put_fixed(bytes * 1000000ul / ns, 3); // 10^6 B/s to 3 decimals: bytes / ns * 10^9 / 10^6 * 10^3
	put(" errors=");
	put_uint(errors);
	flush();
	return errors ? 1 : 0;
}

__attribute__((used)) void start_c(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	if (argc != 4 || str_eq(argv[1], "")) {
		put("NVME: error usage: nvmeload DEVICE SECONDS MAXOPS");
		flush();
		exit_now(2);
	}
	int fd = (int)sys3(SYS_OPEN, argv[1], O_RDWR | O_DIRECT, 0);
	uint64_t size = 0;
	if (fd < 0 || sys3(SYS_IOCTL, fd, BLKGETSIZE64, &size) < 0 || size < BLOCK) {
		put("NVME: error cannot open or size ");
		put(argv[1]);
		flush();
		exit_now(1);
	}
	unsigned long seconds = parse_uint(argv[2]), max_ops = parse_uint(argv[3]);
	put("NVME: device=");
	put(argv[1]);
	put(" bytes=");
	put_uint(size);
	put(" block=4096 depth=1 seconds=");
	put_uint(seconds);
	put(" max_ops=");
	put_uint(max_ops);
	flush();
	int failed = 0;
	for (int kind = SEQREAD; kind <= RANDWRITE; ++kind)
		failed |= run_case(fd, (enum kind)kind, size / BLOCK, seconds, max_ops);
	sys3(SYS_CLOSE, fd, 0, 0);
	put("NVME: done failed=");
	put_uint((unsigned long)failed);
	flush();
	exit_now(failed);
}

__asm__(".globl _start\n"
	"_start:\n"
	"  mov %rsp, %rdi\n"
	"  and $-16, %rsp\n"
	"  call start_c\n"
	"  hlt\n");

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
// Freestanding (guest/freestanding.h says why).
#include "freestanding.h"

#define O_RDWR 2
#define O_DIRECT 040000                 // include/uapi/asm-generic/fcntl.h (x86)
#define BLKGETSIZE64 0x80081272ul       // _IOR(0x12, 114, size_t), include/uapi/linux/fs.h
#define BLOCK 4096ul

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
	out_str("NVME: start case=");
	out_str(names[kind]);
	out_line();
	unsigned long start = monotonic_ns(), end = start, limit = seconds * 1000000000ul;
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
		long r = sys4(write ? __NR_pwrite64 : __NR_pread64, fd, buf, BLOCK, block * BLOCK);
		if (r != (long)BLOCK)
			++errors;
		++ops;
		if (!random)
			block = (block + 1) % blocks;
		if (max_ops && ops >= max_ops)
			break;
		if ((end = monotonic_ns()) - start >= limit)
			break;
	}
	if (write && sys3(__NR_fdatasync, fd, 0, 0) != 0)
		++errors;
	end = monotonic_ns();
	unsigned long ns = end > start ? end - start : 1;
	unsigned long bytes = ops * BLOCK;
	out_str("NVME: case=");
	out_str(names[kind]);
	out_str(" ops=");
	out_u64(ops);
	out_str(" bytes=");
	out_u64(bytes);
	out_str(" seconds=");
	out_fixed(ns / 1000, 6);
	out_str(" iops=");
	out_fixed(ops * 10000000000ul / ns, 1); // fits 64 bits below 1.8e9 operations
	out_str(" mbps=");
	out_fixed(bytes * 1000000ul / ns, 3); // 10^6 B/s to 3 decimals: bytes / ns * 10^9 / 10^6 * 10^3
	out_str(" errors=");
	out_u64(errors);
	out_line();
	return errors ? 1 : 0;
}

__attribute__((used)) _Noreturn void start_c(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	if (argc != 4 || str_eq(argv[1], "")) {
		out_str("NVME: error usage: nvmeload DEVICE SECONDS MAXOPS");
		out_line();
		exit_now(2);
	}
	int fd = (int)sys3(__NR_open, argv[1], O_RDWR | O_DIRECT, 0);
	uint64_t size = 0;
	if (fd < 0 || sys3(__NR_ioctl, fd, BLKGETSIZE64, &size) < 0 || size < BLOCK) {
		out_str("NVME: error cannot open or size ");
		out_str(argv[1]);
		out_line();
		exit_now(1);
	}
	unsigned long seconds = parse_u64(argv[2]), max_ops = parse_u64(argv[3]);
	out_str("NVME: device=");
	out_str(argv[1]);
	out_str(" bytes=");
	out_u64(size);
	out_str(" block=4096 depth=1 seconds=");
	out_u64(seconds);
	out_str(" max_ops=");
	out_u64(max_ops);
	out_line();
	int failed = 0;
	for (int kind = SEQREAD; kind <= RANDWRITE; ++kind)
		failed |= run_case(fd, (enum kind)kind, size / BLOCK, seconds, max_ops);
	sys3(__NR_close, fd, 0, 0);
	out_str("NVME: done failed=");
	out_u64((unsigned long)failed);
	out_line();
	exit_now(failed);
}

FREESTANDING_ENTRY(start_c);

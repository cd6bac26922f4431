// SPDX-License-Identifier: MIT
// What the test guest's own tools (guest/*.c: memdirty, nvmet, nvmeload, clockprobe, vsockt)
// share: raw x86-64 system calls, one output line per write(2), decimal parsing and printing,
// the monotonic clock, and the _start that calls the tool's main.
//
// Why freestanding (no libc, -nostdlib, static; guest/build.sh build_tool): the initramfs is
// unpacked by the guest kernel, which this project's test host emulates at ~1.2 ms per KiB, so a
// ~2 KB binary beats a ~700 KB static glibc one by close to a second of boot; and the tools'
// loops run in native guest user space, where a system call is the only costly thing.
//
// Everything here is `static inline`: a tool that uses a part pays for that part only, and an
// unused one is no -Wunused-function error under build_tool's -Werror.
#pragma once

#include <asm/unistd.h> // __NR_* (arch/x86/entry/syscalls/syscall_64.tbl)
#include <stddef.h>
#include <stdint.h>

typedef uint64_t u64;
typedef int64_t i64;

// The x86-64 system call convention (arch/x86/entry/entry_64.S): number in rax, arguments in
// rdi, rsi, rdx, r10, r8, r9; rcx and r11 are clobbered; the result (or -errno) in rax.
static inline i64 sys6(i64 n, i64 a, i64 b, i64 c, i64 d, i64 e, i64 f)
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
#define sys3(n, a, b, c) sys6((n), (i64)(a), (i64)(b), (i64)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) sys6((n), (i64)(a), (i64)(b), (i64)(c), (i64)(d), 0, 0)

// A raw return value in -4095..-1 is -errno (the kernel's MAX_ERRNO, include/linux/err.h):
// tells an error from a large pointer (mmap).
static inline int sys_failed(i64 ret) { return ret < 0 && ret > -4096; }

static inline __attribute__((noreturn)) void exit_now(int status)
{
	for (;;)
		sys3(__NR_exit_group, status, 0, 0);
}

static inline int str_eq(char const *a, char const *b)
{
	while (*a && *a == *b)
		++a, ++b;
	return *a == *b;
}

// The leading decimal digits of `s` (0 if none); for arguments the host's scripts write.
static inline u64 parse_u64(char const *s)
{
	u64 v = 0;
	while (*s >= '0' && *s <= '9')
		v = v * 10 + (u64)(*s++ - '0');
	return v;
}

// All of `s` as a decimal number no larger than `max`; 0 (refused) for anything else.
static inline u64 parse_u64_max(char const *s, u64 max)
{
	u64 v = 0;
	if (!*s)
		return 0;
	for (; *s; ++s) {
		if (*s < '0' || *s > '9' || v > max)
			return 0;
		v = v * 10 + (u64)(*s - '0');
	}
	return v <= max ? v : 0;
}

struct timespec_raw {
	i64 sec;
	i64 nsec;
};

static inline u64 clock_ns(int clock) // CLOCK_REALTIME 0, CLOCK_MONOTONIC 1 (uapi/linux/time.h)
{
	struct timespec_raw t = { 0, 0 };
	sys3(__NR_clock_gettime, clock, &t, 0);
	return (u64)t.sec * 1000000000u + (u64)t.nsec;
}
static inline u64 monotonic_ns(void) { return clock_ns(1); }

static inline void sleep_ns(u64 ns)
{
	struct timespec_raw const t = { (i64)(ns / 1000000000u), (i64)(ns % 1000000000u) };
	sys3(__NR_nanosleep, &t, 0, 0);
}

// The output line: built with out_*, written whole by out_line(), so the serial console never
// interleaves it with /init's output. Longer text is cut at the buffer's end.
static char out_text[256];
static u64 out_len;

static inline void out_str(char const *s)
{
	while (*s && out_len < sizeof out_text - 1)
		out_text[out_len++] = *s++;
}

// `v` in decimal, left-padded with zeros to `width` digits.
static inline void out_u64_width(u64 v, int width)
{
	char digits[24];
	int n = 0;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n < width)
		digits[n++] = '0';
	while (n && out_len < sizeof out_text - 1)
		out_text[out_len++] = digits[--n];
}
static inline void out_u64(u64 v) { out_u64_width(v, 0); }

// v / 10^places with `places` decimals, e.g. out_fixed(1234, 3) = "1.234".
static inline void out_fixed(u64 v, int places)
{
	u64 scale = 1;
	for (int i = 0; i < places; ++i)
		scale *= 10;
	out_u64(v / scale);
	out_str(".");
	out_u64_width(v % scale, places);
}

// Writes the line and a newline to `fd` in one write(2), and starts the next line.
static inline void out_line_to(int fd)
{
	out_text[out_len++] = '\n';
	sys3(__NR_write, fd, out_text, out_len);
	out_len = 0;
}
static inline void out_line(void) { out_line_to(1); }

// The kernel enters _start with argc, argv[] and envp[] on the stack (the x86-64 psABI, 3.4.1);
// align the stack for the call to the tool's `void MAIN(long *sp)`, which must not return.
#define FREESTANDING_ENTRY(MAIN) \
	__asm__(".text\n" \
		".globl _start\n" \
		"_start:\n" \
		"  xor %ebp, %ebp\n" \
		"  mov %rsp, %rdi\n" \
		"  and $-16, %rsp\n" \
		"  call " #MAIN "\n" \
		"  hlt\n")

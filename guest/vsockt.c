// SPDX-License-Identifier: MIT
// vsockt: the vsock mode's AF_VSOCK (hv_sock) helper of the test guest.
//   vsockt echo PORT              listens on vsock port PORT; each connection (in a child
//                                 process) is echoed until EOF, then half-closed; prints
//                                 "VSOCK: echo bytes=N sum=<fnv1a64 hex>" per connection
//   vsockt send PORT BYTES CONNS  CONNS connections at once to the host (CID 2) port PORT; each
//                                 sends BYTES of a per-connection pattern, half-closes, reads
//                                 the echo back and compares it byte for byte; prints
//                                 "VSOCK: send conn=I bytes=N echoed=M ok=0|1 sum=<hex>"
// Freestanding and static like memdirty and clockprobe (raw x86-64 syscalls).
#include <stddef.h>
#include <stdint.h>

#define SYS_READ 0
#define SYS_WRITE 1
#define SYS_CLOSE 3
#define SYS_SOCKET 41
#define SYS_CONNECT 42
#define SYS_ACCEPT 43
#define SYS_SHUTDOWN 48
#define SYS_BIND 49
#define SYS_LISTEN 50
#define SYS_SETSOCKOPT 54
#define SYS_FORK 57
#define SYS_EXIT 60
#define SYS_WAIT4 61
#define AF_VSOCK 40
#define SOCK_STREAM 1
#define SHUT_WR 1
#define VMADDR_CID_ANY 0xffffffffu
#define VMADDR_CID_HOST 2u
#define SO_VM_SOCKETS_CONNECT_TIMEOUT_OLD 6 // include/uapi/linux/vm_sockets.h (struct timeval)
#define WNOHANG 1

struct sockaddr_vm { // include/uapi/linux/vm_sockets.h
	uint16_t svm_family;
	uint16_t svm_reserved1;
	uint32_t svm_port;
	uint32_t svm_cid;
	uint8_t svm_flags;
	uint8_t svm_zero[3];
};

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
	return ret;
}
#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)

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

static void put_hex(uint64_t v)
{
	for (int shift = 60; shift >= 0; shift -= 4)
		if (out_len < sizeof out - 1)
			out[out_len++] = "0123456789abcdef"[(v >> shift) & 15];
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

static uint64_t fnv1a(uint64_t hash, const uint8_t *p, long n)
{
	for (long i = 0; i < n; ++i)
		hash = (hash ^ p[i]) * 0x100000001b3ull;
	return hash;
}
#define FNV_BASIS 0xcbf29ce484222325ull

// Byte i of connection `conn`'s stream: xorshift over 32-bit words, so every offset differs.
static void pattern(unsigned conn, unsigned long offset, uint8_t *p, long n)
{
	for (long i = 0; i < n; ++i) {
		uint32_t x = (uint32_t)((offset + (unsigned long)i) >> 2) * 2654435761u + conn * 40503u + 1;
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)(x >> (8 * ((offset + (unsigned long)i) & 3)));
	}
}

static uint8_t buf[65536];
static uint8_t expect[65536];

static long write_all(int fd, const uint8_t *p, long n)
{
	long done = 0;
	while (done < n) {
		long w = sys3(SYS_WRITE, fd, p + done, n - done);
		if (w <= 0)
			return -1;
		done += w;
	}
	return done;
}

static void echo_one(int fd)
{
	uint64_t sum = FNV_BASIS;
	unsigned long total = 0;
	for (;;) {
		long r = sys3(SYS_READ, fd, buf, sizeof buf);
		if (r <= 0)
			break;
		sum = fnv1a(sum, buf, r);
		total += (unsigned long)r;
		if (write_all(fd, buf, r) < 0)
			break;
	}
	sys3(SYS_SHUTDOWN, fd, SHUT_WR, 0);
	sys3(SYS_CLOSE, fd, 0, 0);
	put("VSOCK: echo bytes=");
	put_uint(total);
	put(" sum=");
	put_hex(sum);
	flush();
}

static int do_echo(unsigned port)
{
	int fd = (int)sys3(SYS_SOCKET, AF_VSOCK, SOCK_STREAM, 0);
	struct sockaddr_vm addr = { AF_VSOCK, 0, port, VMADDR_CID_ANY, 0, { 0 } };
	if (fd < 0 || sys3(SYS_BIND, fd, &addr, sizeof addr) < 0 || sys3(SYS_LISTEN, fd, 64, 0) < 0) {
		put("VSOCK: error listen port=");
		put_uint(port);
		flush();
		return 1;
	}
	put("VSOCK: listening port=");
	put_uint(port);
	flush();
	for (;;) {
		while (sys6(SYS_WAIT4, -1, 0, WNOHANG, 0, 0, 0) > 0) {
		}
		int c = (int)sys3(SYS_ACCEPT, fd, 0, 0);
		if (c < 0)
			continue;
		if (sys3(SYS_FORK, 0, 0, 0) == 0) {
			sys3(SYS_CLOSE, fd, 0, 0);
			echo_one(c);
			exit_now(0);
		}
		sys3(SYS_CLOSE, c, 0, 0);
	}
}

static int send_one(unsigned port, unsigned long bytes, unsigned conn)
{
	int fd = (int)sys3(SYS_SOCKET, AF_VSOCK, SOCK_STREAM, 0);
	long timeout[2] = { 120, 0 }; // The emulated guest kernel is slow; the default is 2 s.
	sys6(SYS_SETSOCKOPT, fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT_OLD, (long)timeout, sizeof timeout, 0);
	struct sockaddr_vm addr = { AF_VSOCK, 0, port, VMADDR_CID_HOST, 0, { 0 } };
	if (fd < 0 || sys3(SYS_CONNECT, fd, &addr, sizeof addr) < 0) {
		put("VSOCK: send conn=");
		put_uint(conn);
		put(" error connect");
		flush();
		return 1;
	}
	if (sys3(SYS_FORK, 0, 0, 0) == 0) { // Writer: the parent reads the echo meanwhile.
		unsigned long sent = 0;
		while (sent < bytes) {
			long n = bytes - sent < sizeof buf ? (long)(bytes - sent) : (long)sizeof buf;
			pattern(conn, sent, buf, n);
			if (write_all(fd, buf, n) < 0)
				exit_now(1);
			sent += (unsigned long)n;
		}
		sys3(SYS_SHUTDOWN, fd, SHUT_WR, 0);
		exit_now(0);
	}
	unsigned long got = 0;
	int ok = 1;
	uint64_t sum = FNV_BASIS;
	for (;;) {
		long r = sys3(SYS_READ, fd, buf, sizeof buf);
		if (r <= 0)
			break;
		pattern(conn, got, expect, r);
		for (long i = 0; i < r; ++i)
			ok &= buf[i] == expect[i];
		sum = fnv1a(sum, buf, r);
		got += (unsigned long)r;
	}
	int status = 0;
	sys6(SYS_WAIT4, -1, (long)&status, 0, 0, 0, 0);
	ok &= got == bytes && status == 0;
	put("VSOCK: send conn=");
	put_uint(conn);
	put(" bytes=");
	put_uint(bytes);
	put(" echoed=");
	put_uint(got);
	put(" ok=");
	put_uint((unsigned long)ok);
	put(" sum=");
	put_hex(sum);
	flush();
	return ok ? 0 : 1;
}

static int do_send(unsigned port, unsigned long bytes, unsigned conns)
{
	for (unsigned i = 0; i < conns; ++i)
		if (sys3(SYS_FORK, 0, 0, 0) == 0)
			exit_now(send_one(port, bytes, i));
	int failed = 0;
	for (unsigned i = 0; i < conns; ++i) {
		int status = 0;
		if (sys6(SYS_WAIT4, -1, (long)&status, 0, 0, 0, 0) < 0 || status != 0)
			++failed;
	}
	put("VSOCK: send done conns=");
	put_uint(conns);
	put(" failed=");
	put_uint((unsigned long)failed);
	flush();
	return failed ? 1 : 0;
}

__attribute__((used)) void start_c(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	if (argc >= 3 && str_eq(argv[1], "echo"))
		exit_now(do_echo((unsigned)parse_uint(argv[2])));
	if (argc >= 5 && str_eq(argv[1], "send"))
		exit_now(do_send((unsigned)parse_uint(argv[2]), parse_uint(argv[3]), (unsigned)parse_uint(argv[4])));
	put("VSOCK: error usage: vsockt echo PORT | send PORT BYTES CONNS");
	flush();
	exit_now(2);
}

__asm__(".globl _start\n"
	"_start:\n"
	"  mov %rsp, %rdi\n"
	"  and $-16, %rsp\n"
	"  call start_c\n"
	"  hlt\n");

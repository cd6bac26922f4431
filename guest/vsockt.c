// SPDX-License-Identifier: MIT
// vsockt: the vsock mode's AF_VSOCK (hv_sock) helper of the test guest.
//   vsockt echo PORT              listens on vsock port PORT; each connection (in a child
//                                 process) is echoed until EOF, then half-closed; prints
//                                 "VSOCK: echo bytes=N sum=<fnv1a64 hex>" per connection
//   vsockt send PORT BYTES CONNS  CONNS connections at once to the host (CID 2) port PORT; each
//                                 sends BYTES of a per-connection pattern, half-closes, reads
//                                 the echo back and compares it byte for byte; prints
//                                 "VSOCK: send conn=I bytes=N echoed=M ok=0|1 sum=<hex>"
//   vsockt sink PORT [RING]       (bench/hvsock_guest.py) listens on PORT; each connection sends a
//                                 u32 read size, then the bench pattern (bench_byte()) until
//                                 EOF; the guest reads it with that size, checks every byte and
//                                 answers "bytes=N ok=0|1\n" before closing
//   vsockt source PORT [RING]     listens on PORT; each connection sends a u32 write size, then
//                                 the guest writes the bench pattern with that size until the
//                                 host closes; prints "VSOCK: source bytes=N"
//   RING (bytes, 0 = the kernel's default) is SO_SNDBUF/SO_RCVBUF of the listener, which the
//   accepted connections' VMBus rings inherit (hyperv_transport.c hvs_open_connection()).
// Freestanding (guest/freestanding.h says why).
#include "freestanding.h"

#define AF_VSOCK 40
#define SOCK_STREAM 1
#define SHUT_WR 1
#define VMADDR_CID_ANY 0xffffffffu
#define VMADDR_CID_HOST 2u
#define SO_VM_SOCKETS_CONNECT_TIMEOUT_OLD 6 // include/uapi/linux/vm_sockets.h (struct timeval)
#define WNOHANG 1
#define SOL_SOCKET 1
#define SO_SNDBUF 7
#define SO_RCVBUF 8

struct sockaddr_vm { // include/uapi/linux/vm_sockets.h
	uint16_t svm_family;
	uint16_t svm_reserved1;
	uint32_t svm_port;
	uint32_t svm_cid;
	uint8_t svm_flags;
	uint8_t svm_zero[3];
};

static void put_hex(uint64_t v)
{
	for (int shift = 60; shift >= 0; shift -= 4)
		if (out_len < sizeof out_text - 1)
			out_text[out_len++] = "0123456789abcdef"[(v >> shift) & 15];
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

// The bench streams' pattern: byte at stream offset o is bench_byte(o % BENCH_PERIOD). A prime
// period, so no read or write size lines up with it; the host side precomputes one period.
#define BENCH_PERIOD 65521u
static uint8_t bench_byte(uint32_t k)
{
	uint32_t x = k * 2654435761u + 1;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return (uint8_t)(x >> 11);
}

static uint8_t buf[65536];
static uint8_t expect[65536];
// Bench I/O sizes up to 256 KiB (one read()/write() each).
#define BENCH_MAX_IO (256 * 1024)
static uint8_t big[BENCH_MAX_IO + BENCH_PERIOD];

static long write_all(int fd, const uint8_t *p, long n)
{
	long done = 0;
	while (done < n) {
		long w = sys3(__NR_write, fd, p + done, n - done);
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
		long r = sys3(__NR_read, fd, buf, sizeof buf);
		if (r <= 0)
			break;
		sum = fnv1a(sum, buf, r);
		total += (unsigned long)r;
		if (write_all(fd, buf, r) < 0)
			break;
	}
	sys3(__NR_shutdown, fd, SHUT_WR, 0);
	sys3(__NR_close, fd, 0, 0);
	out_str("VSOCK: echo bytes=");
	out_u64(total);
	out_str(" sum=");
	put_hex(sum);
	out_line();
}

// Accepts on the listening `fd` forever, each connection served by `one` in a child process;
// finished children are reaped before each accept.
static _Noreturn void serve(int fd, void (*one)(int))
{
	for (;;) {
		while (sys6(__NR_wait4, -1, 0, WNOHANG, 0, 0, 0) > 0) {
		}
		int c = (int)sys3(__NR_accept, fd, 0, 0);
		if (c < 0)
			continue;
		if (sys3(__NR_fork, 0, 0, 0) == 0) {
			sys3(__NR_close, fd, 0, 0);
			one(c);
			exit_now(0);
		}
		sys3(__NR_close, c, 0, 0);
	}
}

static int do_echo(unsigned port)
{
	int fd = (int)sys3(__NR_socket, AF_VSOCK, SOCK_STREAM, 0);
	struct sockaddr_vm addr = { AF_VSOCK, 0, port, VMADDR_CID_ANY, 0, { 0 } };
	if (fd < 0 || sys3(__NR_bind, fd, &addr, sizeof addr) < 0 || sys3(__NR_listen, fd, 64, 0) < 0) {
		out_str("VSOCK: error listen port=");
		out_u64(port);
		out_line();
		return 1;
	}
	out_str("VSOCK: listening port=");
	out_u64(port);
	out_line();
	serve(fd, echo_one);
}

static int send_one(unsigned port, unsigned long bytes, unsigned conn)
{
	int fd = (int)sys3(__NR_socket, AF_VSOCK, SOCK_STREAM, 0);
	long timeout[2] = { 120, 0 }; // The emulated guest kernel is slow; the default is 2 s.
	sys6(__NR_setsockopt, fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT_OLD, (long)timeout, sizeof timeout, 0);
	struct sockaddr_vm addr = { AF_VSOCK, 0, port, VMADDR_CID_HOST, 0, { 0 } };
	if (fd < 0 || sys3(__NR_connect, fd, &addr, sizeof addr) < 0) {
		out_str("VSOCK: send conn=");
		out_u64(conn);
		out_str(" error connect");
		out_line();
		return 1;
	}
	if (sys3(__NR_fork, 0, 0, 0) == 0) { // Writer: the parent reads the echo meanwhile.
		unsigned long sent = 0;
		while (sent < bytes) {
			long n = bytes - sent < sizeof buf ? (long)(bytes - sent) : (long)sizeof buf;
			pattern(conn, sent, buf, n);
			if (write_all(fd, buf, n) < 0)
				exit_now(1);
			sent += (unsigned long)n;
		}
		sys3(__NR_shutdown, fd, SHUT_WR, 0);
		exit_now(0);
	}
	unsigned long got = 0;
	int ok = 1;
	uint64_t sum = FNV_BASIS;
	for (;;) {
		long r = sys3(__NR_read, fd, buf, sizeof buf);
		if (r <= 0)
			break;
		pattern(conn, got, expect, r);
		for (long i = 0; i < r; ++i)
			ok &= buf[i] == expect[i];
		sum = fnv1a(sum, buf, r);
		got += (unsigned long)r;
	}
	int status = 0;
	sys6(__NR_wait4, -1, (long)&status, 0, 0, 0, 0);
	ok &= got == bytes && status == 0;
	out_str("VSOCK: send conn=");
	out_u64(conn);
	out_str(" bytes=");
	out_u64(bytes);
	out_str(" echoed=");
	out_u64(got);
	out_str(" ok=");
	out_u64((unsigned long)ok);
	out_str(" sum=");
	put_hex(sum);
	out_line();
	return ok ? 0 : 1;
}

static int do_send(unsigned port, unsigned long bytes, unsigned conns)
{
	for (unsigned i = 0; i < conns; ++i)
		if (sys3(__NR_fork, 0, 0, 0) == 0)
			exit_now(send_one(port, bytes, i));
	int failed = 0;
	for (unsigned i = 0; i < conns; ++i) {
		int status = 0;
		if (sys6(__NR_wait4, -1, (long)&status, 0, 0, 0, 0) < 0 || status != 0)
			++failed;
	}
	out_str("VSOCK: send done conns=");
	out_u64(conns);
	out_str(" failed=");
	out_u64((unsigned long)failed);
	out_line();
	return failed ? 1 : 0;
}

// The pattern from offset 0 to BENCH_MAX_IO + BENCH_PERIOD: any window of `size` bytes that
// starts at (offset % BENCH_PERIOD) is the stream's bytes at offset.
static void bench_fill(void)
{
	for (uint32_t i = 0; i < sizeof big; ++i)
		big[i] = bench_byte(i % BENCH_PERIOD);
}

static int bench_listen(unsigned port, unsigned long ring)
{
	int fd = (int)sys3(__NR_socket, AF_VSOCK, SOCK_STREAM, 0);
	struct sockaddr_vm addr = { AF_VSOCK, 0, port, VMADDR_CID_ANY, 0, { 0 } };
	if (ring) {
		int value = (int)(ring / 2); // The kernel doubles it (net/core/sock.c sock_setsockopt).
		sys6(__NR_setsockopt, fd, SOL_SOCKET, SO_SNDBUF, (long)&value, sizeof value, 0);
		sys6(__NR_setsockopt, fd, SOL_SOCKET, SO_RCVBUF, (long)&value, sizeof value, 0);
	}
	if (fd < 0 || sys3(__NR_bind, fd, &addr, sizeof addr) < 0 || sys3(__NR_listen, fd, 64, 0) < 0) {
		out_str("VSOCK: error listen port=");
		out_u64(port);
		out_line();
		exit_now(1);
	}
	out_str("VSOCK: listening port=");
	out_u64(port);
	out_line();
	return fd;
}

// The u32 I/O size the host sends first, clamped to 1..BENCH_MAX_IO; 0 if the host left.
static unsigned long bench_io_size(int fd)
{
	uint32_t size = 0;
	long got = 0;
	while (got < 4) {
		long r = sys3(__NR_read, fd, (uint8_t *)&size + got, 4 - got);
		if (r <= 0)
			return 0;
		got += r;
	}
	return size == 0 ? 1 : size > BENCH_MAX_IO ? BENCH_MAX_IO : size;
}

static uint8_t rbuf[BENCH_MAX_IO];

static void sink_one(int fd)
{
	unsigned long size = bench_io_size(fd);
	unsigned long total = 0;
	int ok = size != 0;
	while (size) {
		long r = sys3(__NR_read, fd, rbuf, size);
		if (r <= 0)
			break;
		const uint8_t *want = big + total % BENCH_PERIOD;
		for (long i = 0; i < r; ++i)
			ok &= rbuf[i] == want[i];
		total += (unsigned long)r;
	}
	out_str("bytes=");
	out_u64(total);
	out_str(" ok=");
	out_u64((unsigned long)ok);
	out_text[out_len++] = '\n';
	write_all(fd, (const uint8_t *)out_text, (long)out_len);
	out_len = 0;
	sys3(__NR_shutdown, fd, SHUT_WR, 0);
	while (sys3(__NR_read, fd, rbuf, sizeof rbuf) > 0) {
	}
	sys3(__NR_close, fd, 0, 0);
	out_str("VSOCK: sink bytes=");
	out_u64(total);
	out_str(" size=");
	out_u64(size);
	out_str(" ok=");
	out_u64((unsigned long)ok);
	out_line();
}

static void source_one(int fd)
{
	unsigned long size = bench_io_size(fd);
	unsigned long total = 0;
	while (size) {
		long w = sys3(__NR_write, fd, big + total % BENCH_PERIOD, size);
		if (w <= 0)
			break;
		total += (unsigned long)w;
	}
	sys3(__NR_close, fd, 0, 0);
	out_str("VSOCK: source bytes=");
	out_u64(total);
	out_str(" size=");
	out_u64(size);
	out_line();
}

static int do_bench(unsigned port, unsigned long ring, void (*one)(int))
{
	int fd = bench_listen(port, ring);
	bench_fill();
	serve(fd, one);
}

__attribute__((used)) _Noreturn void start_c(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	if (argc >= 3 && str_eq(argv[1], "echo"))
		exit_now(do_echo((unsigned)parse_u64(argv[2])));
	if (argc >= 3 && str_eq(argv[1], "sink"))
		exit_now(do_bench((unsigned)parse_u64(argv[2]), argc >= 4 ? parse_u64(argv[3]) : 0, sink_one));
	if (argc >= 3 && str_eq(argv[1], "source"))
		exit_now(do_bench((unsigned)parse_u64(argv[2]), argc >= 4 ? parse_u64(argv[3]) : 0, source_one));
	if (argc >= 5 && str_eq(argv[1], "send"))
		exit_now(do_send((unsigned)parse_u64(argv[2]), parse_u64(argv[3]), (unsigned)parse_u64(argv[4])));
	out_str("VSOCK: error usage: vsockt echo PORT | send PORT BYTES CONNS | sink|source PORT [RING]");
	out_line();
	exit_now(2);
}

FREESTANDING_ENTRY(start_c);

// SPDX-License-Identifier: MIT
// clockprobe: the time mode's clock reader and the clock_gettime benchmark of the test guest.
//   clockprobe now        prints "CLOCK: realtime=<s>.<ns9> monotonic=<s>.<ns9>"
//   clockprobe bench N    prints "CLOCK: bench calls=N vdso_ns=<per call> syscall_ns=<per call>"
//   clockprobe rtc        prints "CLOCK: rtc=<epoch s> realtime=<s>.<ns9>": the CMOS RTC read
//                         through /dev/port (the kernel reads it only once, at boot), then the
//                         kernel's wall clock, so the host can check each against its own
//   clockprobe hctosys    sets the kernel's wall clock from the RTC, like `hwclock --hctosys`:
//                         waits for the RTC's seconds to tick, so the set time is exact to a
//                         poll (a few ms), then prints "CLOCK: hctosys rtc=<s> was=<s>.<ns9>"
// Freestanding (guest/freestanding.h says why). clock_gettime goes through the vDSO, found
// through AT_SYSINFO_EHDR and its DT_HASH symbol table (Documentation/ABI/stable/vdso,
// tools/testing/selftests/vDSO/parse_vdso.c describes the same walk), so a TSC-page clocksource
// is read without entering the kernel.
#include <elf.h>

#include "freestanding.h"

#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1
#define O_RDWR 2

typedef struct timespec_raw ts_t;
typedef int (*vdso_clock_gettime_t)(int, ts_t *);

static _Noreturn void flush_exit(int status)
{
	out_line();
	exit_now(status);
}

// Looks up "__vdso_clock_gettime" in the vDSO image at `ehdr` (0 if absent).
static vdso_clock_gettime_t find_vdso(const Elf64_Ehdr *ehdr)
{
	if (!ehdr)
		return 0;
	const char *image = (const char *)ehdr;
	const Elf64_Phdr *ph = (const Elf64_Phdr *)(image + ehdr->e_phoff);
	long load_offset = 0;
	const Elf64_Dyn *dyn = 0;
	for (int i = 0; i < ehdr->e_phnum; ++i) {
		if (ph[i].p_type == PT_LOAD)
			load_offset = (long)image + (long)ph[i].p_offset - (long)ph[i].p_vaddr;
		else if (ph[i].p_type == PT_DYNAMIC)
			dyn = (const Elf64_Dyn *)(image + ph[i].p_offset);
	}
	if (!dyn)
		return 0;
	const Elf64_Sym *symtab = 0;
	const char *strtab = 0;
	const Elf64_Word *hash = 0;
	for (; dyn->d_tag != DT_NULL; ++dyn) {
		if (dyn->d_tag == DT_SYMTAB)
			symtab = (const Elf64_Sym *)(dyn->d_un.d_ptr + load_offset);
		else if (dyn->d_tag == DT_STRTAB)
			strtab = (const char *)(dyn->d_un.d_ptr + load_offset);
		else if (dyn->d_tag == DT_HASH)
			hash = (const Elf64_Word *)(dyn->d_un.d_ptr + load_offset);
	}
	if (!symtab || !strtab || !hash)
		return 0;
	for (Elf64_Word i = 0; i < hash[1]; ++i) { // hash[1] = nchain = number of symbols
		if (symtab[i].st_shndx != SHN_UNDEF && str_eq(strtab + symtab[i].st_name, "__vdso_clock_gettime"))
			return (vdso_clock_gettime_t)(symtab[i].st_value + load_offset);
	}
	return 0;
}

// MC146818 registers (include/linux/mc146818rtc.h): index port 0x70, data port 0x71.
#define RTC_INDEX_PORT 0x70
#define RTC_DATA_PORT 0x71
#define RTC_REG_A_UIP 0x80
#define RTC_REG_B_BINARY 0x04
#define RTC_REG_B_24H 0x02

static int rtc_read(long port_fd, unsigned char index)
{
	unsigned char value = 0;
	if (sys4(__NR_pwrite64, port_fd, &index, 1, RTC_INDEX_PORT) != 1 ||
	    sys4(__NR_pread64, port_fd, &value, 1, RTC_DATA_PORT) != 1)
		return -1;
	return value;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
static long days_from_civil(long y, long m, long d)
{
	y -= m <= 2;
	long const era = (y >= 0 ? y : y - 399) / 400;
	long const yoe = y - era * 400;
	long const doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long const doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

// The RTC's time in seconds since the epoch, read like Linux's mc146818_get_time()
// (drivers/rtc/rtc-mc146818-lib.c): wait for UIP clear, read, and retry if the seconds moved.
// Century from CMOS 0x32 (the FADT's century index in microvmm's ACPI tables). -1 on error.
static long rtc_epoch(void)
{
	long const fd = sys3(__NR_open, "/dev/port", O_RDWR, 0);
	if (fd < 0)
		return -1;
	for (int attempt = 0; attempt < 1000; ++attempt) {
		int const a = rtc_read(fd, 0x0A);
		if (a < 0)
			return -1;
		if (a & RTC_REG_A_UIP)
			continue;
		int const reg[] = { rtc_read(fd, 0x00), rtc_read(fd, 0x02), rtc_read(fd, 0x04), rtc_read(fd, 0x07),
				    rtc_read(fd, 0x08), rtc_read(fd, 0x09), rtc_read(fd, 0x32), rtc_read(fd, 0x0B) };
		if (rtc_read(fd, 0x00) != reg[0])
			continue;
		int const b = reg[7];
		int v[7];
		for (int i = 0; i < 7; ++i) {
			if (reg[i] < 0)
				return -1;
			int const raw = i == 2 ? reg[i] & 0x7F : reg[i]; // Hour bit 7 = PM in 12-hour mode.
			v[i] = (b & RTC_REG_B_BINARY) ? raw : (raw >> 4) * 10 + (raw & 0x0F);
		}
		if (!(b & RTC_REG_B_24H))
			v[2] = v[2] % 12 + ((reg[2] & 0x80) ? 12 : 0);
		long const days = days_from_civil(v[6] * 100L + v[5], v[4], v[3]);
		return days * 86400 + v[2] * 3600L + v[1] * 60L + v[0];
	}
	return -1;
}

static long ns_between(ts_t a, ts_t b)
{
	return (b.sec - a.sec) * 1000000000L + (b.nsec - a.nsec);
}

__attribute__((used)) _Noreturn void start_c(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	char **envp = argv + argc + 1;
	while (*envp)
		++envp;
	const Elf64_Ehdr *vdso_ehdr = 0;
	for (Elf64_auxv_t *aux = (Elf64_auxv_t *)(envp + 1); aux->a_type != AT_NULL; ++aux)
		if (aux->a_type == AT_SYSINFO_EHDR)
			vdso_ehdr = (const Elf64_Ehdr *)aux->a_un.a_val;
	vdso_clock_gettime_t vdso = find_vdso(vdso_ehdr);
	out_str("CLOCK: ");
	if (!vdso) {
		out_str("error no vDSO clock_gettime");
		flush_exit(1);
	}
	if (argc >= 2 && str_eq(argv[1], "now")) {
		ts_t real, mono;
		vdso(CLOCK_REALTIME, &real);
		vdso(CLOCK_MONOTONIC, &mono);
		out_str("realtime=");
		out_u64_width((unsigned long)real.sec, 1);
		out_str(".");
		out_u64_width((unsigned long)real.nsec, 9);
		out_str(" monotonic=");
		out_u64_width((unsigned long)mono.sec, 1);
		out_str(".");
		out_u64_width((unsigned long)mono.nsec, 9);
		flush_exit(0);
	}
	if (argc >= 3 && str_eq(argv[1], "bench")) {
		unsigned long calls = parse_u64(argv[2]);
		if (calls == 0)
			calls = 1;
		ts_t t0, t1, scratch;
		vdso(CLOCK_MONOTONIC, &t0);
		for (unsigned long i = 0; i < calls; ++i)
			vdso(CLOCK_MONOTONIC, &scratch);
		vdso(CLOCK_MONOTONIC, &t1);
		long const vdso_ns = ns_between(t0, t1) / (long)calls;
		unsigned long const sys_calls = calls / 10000 ? calls / 10000 : 1; // Syscalls are slow here.
		vdso(CLOCK_MONOTONIC, &t0);
		for (unsigned long i = 0; i < sys_calls; ++i)
			sys3(__NR_clock_gettime, CLOCK_MONOTONIC, &scratch, 0);
		vdso(CLOCK_MONOTONIC, &t1);
		out_str("bench calls=");
		out_u64_width(calls, 1);
		out_str(" vdso_ns=");
		out_u64_width((unsigned long)vdso_ns, 1);
		out_str(" syscall_ns=");
		out_u64_width((unsigned long)(ns_between(t0, t1) / (long)sys_calls), 1);
		flush_exit(0);
	}
	if (argc >= 2 && str_eq(argv[1], "rtc")) {
		long const rtc = rtc_epoch();
		ts_t real;
		vdso(CLOCK_REALTIME, &real);
		if (rtc < 0) {
			out_str("error RTC unreadable");
			flush_exit(1);
		}
		out_str("rtc=");
		out_u64_width((unsigned long)rtc, 1);
		out_str(" realtime=");
		out_u64_width((unsigned long)real.sec, 1);
		out_str(".");
		out_u64_width((unsigned long)real.nsec, 9);
		flush_exit(0);
	}
	if (argc >= 2 && str_eq(argv[1], "hctosys")) {
		long const fd = sys3(__NR_open, "/dev/port", O_RDWR, 0);
		int const first = fd < 0 ? -1 : rtc_read(fd, 0x00);
		int seconds = first;
		// The RTC's seconds register changes at the top of each second: poll for that edge
		// (at most ~2 s; each read is two syscalls), then read the full time just after it.
		ts_t edge = { 0, 0 }, start, now;
		vdso(CLOCK_MONOTONIC, &start);
		while (seconds >= 0 && seconds == first) {
			vdso(CLOCK_MONOTONIC, &edge);
			if (ns_between(start, edge) > 2500000000L)
				break;
			seconds = rtc_read(fd, 0x00);
		}
		long const rtc = seconds >= 0 && seconds != first ? rtc_epoch() : -1;
		if (rtc < 0) {
			out_str("error RTC unreadable or not ticking");
			flush_exit(1);
		}
		ts_t was, set;
		vdso(CLOCK_REALTIME, &was);
		vdso(CLOCK_MONOTONIC, &now);
		long const since_edge = ns_between(edge, now); // The RTC read and this line's work.
		set.sec = rtc + since_edge / 1000000000L;
		set.nsec = since_edge % 1000000000L;
		if (sys3(__NR_clock_settime, CLOCK_REALTIME, &set, 0) != 0) {
			out_str("error clock_settime failed");
			flush_exit(1);
		}
		out_str("hctosys rtc=");
		out_u64_width((unsigned long)rtc, 1);
		out_str(" was=");
		out_u64_width((unsigned long)was.sec, 1);
		out_str(".");
		out_u64_width((unsigned long)was.nsec, 9);
		flush_exit(0);
	}
	out_str("error usage: clockprobe now | bench N | rtc | hctosys");
	flush_exit(2);
}

FREESTANDING_ENTRY(start_c);

// SPDX-License-Identifier: MIT
// clockprobe: the time mode's clock reader and the clock_gettime benchmark of the test guest.
//   clockprobe now        prints "CLOCK: realtime=<s>.<ns9> monotonic=<s>.<ns9>"
//   clockprobe bench N    prints "CLOCK: bench calls=N vdso_ns=<per call> syscall_ns=<per call>"
// Freestanding and static like memdirty (a ~800 KB static glibc would cost the emulated kernel
// about a second of initramfs unpacking per boot). clock_gettime goes through the vDSO, found
// through AT_SYSINFO_EHDR and its DT_HASH symbol table (Documentation/ABI/stable/vdso,
// tools/testing/selftests/vDSO/parse_vdso.c describes the same walk), so a TSC-page clocksource
// is read without entering the kernel.
#include <elf.h>
#include <stddef.h>
#include <stdint.h>

#define SYS_WRITE 1
#define SYS_EXIT 60
#define SYS_CLOCK_GETTIME 228
#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1

struct ts {
	long sec;
	long nsec;
};
typedef int (*vdso_clock_gettime_t)(int, struct ts *);

static long syscall3(long n, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return ret;
}

static int str_eq(const char *a, const char *b)
{
	while (*a && *a == *b)
		++a, ++b;
	return *a == *b;
}

static char out[256];
static unsigned long out_len;

static void put(const char *s)
{
	while (*s && out_len < sizeof out - 1)
		out[out_len++] = *s++;
}

static void put_uint(unsigned long v, int width)
{
	char digits[24];
	int n = 0;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n < width)
		digits[n++] = '0';
	while (n && out_len < sizeof out - 1)
		out[out_len++] = digits[--n];
}

static void flush_exit(int status)
{
	out[out_len++] = '\n';
	syscall3(SYS_WRITE, 1, (long)out, (long)out_len);
	syscall3(SYS_EXIT, status, 0, 0);
	__builtin_unreachable();
}

static unsigned long parse_uint(const char *s)
{
	unsigned long v = 0;
	while (*s >= '0' && *s <= '9')
		v = v * 10 + (unsigned long)(*s++ - '0');
	return v;
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

static long ns_between(struct ts a, struct ts b)
{
	return (b.sec - a.sec) * 1000000000L + (b.nsec - a.nsec);
}

__attribute__((used)) void start_c(long *sp)
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
	put("CLOCK: ");
	if (!vdso) {
		put("error no vDSO clock_gettime");
		flush_exit(1);
	}
	if (argc >= 2 && str_eq(argv[1], "now")) {
		struct ts real, mono;
		vdso(CLOCK_REALTIME, &real);
		vdso(CLOCK_MONOTONIC, &mono);
		put("realtime=");
		put_uint((unsigned long)real.sec, 1);
		put(".");
		put_uint((unsigned long)real.nsec, 9);
		put(" monotonic=");
		put_uint((unsigned long)mono.sec, 1);
		put(".");
		put_uint((unsigned long)mono.nsec, 9);
		flush_exit(0);
	}
	if (argc >= 3 && str_eq(argv[1], "bench")) {
		unsigned long calls = parse_uint(argv[2]);
		if (calls == 0)
			calls = 1;
		struct ts t0, t1, scratch;
		vdso(CLOCK_MONOTONIC, &t0);
		for (unsigned long i = 0; i < calls; ++i)
			vdso(CLOCK_MONOTONIC, &scratch);
		vdso(CLOCK_MONOTONIC, &t1);
		long const vdso_ns = ns_between(t0, t1) / (long)calls;
		unsigned long const sys_calls = calls / 10000 ? calls / 10000 : 1; // Syscalls are slow here.
		vdso(CLOCK_MONOTONIC, &t0);
		for (unsigned long i = 0; i < sys_calls; ++i)
			syscall3(SYS_CLOCK_GETTIME, CLOCK_MONOTONIC, (long)&scratch, 0);
		vdso(CLOCK_MONOTONIC, &t1);
		put("bench calls=");
		put_uint(calls, 1);
		put(" vdso_ns=");
		put_uint((unsigned long)vdso_ns, 1);
		put(" syscall_ns=");
		put_uint((unsigned long)(ns_between(t0, t1) / (long)sys_calls), 1);
		flush_exit(0);
	}
	put("error usage: clockprobe now | bench N");
	flush_exit(2);
}

__asm__(".globl _start\n"
	"_start:\n"
	"  mov %rsp, %rdi\n"
	"  and $-16, %rsp\n"
	"  call start_c\n"
	"  hlt\n");

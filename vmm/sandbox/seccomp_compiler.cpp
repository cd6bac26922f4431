// SPDX-License-Identifier: MIT
// Build-time seccomp compiler (meson runs it; it is never installed or shipped): turns each
// thread type's allow-list (seccomp_rules.cpp, compiled here with the same defines as the
// VMM's, so sanitizer builds keep their extra rules) into the classic-BPF program the kernel
// runs, and writes them with the x86-64 system call names into one generated C++ source
// (seccomp_programs.hpp declares what it defines). At run time a thread only hands its program
// to seccomp(SECCOMP_SET_MODE_FILTER) (seccomp_filter.cpp): no libseccomp in microvmm, no name
// resolution (~450 lookups) and no compilation per thread at start-up. Firecracker does the
// same with its seccompiler (rules -> BPF at build time).
//
// libseccomp stays the compiler: the attributes are the ones the run-time compilation used
// (default action TRAP, other ABIs KILL_PROCESS, binary-tree dispatch), so the programs are the
// ones seccomp_load() loaded before.
//
// Usage: seccomp_compiler OUTPUT.cpp
#include <seccomp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <linux/filter.h>

#include "vmm/sandbox/seccomp_rules.hpp"
#include "vmm/sandbox/thread_kind.hpp"

namespace {

using namespace vmm::sandbox;

// Mirrors seccomp_programs.hpp SYSCALL_NAME_TABLE_SIZE (checked by a static_assert in the output).
constexpr int NAME_TABLE_SIZE = 512;

[[noreturn]] void die(std::string const& what)
{
    std::fprintf(stderr, "seccomp_compiler: %s\n", what.c_str());
    std::exit(1);
}

scmp_arg_cmp to_scmp(ArgCheck const& check)
{
    switch (check.op) {
    case ArgCheck::Op::Eq: return SCMP_CMP(check.index, SCMP_CMP_EQ, check.value);
    case ArgCheck::Op::Ne: return SCMP_CMP(check.index, SCMP_CMP_NE, check.value);
    case ArgCheck::Op::MaskedEq: return SCMP_CMP(check.index, SCMP_CMP_MASKED_EQ, check.mask, check.value);
    }
    die("unknown argument comparison");
}

std::vector<sock_filter> compile(ThreadKind kind)
{
    std::string const name { thread_kind_name(kind) };
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
    if (!ctx)
        die("seccomp_init failed");
    // A call through another ABI (i386 int 0x80, x32) is no call of ours: kill outright.
    if (int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS); rc < 0)
        die("bad-arch action: " + std::string(std::strerror(-rc)));
    // A binary tree of the allowed numbers instead of a linear scan (libseccomp >= 2.5).
    if (int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2); rc < 0)
        die("binary-tree optimisation: " + std::string(std::strerror(-rc)));
    for (auto const& rule : rules_for(kind)) {
        scmp_arg_cmp cmps[6];
        unsigned count = 0;
        for (auto const& check : rule.checks) {
            if (count >= 6 || check.index >= 6)
                die(name + ": more than 6 argument checks or an argument index above 5");
            cmps[count++] = to_scmp(check);
        }
        if (int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, rule.nr, count, cmps); rc < 0)
            die(name + ": rule for system call " + std::to_string(rule.nr) + ": " + std::strerror(-rc));
    }
    // Export through a memfd: seccomp_export_bpf() writes to a file descriptor (libseccomp 2.5.4
    // has no in-memory export yet).
    int fd = ::memfd_create("seccomp-bpf", MFD_CLOEXEC);
    if (fd < 0)
        die("memfd_create: " + std::string(std::strerror(errno)));
    if (int rc = seccomp_export_bpf(ctx, fd); rc < 0)
        die(name + ": exporting the BPF: " + std::strerror(-rc));
    seccomp_release(ctx);
    off_t const size = ::lseek(fd, 0, SEEK_END);
    if (size <= 0 || size % sizeof(sock_filter) != 0)
        die(name + ": exported BPF has a size of " + std::to_string(size) + " bytes");
    std::vector<sock_filter> program(static_cast<std::size_t>(size) / sizeof(sock_filter));
    if (::pread(fd, program.data(), static_cast<std::size_t>(size), 0) != size)
        die(name + ": reading the exported BPF back");
    ::close(fd);
    // struct sock_fprog counts instructions in an unsigned short; the kernel takes at most
    // BPF_MAXINSNS (include/uapi/linux/bpf_common.h) per program.
    if (program.size() > BPF_MAXINSNS)
        die(name + ": " + std::to_string(program.size()) + " BPF instructions, more than BPF_MAXINSNS");
    return program;
}

std::string identifier(ThreadKind kind)
{
    std::string id = "PROGRAM_";
    for (char c : thread_kind_name(kind))
        id += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : (c >= '0' && c <= '9' ? c : '_');
    return id;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 2)
        die("usage: seccomp_compiler OUTPUT.cpp");
    std::string out;
    out += "// Generated at build time by vmm/sandbox/seccomp_compiler.cpp from vmm/sandbox/seccomp_rules.cpp\n"
           "// with libseccomp " + std::to_string(seccomp_version()->major) + "." + std::to_string(seccomp_version()->minor)
        + "." + std::to_string(seccomp_version()->micro) + ": do not edit.\n"
          "#include \"vmm/sandbox/seccomp_programs.hpp\"\n\n"
          "namespace vmm::sandbox {\n\nnamespace {\n\n";
    // One program per thread type, indexed by the ThreadKind value.
    std::size_t const kinds = std::size(ALL_THREAD_KINDS);
    std::vector<std::string> ids(kinds);
    for (ThreadKind kind : ALL_THREAD_KINDS) {
        auto const index = static_cast<std::size_t>(kind);
        if (index >= kinds || !ids[index].empty())
            die("ThreadKind values must be 0..N-1 (thread_kind.hpp ALL_THREAD_KINDS)");
        ids[index] = identifier(kind);
        auto const program = compile(kind);
        out += "// " + std::string(thread_kind_name(kind)) + ": " + std::to_string(rules_for(kind).size()) + " rules, "
            + std::to_string(program.size()) + " instructions.\n";
        out += "constexpr sock_filter " + ids[index] + "[] = {\n";
        char line[96];
        for (auto const& insn : program) {
            std::snprintf(line, sizeof line, "    { 0x%04x, %u, %u, 0x%08x },\n", insn.code, insn.jt, insn.jf, insn.k);
            out += line;
        }
        out += "};\n\n";
    }
    out += "constexpr std::span<sock_filter const> PROGRAMS[] = {";
    for (auto const& id : ids)
        out += " " + id + ",";
    out += " };\nstatic_assert(std::size(PROGRAMS) == std::size(ALL_THREAD_KINDS));\n\n";
    // The names as one string of NUL-terminated names and an offset per number (no pointers:
    // no relocations, read-only data).
    std::string blob;
    std::vector<unsigned> offsets(NAME_TABLE_SIZE, 0xffff);
    for (int nr = 0; nr < NAME_TABLE_SIZE; ++nr) {
        char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        if (!name)
            continue;
        offsets[static_cast<std::size_t>(nr)] = static_cast<unsigned>(blob.size());
        blob += name;
        blob += '\0';
        std::free(name);
    }
    if (blob.size() >= 0xffff)
        die("system call names exceed 64 KiB");
    out += "static_assert(SYSCALL_NAME_TABLE_SIZE == " + std::to_string(NAME_TABLE_SIZE) + ");\n";
    out += "constexpr char NAMES[] =\n    \"";
    std::size_t column = 0;
    for (char c : blob) {
        if (c == '\0') {
            out += "\\0";
            if (++column % 8 == 0)
                out += "\"\n    \"";
        } else {
            out += c;
        }
    }
    out += "\";\n";
    out += "// Offset of each number's name in NAMES; 0xffff: no such system call.\n";
    out += "constexpr std::uint16_t NAME_OFFSETS[SYSCALL_NAME_TABLE_SIZE] = {";
    for (int nr = 0; nr < NAME_TABLE_SIZE; ++nr)
        out += (nr % 12 == 0 ? "\n    " : " ") + std::to_string(offsets[static_cast<std::size_t>(nr)]) + ",";
    out += "\n};\n\n} // namespace\n\n"
           "std::span<sock_filter const> filter_program(ThreadKind kind)\n{\n"
           "    return PROGRAMS[static_cast<std::size_t>(kind)];\n}\n\n"
           "char const* syscall_name(int nr)\n{\n"
           "    if (nr < 0 || nr >= SYSCALL_NAME_TABLE_SIZE || NAME_OFFSETS[nr] == 0xffff)\n"
           "        return nullptr;\n"
           "    return NAMES + NAME_OFFSETS[nr];\n}\n\n"
           "} // namespace vmm::sandbox\n";
    FILE* file = std::fopen(argv[1], "w");
    if (!file || std::fwrite(out.data(), 1, out.size(), file) != out.size() || std::fclose(file) != 0)
        die(std::string("writing ") + argv[1]);
    return 0;
}

// SPDX-License-Identifier: MIT
// The allow-lists. Found by running, not guessing: `strace -f -ff` of the e2e suite (a Linux
// guest with Hyper-V, VMBus, DM balloon and hot-add, ICs, hv_sock and REST clients, rebooting)
// gave each thread's calls; SECURITY.md has the table. Each call is here because of a named
// user; anything else ends the process (seccomp_filter.cpp). glibc 2.36 (static) is what
// issues many of them: clone3 and rseq/set_robust_list for threads, mmap/mprotect/munmap/
// madvise from malloc arenas and thread stacks, newfstatat for fstat, futex for every lock.
#include "vmm/sandbox/seccomp_rules.hpp"

#include <asm/ioctls.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/epoll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <initializer_list>

#include "vmm/kvm/kvm_abi.hpp"

namespace vmm::sandbox {

namespace {

using Rules = std::vector<SyscallRule>;

// The arguments compared here are C ints or the kernel's `unsigned int cmd` of ioctl: only the low
// 32 bits are meaningful (x86-64 leaves the upper half of a 32-bit argument register undefined).
ArgCheck eq(unsigned index, std::uint64_t value) { return ArgCheck { index, ArgCheck::Op::MaskedEq, 0xffff'ffff, value }; }
ArgCheck ne(unsigned index, std::uint64_t value) { return ArgCheck { index, ArgCheck::Op::Ne, 0, value }; }
// (arg & mask) == 0: none of `bits` set.
ArgCheck none_of(unsigned index, std::uint64_t bits) { return ArgCheck { index, ArgCheck::Op::MaskedEq, bits, 0 }; }

void any(Rules& rules, std::initializer_list<int> nrs)
{
    for (int nr : nrs)
        rules.push_back(SyscallRule { nr, {} });
}
// One rule per allowed value of argument `index`.
void one_of(Rules& rules, int nr, unsigned index, std::initializer_list<std::uint64_t> values)
{
    for (auto value : values)
        rules.push_back(SyscallRule { nr, { eq(index, value) } });
}

// Every thread: locks, memory from malloc and the C++ runtime, logging, thread exit, signals
// (the vCPU kick, the SIGSYS reporter's own kill), clocks without the vDSO.
void common(Rules& rules)
{
    any(rules, { SYS_futex, SYS_write, SYS_writev, SYS_read, SYS_close, SYS_exit, SYS_exit_group, SYS_munmap,
                   SYS_brk, SYS_rt_sigreturn, SYS_rt_sigprocmask, SYS_restart_syscall, SYS_sched_yield,
                   SYS_clock_gettime, SYS_clock_nanosleep, SYS_nanosleep, SYS_gettid, SYS_getpid, SYS_tgkill,
                   SYS_newfstatat, SYS_fstat, SYS_mremap, SYS_getrandom,
                   // vmm/sandbox/least_privilege.cpp: every thread checks it holds no capabilities.
                   SYS_capget });
    // Never executable memory: a guest-driven bug cannot map or make code (mmap/mprotect arg 2).
    rules.push_back(SyscallRule { SYS_mmap, { none_of(2, PROT_EXEC) } });
    rules.push_back(SyscallRule { SYS_mprotect, { none_of(2, PROT_EXEC) } });
    // malloc trimming and thread stacks (glibc advise_stack_range): MADV_DONTNEED; guest RAM
    // discard (vmm/guest_ram_backends.cpp, the hot-add window): MADV_DONTNEED too.
    one_of(rules, SYS_madvise, 2, { MADV_DONTNEED });
    // Any handler but SIGSYS's: the reporter (seccomp_filter.cpp) cannot be replaced (abort()
    // resets SIGABRT through here).
    rules.push_back(SyscallRule { SYS_rt_sigaction, { ne(0, SIGSYS) } });
    // Naming oneself (pthread_setname_np on the calling thread) and nothing else of prctl.
    one_of(rules, SYS_prctl, 0, { PR_SET_NAME, PR_GET_NAME });
    // fcntl: only the descriptor/status flags (asio, O_NONBLOCK, FD_CLOEXEC).
    one_of(rules, SYS_fcntl, 1, { F_GETFD, F_SETFD, F_GETFL, F_SETFL });
}

// VMBus device work (the DM engine, ICs, hv_sock, under the VMBus glue lock) runs on whichever
// thread brought its input: a vCPU (guest messages), the API thread (PUT .../target,
// /vm/shutdown run the engine there: vmm/dm_api_backend.cpp with_engine; PUT /net/{nic}/link
// queues netvsc's status indication: vmm/backends/net_backend.cpp set_link) and the loop (timers).
// It signals the guest (SynIC: KVM_SIGNAL_MSI), adds and removes hot-add memslots
// (vmm/guest_ram_backends.cpp: KVM_SET_USER_MEMORY_REGION, mprotect RW/none, MADV_DONTNEED),
// discards boot RAM (mem/boot_ram.cpp: fallocate PUNCH_HOLE|KEEP_SIZE only), posts to the loop
// (eventfd write) and arms its timers (timerfd_settime), and publishes API events: asio::post
// wakes the API thread by re-arming its reactor's interrupter with epoll_ctl(EPOLL_CTL_MOD)
// (boost/asio/detail/impl/epoll_reactor.ipp epoll_reactor::interrupt).
void device_work(Rules& rules)
{
    one_of(rules, SYS_ioctl, 1, { KVM_SIGNAL_MSI, KVM_SET_USER_MEMORY_REGION });
    one_of(rules, SYS_fallocate, 1, { 0x02 | 0x01 }); // FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
    any(rules, { SYS_timerfd_settime });
    one_of(rules, SYS_epoll_ctl, 1, { EPOLL_CTL_MOD });
}

// KVM_RUN and the vCPU ioctls a running vCPU issues (vmm/vcpu_thread.cpp: hypercalls read and
// write registers), the UART's interrupt line, and device work.
void vcpu_own(Rules& rules)
{
    common(rules);
    one_of(rules, SYS_ioctl, 1, { KVM_RUN, KVM_GET_REGS, KVM_SET_REGS, KVM_GET_SREGS, KVM_SET_SREGS, KVM_IRQ_LINE });
    // PCI doorbells (devices/pci/pci_root.cpp sync_ioevents): a guest enabling or moving a BAR,
    // or an NVMe controller turning shadow doorbells on or off, (un)registers their eventfds.
    one_of(rules, SYS_ioctl, 1, { KVM_IOEVENTFD });
    device_work(rules);
}

void timers_own(Rules& rules)
{
    common(rules);
    // Direct-mode STIMER delivery and SynIC interrupts (vmm/hyperv/timer_thread.cpp).
    one_of(rules, SYS_ioctl, 1, { KVM_SIGNAL_MSI, KVM_IRQ_LINE });
    any(rules, { SYS_timerfd_settime });
}

void api_own(Rules& rules)
{
    common(rules);
    // Boost.Asio's reactor: epoll, its eventfd interrupter and timerfd, non-blocking sockets
    // (one buffer: recv/send, i.e. recvfrom/sendto; several: recvmsg/sendmsg; the event stream
    // sends with sendto: found by e2e-ic-shutdown).
    any(rules, { SYS_epoll_wait, SYS_epoll_ctl, SYS_timerfd_settime, SYS_accept, SYS_recvfrom, SYS_recvmsg, SYS_sendto,
                   SYS_sendmsg, SYS_shutdown });
    one_of(rules, SYS_ioctl, 1, { FIONBIO });
    device_work(rules);
    // GET /api/v1/memory's host figures (vmm/host_memory_use.cpp: /proc/self/smaps, read-only).
    rules.push_back(SyscallRule { SYS_openat, { none_of(2, O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND) } });
    // Sockets are only accepted (the listener was bound before), never created or connected.
}

// The TAP pump (vmm/backends/net_backend.cpp run()): epoll over the TAPs and its wake eventfd,
// EPOLLIN switched on and off per TAP (EPOLL_CTL_MOD), frames read and written (common set), and
// netvsc device work under the VMBus glue lock (SynIC signals, posts to the loop). The TAPs were
// opened and configured (TUNSETIFF) on the main thread before any filter.
void net_own(Rules& rules)
{
    common(rules);
    any(rules, { SYS_epoll_wait });
    device_work(rules);
}

// A disk's I/O thread (vmm/backends/image_file_backend.cpp run()): one io_uring_enter submits
// and waits for everything (the image's reads, writes, fdatasync and fallocate run inside
// io_uring, as do the reads of its wake and doorbell eventfds); submit() from the engine on
// this thread writes the wake eventfd (common set). The NVMe engine it drives raises MSI-X
// vectors (vmm/pci_glue.cpp KvmMsiSink: KVM_SIGNAL_MSI). strace -f of vmm_unit's
// NvmePciFunction.ShadowDoorbells* (kicks, reads, completions on nvme-io) shows io_uring_enter,
// write, mmap/mprotect/munmap/madvise (malloc), prctl(PR_SET_NAME) and exit; the rest of its
// calls (rseq, set_robust_list) come before its filter, under the loop's.
void nvme_io_own(Rules& rules)
{
    common(rules);
    any(rules, { SYS_io_uring_enter });
    one_of(rules, SYS_ioctl, 1, { KVM_SIGNAL_MSI });
}

void loop_own(Rules& rules)
{
    common(rules);
    any(rules, { SYS_epoll_wait, SYS_epoll_ctl, SYS_timerfd_create, SYS_timerfd_settime, SYS_eventfd2, SYS_pread64,
                   SYS_ftruncate, SYS_memfd_create,
                   // hv_sock connections (recv/send/shutdown/accept4/connect) and the sockets'
                   // files at exit (unlink: the API's and the vsock listener's).
                   SYS_recvfrom, SYS_sendto, SYS_shutdown, SYS_connect, SYS_accept4, SYS_unlink,
                   // Starting the vCPU and timer threads of each boot (std::thread: glibc 2.36
                   // clone3; clone's flags are in memory, not filterable), and what a new thread
                   // does first.
                   SYS_clone3, SYS_set_robust_list, SYS_rseq,
                   // Each boot's disk back-ends (vmm/backends/image_file_backend.cpp start()).
                   SYS_io_uring_setup });
    // Children stack their own filter on top of this one (seccomp_filter.cpp load_filter: no
    // new privileges, then seccomp(SECCOMP_SET_MODE_FILTER)).
    one_of(rules, SYS_seccomp, 0, { SECCOMP_SET_MODE_FILTER });
    one_of(rules, SYS_prctl, 0, { PR_SET_NO_NEW_PRIVS });
    // Kernel and initrd of every boot (vmm/guest_images.cpp): read-only opens, and their bytes
    // copied into the guest RAM memfd at the right offset (base/read_only_file.cpp copy_to_file).
    rules.push_back(SyscallRule { SYS_openat, { none_of(2, O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND) } });
    any(rules, { SYS_lseek, SYS_sendfile });
    // hv_sock host side (vmm/backends/hvsock_backend.cpp): Unix sockets only.
    rules.push_back(SyscallRule { SYS_socket, { eq(0, AF_UNIX) } });
    // Building a Machine on every boot: /dev/kvm, VM and vCPU set-up ioctls.
    for (std::uint64_t request : { std::uint64_t { KVM_GET_API_VERSION }, std::uint64_t { KVM_CHECK_EXTENSION },
             std::uint64_t { KVM_GET_VCPU_MMAP_SIZE }, std::uint64_t { KVM_CREATE_VM }, kvm::abi::GET_SUPPORTED_CPUID,
             std::uint64_t { KVM_SET_TSS_ADDR }, std::uint64_t { KVM_SET_IDENTITY_MAP_ADDR },
             std::uint64_t { KVM_CREATE_IRQCHIP }, std::uint64_t { KVM_CREATE_PIT2 }, std::uint64_t { KVM_ENABLE_CAP },
             std::uint64_t { KVM_X86_SET_MSR_FILTER }, std::uint64_t { KVM_CREATE_VCPU }, kvm::abi::SET_CPUID2,
             kvm::abi::SET_MSRS, kvm::abi::GET_MSRS, std::uint64_t { KVM_SET_MP_STATE }, std::uint64_t { KVM_GET_MP_STATE },
             std::uint64_t { KVM_GET_TSC_KHZ }, std::uint64_t { KVM_GET_DEVICE_ATTR } })
        rules.push_back(SyscallRule { SYS_ioctl, { eq(1, request) } });
}

} // namespace

std::vector<SyscallRule> own_rules(ThreadKind kind)
{
    Rules rules;
    switch (kind) {
    case ThreadKind::EventLoop: loop_own(rules); break;
    case ThreadKind::Vcpu: vcpu_own(rules); break;
    case ThreadKind::Api: api_own(rules); break;
    case ThreadKind::HvTimers: timers_own(rules); break;
    case ThreadKind::Net: net_own(rules); break;
    case ThreadKind::NvmeIo: nvme_io_own(rules); break;
    }
    return rules;
}

std::vector<SyscallRule> rules_for(ThreadKind kind)
{
    Rules rules = own_rules(kind);
    if (kind == ThreadKind::EventLoop)
        for (ThreadKind child : { ThreadKind::Vcpu, ThreadKind::HvTimers, ThreadKind::NvmeIo })
            for (auto& rule : own_rules(child))
                rules.push_back(std::move(rule));
#ifdef MICROVMM_SANITIZER_BUILD
    for (auto& rule : sanitizer_rules())
        rules.push_back(std::move(rule));
#endif
    return rules;
}

std::vector<SyscallRule> sanitizer_rules()
{
    Rules rules;
    // Found by running the sanitizer builds under strace (make check SANITIZE=thread and
    // address,undefined: tiny-poweroff, stress, api-tiny, vmbus-1vcpu). GCC's runtimes
    // (libsanitizer) map shadow memory with MAP_FIXED (mmap: common set, still no PROT_EXEC),
    // mark it MADV_NOHUGEPAGE/MADV_DONTDUMP, read /proc/self/maps with open(2) when a thread
    // starts or a report is printed, symbolize in-process (libbacktrace reads /proc/self/exe),
    // query stack limits and CPU sets, and switch to an alternate signal stack.
    one_of(rules, SYS_madvise, 2, { MADV_NOHUGEPAGE, MADV_HUGEPAGE, MADV_DONTDUMP, MADV_DODUMP, MADV_FREE });
    rules.push_back(SyscallRule { SYS_open, { none_of(1, O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND) } });
    rules.push_back(SyscallRule { SYS_openat, { none_of(2, O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND) } });
    // prlimit64 reads only (new limit NULL).
    rules.push_back(SyscallRule { SYS_prlimit64, { ArgCheck { 2, ArgCheck::Op::Eq, 0, 0 } } });
    any(rules, { SYS_sigaltstack, SYS_gettimeofday, SYS_stat, SYS_lstat, SYS_access, SYS_readlink, SYS_readlinkat,
                   SYS_getrlimit, SYS_sched_getaffinity, SYS_lseek, SYS_pread64, SYS_uname, SYS_getppid, SYS_getuid,
                   SYS_pipe2, SYS_wait4 });
#if defined(__SANITIZE_ADDRESS__)
    // LeakSanitizer's check at exit (ASAN_OPTIONS detect_leaks=1, on the main thread under the
    // loop's filter) stops the world: a tracer clone (exactly these flags) that lists
    // /proc/self/task, ptrace-attaches each thread to read its registers and detaches
    // (libsanitizer sanitizer_stoptheworld_linux_libcdep.cpp StopTheWorld, TracerThread).
    one_of(rules, SYS_clone, 0, { CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_UNTRACED });
    one_of(rules, SYS_prctl, 0, { PR_SET_PTRACER, PR_SET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE });
    any(rules, { SYS_ptrace, SYS_getdents64, SYS_kill });
#endif
    return rules;
}

} // namespace vmm::sandbox

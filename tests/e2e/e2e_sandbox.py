#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# The sandbox of the running VMM (SECURITY.md): with a tiny idling PVH kernel, Hyper-V (so the
# hv-timers thread exists), the REST socket with a client connected, the hv_sock listener, a
# [[disk]] (nvme-io thread) and, as root with /dev/net/tun, a [[net]] (net thread).
#   sandbox: every thread has its seccomp filter (the vCPU, hv-timers and nvme-io threads two: the loop's,
#            inherited, and their own), no capability (effective, permitted, bounding), no new
#            privileges; every fd is close-on-exec; the API socket is 0600.
#   seccomp-hook-<thread>: run with build/microvmm-seccomp-hook (the armed test hook); that thread issues a call
#            outside its filter (MICROVMM_SECCOMP_TEST_VIOLATE): microvmm dies of SIGSYS and its
#            last log line names the thread type and the call.
import os
import re
import resource
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

from e2e import SKIP, Run, fail, run_cases, tiny_kernel, write_config

THREADS = ("loop", "vcpu", "api", "hv-timers", "nvme-io", "net")

NET_FILTERS = 1


def can_make_tap() -> bool:
    """A [[net]] TAP that microvmm creates needs root and /dev/net/tun."""
    return os.geteuid() == 0 and os.path.exists("/dev/net/tun")


def sandboxed_config(directory: Path, kernel: Path) -> Path:
    """Every thread type: Hyper-V (hv-timers), the REST socket, hv_sock, a [[disk]] (its
    nvme-io thread) and, where a TAP can be made, a [[net]] (the net thread; microvmm creates
    the TAP and the kernel removes it when microvmm exits)."""
    image = directory / "disk.img"
    with open(image, "wb") as f:
        f.truncate(1 << 20)
    extra = (f'[hyperv]\nenabled = true\n[api]\nsocket = "{directory / "api.sock"}"\n'
             f'[vsock]\nuds_path = "{directory / "v.sock"}"\n'
             f'[[disk]]\npath = "{image}"\nserial = "SBX"\n')
    if can_make_tap():
        extra += f'[[net]]\ntap = "mvsbx{os.getpid() % 100000}"\n'
    return write_config(directory, {"vcpus": 2, "memory_mib": 64}, {"kernel": kernel}, extra)


def status_fields(path: Path) -> dict[str, str]:
    fields = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def sandbox(args) -> None:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        kernel = tiny_kernel(directory, "TINY: idle", "idle")
        run = Run(args.microvmm, sandboxed_config(directory, kernel), 60)
        try:
            if not run.wait_for(r"^TINY: idle$"):
                fail("the tiny kernel did not start")
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(str(directory / "api.sock"))
            client.sendall(b"GET /api/v1/vm HTTP/1.1\r\nHost: x\r\n\r\n")
            if not client.recv(65536).startswith(b"HTTP/1.1 200"):
                fail("GET /api/v1/vm did not answer 200 under seccomp")
            pid = run.process.pid
            # The loop's children (per boot) stack its filter under their own; API and net start
            # before the loop filters itself.
            expected_filters = {"main": 1, "api": 1, "vcpu0": 2, "vcpu1": 2, "hv-timers": 2, "nvme-io": 2}
            if can_make_tap():
                expected_filters["net"] = NET_FILTERS
            # A thread names itself and loads its filter first thing, but on a loaded host it may
            # not have run yet when the guest already prints: wait until each has (10 s at most).
            deadline = time.monotonic() + 10
            while True:
                names = {}
                for task in Path(f"/proc/{pid}/task").iterdir():
                    fields = status_fields(task / "status")
                    names["main" if int(task.name) == pid else fields["Name"]] = fields
                if time.monotonic() > deadline or all(
                        int(names.get(t, {}).get("Seccomp_filters", -1)) == n for t, n in expected_filters.items()):
                    break
                time.sleep(0.1)
            print("threads:", {n: (f["Seccomp"], f.get("Seccomp_filters"), f["CapEff"], f["CapBnd"]) for n, f in names.items()})
            # Other threads: KVM's NX huge page worker (a kernel worker in our thread group) and,
            # in a ThreadSanitizer build, its runtime's background thread, started before main().
            sanitizer = "libtsan" in Path(f"/proc/{pid}/maps").read_text()
            for thread, fields in names.items():
                if thread not in expected_filters and thread != "kvm-nx-lpage-re" and not sanitizer:
                    fail(f"unexpected thread {thread}: a new thread type must enter the sandbox (SECURITY.md)")
            for thread, filters in expected_filters.items():
                fields = names.get(thread)
                if fields is None:
                    fail(f"no thread named {thread}: {sorted(names)}")
                if fields["Seccomp"] != "2" or int(fields.get("Seccomp_filters", filters)) != filters:
                    fail(f"{thread}: Seccomp {fields['Seccomp']}, {fields.get('Seccomp_filters')} filters, wanted mode 2 with {filters}")
                if fields["NoNewPrivs"] != "1":
                    fail(f"{thread}: NoNewPrivs {fields['NoNewPrivs']}")
                for capability in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
                    if int(fields[capability], 16) != 0:
                        fail(f"{thread}: {capability} {fields[capability]} after start-up")
                if os.geteuid() == 0 and int(fields["CapBnd"], 16) != 0:
                    fail(f"{thread}: bounding set {fields['CapBnd']} not emptied")
            fds = list(Path(f"/proc/{pid}/fdinfo").iterdir())
            for info in fds:
                flags = int(status_fields(info)["flags"], 8)
                target = os.readlink(f"/proc/{pid}/fd/{info.name}") if os.path.exists(f"/proc/{pid}/fd/{info.name}") else "?"
                if int(info.name) > 2 and not flags & 0o2000000:  # O_CLOEXEC
                    fail(f"fd {info.name} ({target}) is not close-on-exec")
            print(f"{len(fds)} fds, all above 2 close-on-exec")
            mode = (directory / "api.sock").stat().st_mode & 0o777
            if mode != 0o600:
                fail(f"API socket mode {mode:o}, wanted 600")
            client.close()
        finally:
            run.process.send_signal(signal.SIGTERM)
        status, log = run.finish()
        if status != 128 + signal.SIGTERM:
            fail(f"exit status {status} after SIGTERM, wanted 143")
        if "seccomp" in log and "forbidden" in log:
            fail("a thread hit its seccomp filter")


def seccomp_hook(thread: str):
    def case(args) -> None:
        if thread == "net" and not can_make_tap():
            print("SKIP: the net thread needs a TAP (root and /dev/net/tun)")
            sys.exit(SKIP)
        # SIGSYS dumps core by default: not from a test.
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.environ["MICROVMM_SECCOMP_TEST_VIOLATE"] = thread
        with tempfile.TemporaryDirectory() as name:
            directory = Path(name)
            kernel = tiny_kernel(directory, "TINY: idle", "idle")
            run = Run(args.microvmm, sandboxed_config(directory, kernel), 60)
            began = time.monotonic()
            status, log = run.finish()
            if status != -signal.SIGSYS:
                fail(f"exit status {status}, wanted death by SIGSYS ({-signal.SIGSYS}); is this build/microvmm-seccomp-hook?")
            wanted = rf"microvmm: seccomp: {re.escape(thread)} thread made a forbidden system call: personality \(135"
            if not re.search(wanted, log):
                fail(f"no log line naming the {thread} thread and personality: {log!r}")
            print(f"{thread}: SIGSYS after {time.monotonic() - began:.2f} s")
    return case


CASES = {"sandbox": sandbox}
CASES.update({f"seccomp-hook-{thread}": seccomp_hook(thread) for thread in THREADS})

if __name__ == "__main__":
    run_cases(CASES, default_timeout=120)

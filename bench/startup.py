#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# VMM start-up, footprint and idle cost (BENCHMARKS.md §5), stdlib only. Prints one report in
# the format of bench/report.hpp on stdout. Two machines: "tiny" (a 60-byte PVH kernel that
# halts, 1 vCPU, 128 MiB, no Hyper-V/DM/API) and "demo" (configs/demo.toml: 2 vCPUs, 512 MiB up
# to 2 GiB, Hyper-V, DM, REST API; with the test guest's vmlinux and initramfs).
#  * startup.<machine>.first_run_ms: fork+exec of build/microvmm -> its "first KVM_RUN" log line
#    read from stderr (logged on vCPU 0 right before the first KVM_RUN, vmm/runner.cpp);
#    internal_ms, kvm_ms (+ per-ioctl kind) and vmm_own_ms from the VMM's "startup trace" debug
#    line (base/startup_trace.hpp: main() -> first KVM_RUN, minus time inside KVM ioctls).
#    startup_ms and startup_vmm_own_ms are the demo machine's.
#  * rss.<machine>_kib: RssAnon + RssFile of /proc/PID/status RSS_DELAY_S after the first
#    KVM_RUN, i.e. the VMM without guest memory (guest RAM is a shared memfd: RssShmem).
#    rss_kib is the demo machine's.
#  * idle.<machine>.*: voluntary + involuntary context switches of the VMM's threads over
#    --idle-seconds once the guest is idle, no client connected, in three groups: the VMM's own
#    threads (event loop, API, net, nvme-io: what the VMM itself wakes for), the hv-timers thread
#    (it wakes only to deliver a synthetic-timer expiry the guest programmed) and the vCPU
#    threads (guest work, and preempted while running it). With the API: the guest's own
#    timer rate from /metrics (STIMER programmings and expirations per second, read just
#    outside the window).
#    idle_wakeups_per_s is the demo machine's own threads (hv-timers not included).
#  * boot_to_init: microvmm start -> the guest's "INIT: up" serial line, next to QEMU microvm
#    (guest/qemu-boot.sh) on the same kernel, initramfs and command line.
import argparse
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

FIRST_RUN = re.compile(r"first KVM_RUN (\d+) ms after start")
TRACE = re.compile(r"startup trace: (\{.*\})")
HERE = os.path.dirname(os.path.abspath(__file__))
INIT_MARKER = "INIT: up"
RSS_DELAY_S = 0.5


def log(text):
    print("startup: " + text, file=sys.stderr, flush=True)


def write_config(directory, kernel, initrd, cmdline, memory_mib):
    path = os.path.join(directory, "bench.toml")
    with open(path, "w") as f:
        f.write("[machine]\nvcpus = 1\nmemory_mib = %d\non_reboot = \"exit\"\n" % memory_mib)
        f.write("[boot]\nkernel = %s\ninitrd = %s\ncmdline = %s\n"
                % (json.dumps(kernel), json.dumps(initrd), json.dumps(cmdline)))
    return path


def write_tiny_config(directory, kernel):
    path = os.path.join(directory, "tiny.toml")
    with open(path, "w") as f:
        f.write("[machine]\nvcpus = 1\nmemory_mib = 128\non_reboot = \"exit\"\n")
        f.write("[boot]\nkernel = %s\ncmdline = \"console=ttyS0\"\n" % json.dumps(kernel))
    return path


def write_demo_config(directory, demo_toml, kernel, initrd, cmdline):
    """configs/demo.toml with absolute guest paths, its own API socket and `cmdline`."""
    out = []
    section = None
    with open(demo_toml) as f:
        for line in f:
            stripped = line.strip()
            if stripped.startswith("["):
                section = stripped
            key = stripped.split("=")[0].strip()
            if section == "[boot]" and key == "kernel":
                line = "kernel = %s\n" % json.dumps(kernel)
            elif section == "[boot]" and key == "initrd":
                line = ("initrd = %s\n" % json.dumps(initrd)) if initrd else ""
            elif section == "[boot]" and key == "cmdline":
                line = "cmdline = %s\n" % json.dumps(cmdline)
            elif section == "[api]" and key == "socket":
                line = "socket = %s\n" % json.dumps(os.path.join(directory, "api.sock"))
            out.append(line)
    path = os.path.join(directory, "demo.toml")
    with open(path, "w") as f:
        f.write("".join(out))
    return path


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def read_lines_until(proc, stream, pattern, timeout_s, start):
    """Reads `stream` line by line until `pattern` matches; returns (seconds since start, match)."""
    deadline = start + timeout_s
    buffer = b""
    fd = stream.fileno()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None, None
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        now = time.monotonic()
        if not chunk:
            return None, None
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            text = line.decode(errors="replace").rstrip("\r")
            match = pattern(text)
            if match:
                return now - start, match


def status_kib(pid):
    values = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                values[key] = int(rest.split()[0])
    return values


JAILED_PID = re.compile(r"microvmm jail: vm \S+ pid (\d+)")


def startup_runs(microvmm, config, runs, jail_dir=None, extra_args=()):
    """Per run: external ms, the VMM's startup trace (dict), RssAnon+RssFile, RssShmem. With
    `jail_dir`, through `microvmm jail` (uid 10017, new namespaces, cgroup; docs/jailer.md):
    the times include the jailer's work, the RSS is the jailed VMM's."""
    external, traces, rss, shmem = [], [], [], []
    for run in range(runs):
        command = [microvmm, "--config", config, "--log-level", "debug", *extra_args]
        if jail_dir:
            command = [microvmm, "jail", "--id", "bench-%d-%d" % (os.getpid(), run), "--uid", "10017", "--gid",
                       "10017", "--config", config, "--chroot-base-dir", jail_dir, "--log-level", "debug"]
        start = time.monotonic()
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            # The first-run line and the trace right after it may arrive in one read.
            first_run = []
            vmm_pid = [proc.pid]

            def trace_after_first_run(text):
                if jail_dir and JAILED_PID.search(text):
                    vmm_pid[0] = int(JAILED_PID.search(text).group(1))
                if FIRST_RUN.search(text) and not first_run:
                    first_run.append(time.monotonic() - start)
                return TRACE.search(text)

            _, match = read_lines_until(proc, proc.stderr, trace_after_first_run, 30, start)
            if not first_run:
                raise RuntimeError("microvmm never logged its first KVM_RUN (exit status %s)" % proc.poll())
            if match is None:
                raise RuntimeError("microvmm logged no startup trace")
            seconds = first_run[0]
            external.append(seconds * 1000.0)
            traces.append(json.loads(match.group(1)))
            time.sleep(RSS_DELAY_S)
            status = status_kib(vmm_pid[0])
            rss.append(float(status["RssAnon"] + status["RssFile"]))
            shmem.append(float(status["RssShmem"]))
        finally:
            stop(proc)
    return external, traces, rss, shmem


def context_switches(pid):
    """{tid: (name, voluntary, nonvoluntary)} for every thread of `pid`."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                name = f.read().strip()
            counts = {}
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        counts[line.split(":")[0]] = int(line.split()[1])
            out[tid] = (name, counts["voluntary_ctxt_switches"], counts["nonvoluntary_ctxt_switches"])
        except (OSError, KeyError):
            pass  # The thread ended meanwhile.
    return out


def thread_group(name):
    """vcpu: the vCPU threads; timers: hv-timers (woken only for a guest-programmed expiry);
    kvm: KVM's own worker in the process (kvm-nx-lpage-recovery); own: everything else (main =
    event loop, api, net, nvme-io)."""
    if name.startswith("vcpu"):
        return "vcpu"
    if name.startswith("kvm-"):
        return "kvm"
    return "timers" if name == "hv-timers" else "own"


STIMER_METRICS = ("microvmm_hyperv_stimer_programmed_total", "microvmm_hyperv_stimer_expirations_total")


def stimer_counters(sock):
    """The synthetic-timer counters from /metrics over the API socket (None without one)."""
    if not sock or not os.path.exists(sock):
        return None
    import socket as socket_module
    try:
        with socket_module.socket(socket_module.AF_UNIX, socket_module.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(sock)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            body = b""
            while chunk := s.recv(65536):
                body += chunk
    except OSError:
        return None
    values = {}
    for line in body.decode(errors="replace").splitlines():
        name, _, value = line.partition(" ")
        if name in STIMER_METRICS:
            values[name] = int(value)
    return values if len(values) == len(STIMER_METRICS) else None


def drain(stream):
    """Reads the guest's serial output (the VMM's stdout) on a thread so the VMM never blocks
    on a full pipe."""
    import threading
    threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()


def idle_wakeups(microvmm, config, ready_pattern, ready_timeout_s, settle_s, seconds, sock=None):
    """Starts the VMM, waits for `ready_pattern` on its serial output (stdout), lets it settle,
    then counts context switches per thread over `seconds`. Returns {group: (voluntary/s,
    nonvoluntary/s)}, per-thread detail and the guest's timer rates from /metrics (per second,
    or None)."""
    proc = subprocess.Popen([microvmm, "--config", config, "--log-level", "warn"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        start = time.monotonic()
        waited, _ = read_lines_until(proc, proc.stdout, ready_pattern, ready_timeout_s, start)
        if waited is None:
            raise RuntimeError("guest not idle within %d s (exit status %s)" % (ready_timeout_s, proc.poll()))
        drain(proc.stdout)
        time.sleep(settle_s)
        metrics_before = (time.monotonic(), stimer_counters(sock))
        # Let the shell command's and the API request's wake-ups end first: Asio leaves its
        # timerfd armed for a cancelled timer, so the API thread wakes once more when the
        # request's 10 s timeout would have run out (ApiServerConfig::request_timeout).
        time.sleep(11 if sock else 2)
        before = context_switches(proc.pid)
        t0 = time.monotonic()
        time.sleep(seconds)
        after = context_switches(proc.pid)
        window = time.monotonic() - t0
        metrics_after = (time.monotonic(), stimer_counters(sock))
        groups = {"own": [0, 0], "timers": [0, 0], "vcpu": [0, 0], "kvm": [0, 0]}
        detail = {}
        for tid, (name, voluntary, nonvoluntary) in after.items():
            _, v0, n0 = before.get(tid, (name, 0, 0))
            detail["%s/%s" % (name, tid)] = [voluntary - v0, nonvoluntary - n0]
            group = groups[thread_group(name)]
            group[0] += voluntary - v0
            group[1] += nonvoluntary - n0
        rates = {group: (v / window, n / window) for group, (v, n) in groups.items()}
        stimer = None
        if metrics_before[1] and metrics_after[1]:
            took = metrics_after[0] - metrics_before[0]
            stimer = {name: (metrics_after[1][name] - metrics_before[1][name]) / took for name in STIMER_METRICS}
        return rates, detail, stimer
    finally:
        stop(proc)


def add_startup(figures, notes, machine, external, traces, rss, shmem, what):
    base = "startup.%s." % machine
    figures[base + "first_run_ms"] = {"samples": external, "unit": "ms"}
    figures[base + "internal_ms"] = {"samples": [t["first_run_us"] / 1000.0 for t in traces], "unit": "ms"}
    figures[base + "kvm_ms"] = {"samples": [t["kvm_total_us"] / 1000.0 for t in traces], "unit": "ms"}
    for kind in ("create_vm", "memslots", "create_vcpu", "other"):
        figures[base + "kvm_%s_ms" % kind] = {"samples": [t["kvm_us"][kind] / 1000.0 for t in traces], "unit": "ms"}
    figures[base + "vmm_own_ms"] = {"samples": [t["vmm_own_us"] / 1000.0 for t in traces], "unit": "ms"}
    notes[base + "first_run_ms"] = "fork+exec -> 'first KVM_RUN' log line; %s" % what
    notes[base + "vmm_own_ms"] = "main() -> first KVM_RUN minus the time inside KVM ioctls (startup trace)"
    figures["rss.%s_kib" % machine] = {"samples": rss, "unit": "KiB"}
    figures["rss.%s_shmem_kib" % machine] = {"samples": shmem, "unit": "KiB"}
    notes["rss.%s_kib" % machine] = "RssAnon + RssFile %.1f s after the first KVM_RUN (guest RAM is RssShmem); %s" % (
        RSS_DELAY_S, what)


def boot_once(command, timeout_s):
    """Seconds from process start to the guest's INIT line; raises if it does not come."""
    start = time.monotonic()
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        seconds, _ = read_lines_until(proc, proc.stdout, lambda t: t.startswith(INIT_MARKER), timeout_s, start)
        if seconds is None:
            raise RuntimeError("no %r within %d s (exit status %s)" % (INIT_MARKER, timeout_s, proc.poll()))
        return seconds * 1000.0
    finally:
        stop(proc)


def boot_to_init(commands, runs, timeout_s, budget_s):
    """Boots each VMM in turn (so load changes hit both alike) up to `runs` times each, within
    `budget_s` overall. Returns {name: [ms...]} and {name: error} for VMMs that failed."""
    times = {name: [] for name in commands}
    errors = {}
    start = time.monotonic()
    for run in range(runs):
        for name, command in commands.items():
            if name in errors:
                continue
            try:
                times[name].append(boot_once(command, timeout_s))
                log("boot %d %s: %.0f ms" % (run + 1, name, times[name][-1]))
            except (OSError, RuntimeError) as error:
                errors[name] = str(error)
        if time.monotonic() - start > budget_s and run + 1 < runs:
            log("boot budget of %d s used up after %d runs" % (budget_s, run + 1))
            break
    return times, errors


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--microvmm", required=True)
    parser.add_argument("--kernel", required=True)
    parser.add_argument("--initrd", required=True)
    parser.add_argument("--cmdline-file", required=True)
    parser.add_argument("--qemu-boot", help="guest/qemu-boot.sh (omit to skip the QEMU baseline)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--demo-config", default=os.path.join(HERE, "..", "configs", "demo.toml"))
    parser.add_argument("--idle-seconds", type=int, default=30)
    parser.add_argument("--idle-boot-timeout", type=int, default=300,
                        help="seconds for the demo guest to reach its idle shell (2 vCPUs boot slower under load)")
    parser.add_argument("--idle-machines", default="tiny,demo_tiny,demo",
                        help="which idle cases to run (tiny, demo_tiny, demo, demo_extra)")
    parser.add_argument("--idle-cmdline-extra", default="",
                        help="kernel options for an extra idle case demo_extra (the Linux guest with them)")
    parser.add_argument("--skip-startup", action="store_true", help="only the idle cases and boots")
    parser.add_argument("--boot-runs", type=int, default=5)
    parser.add_argument("--boot-timeout", type=int, default=150,
                        help="seconds per boot (~10 s idle, ~95 s under heavy load); a miss ends that VMM's series")
    parser.add_argument("--boot-budget", type=int, default=300,
                        help="seconds for the whole boot comparison; later runs are skipped when it is used up")
    args = parser.parse_args()
    figures, notes = {}, {}

    def missing(key, why):
        figures[key] = {"value": None}
        notes[key] = "not measured: " + why
        log("%s: not measured: %s" % (key, why))

    with open(args.cmdline_file) as f:
        cmdline = f.read().strip()
    with tempfile.TemporaryDirectory(prefix="microvmm-bench-") as directory:
        config = write_config(directory, os.path.abspath(args.kernel), os.path.abspath(args.initrd), cmdline, 128)
        tiny_kernel = os.path.join(directory, "tiny-idle.elf")
        subprocess.run([sys.executable, os.path.join(HERE, "..", "tests", "e2e", "tiny_pvh_kernel.py"),
                        tiny_kernel, "TINY: idle", "idle"], check=True)
        machines = {
            "tiny": (write_tiny_config(directory, tiny_kernel), "tiny PVH kernel, 1 vCPU, 128 MiB, no Hyper-V/DM/API"),
            "demo": (write_demo_config(directory, args.demo_config, os.path.abspath(args.kernel),
                                       os.path.abspath(args.initrd), cmdline + " microvmm.test=shell"),
                     "configs/demo.toml: test guest, 2 vCPUs, 512 MiB (max 2 GiB), Hyper-V, DM, REST API"),
        }
        for machine, (machine_config, what) in ({} if args.skip_startup else machines).items():
            try:
                log("%s: %d runs: start -> first KVM_RUN, RSS" % (machine, args.runs))
                add_startup(figures, notes, machine, *startup_runs(args.microvmm, machine_config, args.runs), what)
            except (OSError, RuntimeError, ValueError, KeyError) as error:
                missing("startup.%s.first_run_ms" % machine, str(error))
        # The same tiny machine without its seccomp filters (SECURITY.md): what the filters cost.
        try:
            if args.skip_startup:
                raise RuntimeError("--skip-startup")
            log("tiny_no_seccomp: %d runs with --no-seccomp" % args.runs)
            add_startup(figures, notes, "tiny_no_seccomp", *startup_runs(
                args.microvmm, machines["tiny"][0], args.runs, extra_args=("--no-seccomp",)),
                "as tiny, with --no-seccomp (tiny has the filters, the default)")
        except (OSError, RuntimeError, ValueError, KeyError) as error:
            missing("startup.tiny_no_seccomp.first_run_ms", str(error))
        # The same tiny machine through the jailer (root only): its cost next to "tiny".
        if args.skip_startup:
            pass
        elif os.geteuid() == 0:
            try:
                log("tiny_jailed: %d runs through `microvmm jail`" % args.runs)
                add_startup(figures, notes, "tiny_jailed", *startup_runs(
                    args.microvmm, machines["tiny"][0], args.runs, os.path.join(directory, "jails")),
                    "as tiny, through `microvmm jail` (uid 10017, mount/PID/IPC/UTS namespaces, pivot_root, cgroup)")
            except (OSError, RuntimeError, ValueError, KeyError) as error:
                missing("startup.tiny_jailed.first_run_ms", str(error))
        else:
            missing("startup.tiny_jailed.first_run_ms", "the jailer needs root")
        figures["startup_ms"] = {"same_as": "startup.demo.first_run_ms"}
        figures["startup_vmm_own_ms"] = {"same_as": "startup.demo.vmm_own_ms"}
        figures["rss_kib"] = {"same_as": "rss.demo_kib"}

        # Idle: the tiny kernel idles at once (hlt with interrupts off), so "tiny" and
        # "demo_tiny" (demo.toml's machine, DM and API with that kernel: the DM device is never
        # connected) show the VMM's own timers alone; "demo" waits until the Linux guest's shell
        # blocks on the serial port, DM connected (BENCHMARKS.md: what still wakes).
        os.makedirs(os.path.join(directory, "demo-tiny"))
        demo_tiny = write_demo_config(os.path.join(directory, "demo-tiny"), args.demo_config, tiny_kernel, None,
                                      "console=ttyS0")
        demo_sock = os.path.join(directory, "api.sock")
        demo_tiny_sock = os.path.join(directory, "demo-tiny", "api.sock")
        idle = {
            "tiny": (machines["tiny"][0], lambda t: t.startswith("TINY: idle"), 30, 1, None),
            "demo_tiny": (demo_tiny, lambda t: t.startswith("TINY: idle"), 30, 1, demo_tiny_sock),
            # 30 s after the shell prompt: the guest's boot-time timers (2026-12-05: ~50 clock
            # events/s for some seconds after the prompt, ~7/s later) have died down.
            "demo": (machines["demo"][0], lambda t: t.startswith("INIT: shell"), args.idle_boot_timeout, 30,
                     demo_sock),
        }
        if args.idle_cmdline_extra:
            # The same Linux guest with extra kernel options (e.g. how idle it can be made from
            # the guest side; BENCHMARKS.md §5).
            os.makedirs(os.path.join(directory, "demo-extra"))
            idle["demo_extra"] = (write_demo_config(os.path.join(directory, "demo-extra"), args.demo_config,
                                                    os.path.abspath(args.kernel), os.path.abspath(args.initrd),
                                                    cmdline + " microvmm.test=shell " + args.idle_cmdline_extra),
                                  lambda t: t.startswith("INIT: shell"), args.idle_boot_timeout, 30,
                                  os.path.join(directory, "demo-extra", "api.sock"))
        for machine in args.idle_machines.split(","):
            machine_config, ready, timeout_s, settle_s, sock = idle[machine]
            try:
                log("%s: idle wake-ups over %d s" % (machine, args.idle_seconds))
                rates, detail, stimer = idle_wakeups(args.microvmm, machine_config, ready, timeout_s, settle_s,
                                                     args.idle_seconds, sock)
                load = open("/proc/loadavg").read().strip()
                base = "idle.%s." % machine
                for group, key in (("own", "vmm_threads"), ("timers", "hv_timers_thread"), ("vcpu", "vcpu_threads"),
                                   ("kvm", "kvm_worker")):
                    voluntary, nonvoluntary = rates[group]
                    figures[base + key + "_per_s"] = {"samples": [voluntary + nonvoluntary], "unit": "/s"}
                    figures[base + key + "_voluntary_per_s"] = {"samples": [voluntary], "unit": "/s"}
                notes[base + "vmm_threads_per_s"] = "context switches (voluntary + involuntary) of the VMM's own " \
                    "threads (event loop, API, net, nvme-io) over %d s, idle guest, no client; per thread " \
                    "[voluntary, involuntary]: %s; load %s" % (args.idle_seconds, json.dumps(detail), load)
                notes[base + "hv_timers_thread_per_s"] = "the hv-timers thread: it wakes only to deliver a " \
                    "synthetic-timer expiry the guest programmed"
                if stimer:
                    figures[base + "guest_stimer_programmed_per_s"] = {
                        "samples": [stimer["microvmm_hyperv_stimer_programmed_total"]], "unit": "/s"}
                    figures[base + "guest_stimer_expirations_per_s"] = {
                        "samples": [stimer["microvmm_hyperv_stimer_expirations_total"]], "unit": "/s"}
                    notes[base + "guest_stimer_expirations_per_s"] = "from /metrics, read just before and " \
                        "after the window: the clock events the guest itself asked for"
                log("%s idle: own threads %.2f+%.2f/s, hv-timers %.2f+%.2f/s, vCPU threads %.2f+%.2f/s "
                    "(voluntary+involuntary); guest stimer %s; %s; load %s"
                    % (machine, *rates["own"], *rates["timers"], *rates["vcpu"], stimer, detail, load))
            except (OSError, RuntimeError) as error:
                missing("idle.%s.vmm_threads_per_s" % machine, str(error))
        # The headline is the Linux guest's; if it did not get idle in time, demo.toml's machine
        # with the tiny kernel (the note says which).
        idle_key = "idle.demo.vmm_threads_per_s"
        if figures.get(idle_key, {"value": None}).get("value", 0) is None:
            idle_key = "idle.demo_tiny.vmm_threads_per_s"
        figures["idle_wakeups_per_s"] = {"same_as": idle_key}

        commands = {"microvmm": [args.microvmm, "--config", config, "--log-level", "warn"]}
        if args.qemu_boot:
            commands["qemu_microvm"] = [args.qemu_boot, args.kernel, args.initrd, "1"]
        else:
            missing("boot_to_init.qemu_microvm_ms", "guest/qemu-boot.sh or qemu-system-x86_64 not found")
        log("up to %d boots each (%s): start -> %r, %d s budget"
            % (args.boot_runs, ", ".join(commands), INIT_MARKER, args.boot_budget))
        times, errors = boot_to_init(commands, args.boot_runs, args.boot_timeout, args.boot_budget)
        for name in commands:
            key = "boot_to_init.%s_ms" % name
            if not times[name]:
                missing(key, "%s: %s" % (name, errors.get(name, "no boot ran")))
                continue
            figures[key] = {"samples": times[name], "unit": "ms"}
            if name in errors:
                notes[key] = "only %d runs: then %s" % (len(times[name]), errors[name])
            elif len(times[name]) < args.boot_runs:
                notes[key] = "only %d runs: the %d s boot budget ran out (loaded machine)" % (
                    len(times[name]), args.boot_budget)
        figures["boot_to_init.ratio"] = {"ratio_of": ["boot_to_init.microvmm_ms", "boot_to_init.qemu_microvm_ms"]}
    print(json.dumps({"figures": figures, "notes": notes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

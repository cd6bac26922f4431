#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# VMM start-up and footprint (BENCHMARKS.md §5), stdlib only. Prints one report in the format of
# bench/report.hpp on stdout:
#  * startup_ms: fork+exec of build/microvmm -> its "first KVM_RUN" log line read from stderr
#    (the VMM logs it on vCPU 0 right before the first KVM_RUN, vmm/runner.cpp); also the VMM's
#    own figure from main() (startup_ms_internal, whole ms).
#  * rss_kib: RssAnon + RssFile of /proc/PID/status RSS_DELAY_S after the first KVM_RUN, i.e.
#    the VMM without guest memory: guest RAM is a shared memfd and counts as RssShmem.
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


def startup_runs(microvmm, config, runs):
    external, internal, rss, shmem = [], [], [], []
    for run in range(runs):
        start = time.monotonic()
        proc = subprocess.Popen([microvmm, "--config", config, "--log-level", "info"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            seconds, match = read_lines_until(proc, proc.stderr, FIRST_RUN.search, 30, start)
            if seconds is None:
                raise RuntimeError("microvmm never logged its first KVM_RUN (exit status %s)" % proc.poll())
            external.append(seconds * 1000.0)
            internal.append(float(match.group(1)))
            time.sleep(RSS_DELAY_S)
            status = status_kib(proc.pid)
            rss.append(float(status["RssAnon"] + status["RssFile"]))
            shmem.append(float(status["RssShmem"]))
        finally:
            stop(proc)
    return external, internal, rss, shmem


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
        try:
            log("%d runs: start -> first KVM_RUN, RSS" % args.runs)
            external, internal, rss, shmem = startup_runs(args.microvmm, config, args.runs)
            figures["startup_ms"] = {"samples": external, "unit": "ms"}
            figures["startup_ms_internal"] = {"samples": internal, "unit": "ms"}
            figures["rss_kib"] = {"samples": rss, "unit": "KiB"}
            figures["rss_shmem_kib"] = {"samples": shmem, "unit": "KiB"}
            notes["startup_ms"] = "fork+exec -> 'first KVM_RUN' log line; 1 vCPU, 128 MiB"
            notes["rss_kib"] = "RssAnon + RssFile %.1f s after the first KVM_RUN (guest RAM is RssShmem)" % RSS_DELAY_S
        except (OSError, RuntimeError) as error:
            missing("startup_ms", str(error))
            missing("rss_kib", str(error))
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

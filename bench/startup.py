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


def boot_to_init(command, runs, timeout_s):
    times = []
    for run in range(runs):
        start = time.monotonic()
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            seconds, _ = read_lines_until(proc, proc.stdout, lambda t: t.startswith(INIT_MARKER), timeout_s, start)
            if seconds is None:
                raise RuntimeError("no %r within %d s (exit status %s)" % (INIT_MARKER, timeout_s, proc.poll()))
            times.append(seconds * 1000.0)
        finally:
            stop(proc)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--microvmm", required=True)
    parser.add_argument("--kernel", required=True)
    parser.add_argument("--initrd", required=True)
    parser.add_argument("--cmdline-file", required=True)
    parser.add_argument("--qemu-boot", help="guest/qemu-boot.sh (omit to skip the QEMU baseline)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--boot-runs", type=int, default=5)
    parser.add_argument("--boot-timeout", type=int, default=60,
                        help="seconds per boot (an idle machine needs ~10 s); the first miss ends the series")
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
        try:
            log("%d boots: microvmm start -> %r" % (args.boot_runs, INIT_MARKER))
            command = [args.microvmm, "--config", config, "--log-level", "warn"]
            figures["boot_to_init.microvmm_ms"] = {"samples": boot_to_init(command, args.boot_runs, args.boot_timeout), "unit": "ms"}
        except (OSError, RuntimeError) as error:
            missing("boot_to_init.microvmm_ms", "microvmm: " + str(error))
        if args.qemu_boot:
            try:
                log("%d boots: QEMU microvm start -> %r" % (args.boot_runs, INIT_MARKER))
                command = [args.qemu_boot, args.kernel, args.initrd, "1"]
                figures["boot_to_init.qemu_microvm_ms"] = {
                    "samples": boot_to_init(command, args.boot_runs, args.boot_timeout), "unit": "ms"}
            except (OSError, RuntimeError) as error:
                missing("boot_to_init.qemu_microvm_ms", "QEMU: " + str(error))
        else:
            missing("boot_to_init.qemu_microvm_ms", "guest/qemu-boot.sh not found")
        figures["boot_to_init.ratio"] = {"ratio_of": ["boot_to_init.microvmm_ms", "boot_to_init.qemu_microvm_ms"]}
    print(json.dumps({"figures": figures, "notes": notes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

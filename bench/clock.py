#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Guest clock_gettime cost (BENCHMARKS.md §6), stdlib only. Boots the test guest once in mode
# `clockbench` (guest/init) with the default [hyperv] set, whose clocksource is the reference
# TSC page, and reads `runs` lines of `clockprobe bench 200000` (guest/clockprobe.c): per run
# the cost of one CLOCK_MONOTONIC read through the vDSO (reads the TSC page, no exit) and
# through the clock_gettime syscall (what every read cost before the TSC page: without it the
# guest has no vDSO-capable clocksource, its TSC being marked unstable on Hyper-V,
# arch/x86/kernel/cpu/mshyperv.c:510-511). Both are timed by the guest's own CLOCK_MONOTONIC.
# Prints one report in the format of bench/report.hpp on stdout.
import argparse
import json
import os
import re
import select
import subprocess
import sys
import tempfile
import time

BENCH = re.compile(r"CLOCK: bench calls=(\d+) vdso_ns=(\d+) syscall_ns=(\d+)")
SOURCE = re.compile(r"INIT: clocksource=(\S+)")


def log(text):
    print("clock: " + text, file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--microvmm", required=True)
    parser.add_argument("--kernel", required=True)
    parser.add_argument("--initrd", required=True)
    parser.add_argument("--cmdline-file", required=True)
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "5")))
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    runs = max(args.runs, 5)
    with open(args.cmdline_file) as f:
        cmdline = f.read().strip() + " microvmm.test=clockbench microvmm.runs=%d" % runs
    vdso, syscall, source = [], [], None
    with tempfile.TemporaryDirectory() as directory:
        config = os.path.join(directory, "clock.toml")
        with open(config, "w") as f:
            f.write("[machine]\nvcpus = 1\nmemory_mib = 256\non_reboot = \"exit\"\n")
            f.write("[boot]\nkernel = %s\ninitrd = %s\ncmdline = %s\n"
                    % (json.dumps(os.path.abspath(args.kernel)), json.dumps(os.path.abspath(args.initrd)), json.dumps(cmdline)))
            f.write("[hyperv]\nenabled = true\n")  # The default enlightenment set.
        proc = subprocess.Popen([args.microvmm, "--config", config], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + args.timeout
        buffer = b""
        try:
            while len(vdso) < runs and time.monotonic() < deadline:
                ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    text = line.decode(errors="replace")
                    if m := SOURCE.search(text):
                        source = m.group(1)
                        log("guest clocksource " + source)
                    elif m := BENCH.search(text):
                        vdso.append(int(m.group(2)))
                        syscall.append(int(m.group(3)))
                        log("run %d: vDSO %s ns, syscall %s ns" % (len(vdso), m.group(2), m.group(3)))
        finally:
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if len(vdso) < runs:
        log("only %d of %d runs before the timeout or the guest's exit" % (len(vdso), runs))
        return 1
    note = "guest clocksource %s; 200,000 vDSO reads and 20 syscalls per run, 1 vCPU" % source
    report = {
        "figures": {
            "clock.vdso_ns": {"samples": vdso, "unit": "ns"},
            "clock.syscall_ns": {"samples": syscall, "unit": "ns"},
            "clock.syscall_over_vdso": {"ratio_of": ["clock.syscall_ns", "clock.vdso_ns"]},
        },
        "notes": {"clock.vdso_ns": note},
    }
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Runs guest/qemu-boot.sh and stamps every serial line with host wall time since QEMU start;
# ends with one summary line (time to "INIT: up", QEMU exit time and status, timeout or guest
# panic) for benchmarks. Exits 0 only if "INIT: up" appeared and QEMU exited 0 by itself.
#
# Usage: guest/qemu-timed.py [--timeout S] [--until TEXT] KERNEL INITRD VCPUS [extra kernel command line...]
import argparse
import os
import subprocess
import sys
import threading
import time

MARKER = "INIT: up"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeout", type=float, default=120.0, help="kill QEMU after S seconds")
    parser.add_argument("--until", help="stop QEMU once a serial line contains this text (success)")
    parser.add_argument("args", nargs="+", help="KERNEL INITRD VCPUS [extra cmdline]")
    options = parser.parse_args()
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "qemu-boot.sh")
    start = time.monotonic()
    proc = subprocess.Popen([script, *options.args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        proc.kill()

    watchdog = threading.Timer(options.timeout, kill)
    watchdog.start()
    init_up = None
    panicked = False
    reached = False
    assert proc.stdout is not None
    for raw in proc.stdout:
        now = time.monotonic() - start
        line = raw.decode(errors="replace").rstrip("\r\n")
        if init_up is None and line.startswith(MARKER):
            init_up = now
        print(f"+{now:7.3f} {line}", flush=True)
        if "Kernel panic - not syncing" in line and not panicked:
            panicked = True  # a panicked guest spins until the timeout: stop it now
            threading.Timer(1.0, proc.kill).start()
        if options.until and options.until in line and not reached:
            reached = True
            proc.kill()
    rc = proc.wait()
    watchdog.cancel()
    if reached:
        rc = 0
    timed_out = killed.is_set()
    total = time.monotonic() - start
    up = f"{init_up:.3f}" if init_up is not None else "none"
    print(f"SUMMARY: init_up_s={up} exit_s={total:.3f} rc={rc} timed_out={int(timed_out)} panic={int(panicked)} until={int(reached)}", flush=True)
    return 0 if rc == 0 and not timed_out and not panicked and init_up is not None else 1


if __name__ == "__main__":
    sys.exit(main())

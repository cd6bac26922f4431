#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Runs guest/qemu-boot.sh and stamps every serial line with host wall time since QEMU start;
# ends with one summary line (time to "INIT: up", QEMU exit time and status) for benchmarks.
#
# Usage: guest/qemu-timed.py [--timeout S] KERNEL INITRD VCPUS [extra kernel command line...]
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
    assert proc.stdout is not None
    for raw in proc.stdout:
        now = time.monotonic() - start
        line = raw.decode(errors="replace").rstrip("\r\n")
        if init_up is None and line.startswith(MARKER):
            init_up = now
        print(f"+{now:7.3f} {line}", flush=True)
    rc = proc.wait()
    watchdog.cancel()
    timed_out = killed.is_set()
    total = time.monotonic() - start
    up = f"{init_up:.3f}" if init_up is not None else "none"
    print(f"SUMMARY: init_up_s={up} exit_s={total:.3f} rc={rc} timed_out={int(timed_out)}", flush=True)
    return 0 if rc == 0 and not timed_out and init_up is not None else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Black-box REST API tests against the real microvmm binary: starts a VM with an API socket,
# runs the gtest binary tests/unit/api/api_blackbox against it (every endpoint, malformed
# requests, garbage bytes, an absurd Content-Length, half-sent requests, 100 simultaneous
# connections; see api_blackbox_test.cpp), then checks that the VM is still running and that
# SIGTERM ends it with 143 and removes the socket.
#   api-tiny:  a tiny PVH kernel that idles (no DM driver: targets get 503; pure API cases).
#   api-guest: the Linux test guest, whose hv_balloon connects: the range checks see 400 and a
#              target set through the socket is reached (the suite's last test).
# Exit status: 0 pass, 1 fail, 77 skip (only when /dev/kvm is absent).
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e import SLOW_GUEST_DM_TIMEOUTS, Run, fail, guest_paths, run_cases, tiny_kernel, write_config  # noqa: E402

DM_AND_HYPERV = "[dynamic_memory]\nenabled = true\n" + SLOW_GUEST_DM_TIMEOUTS + "[hyperv]\nenabled = true\n"


def get(sock: Path, path: str, timeout: float = 10) -> tuple[int, dict]:
    """One GET over the Unix socket with Connection: close; returns (status, JSON body)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else {}


def wait_for_socket(run: Run, sock: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if run.process.poll() is not None:
            run.finish()
            fail(f"microvmm exited with {run.process.returncode} before its API socket answered")
        try:
            if get(sock, "/api/v1/vm")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    run.process.kill()
    run.finish()
    fail(f"the API socket {sock} did not answer within {seconds} s")


def run_suite(args, sock: Path, with_guest: bool) -> None:
    binary = Path(args.build_root) / "tests" / "unit" / "api" / "api_blackbox"
    if not binary.exists():
        fail(f"{binary} missing (built with the API)")
    env = dict(os.environ, MICROVMM_API_SOCKET=str(sock))
    # Without a DM driver the real-guest target test would only wait and skip: leave it out.
    command = [str(binary)] if with_guest else [str(binary), "--gtest_filter=-*RealGuest*"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    print(result.stdout[-6000:], result.stderr[-2000:], sep="\n", flush=True)
    if result.returncode != 0:
        fail(f"api_blackbox failed (exit {result.returncode})")
    passed = re.search(r"\[  PASSED  \] (\d+) test", result.stdout)
    skipped = re.search(r"\[  SKIPPED \] (\d+) test", result.stdout)
    skips = int(skipped.group(1)) if skipped else 0
    if not passed or skips != 0:
        fail(f"api_blackbox: {skips} test(s) skipped ({passed.group(0) if passed else 'no PASSED line'})")


def stop_and_check(run: Run, sock: Path) -> None:
    if run.process.poll() is not None:
        run.finish()
        fail(f"microvmm died during the API abuse (exit {run.process.returncode})")
    status, vm = get(sock, "/api/v1/vm")
    if status != 200 or vm.get("state") != "running":
        run.process.kill()
        run.finish()
        fail(f"after the suite GET /api/v1/vm gave {status} {vm}")
    run.process.send_signal(signal.SIGTERM)
    exit_status, log = run.finish()
    if exit_status != 128 + signal.SIGTERM:
        fail(f"exit status {exit_status} after SIGTERM (expected 143)")
    if sock.exists():
        fail(f"the socket {sock} was left behind")
    if "api" not in log:
        fail("no api log line")


def api_tiny(args) -> None:
    with tempfile.TemporaryDirectory() as directory:
        sock = Path(directory) / "api.sock"
        kernel = tiny_kernel(Path(directory), "TINY: idle", "idle")
        config = write_config(Path(directory), {"vcpus": 2, "memory_mib": 256, "max_memory_mib": 512},
                              {"kernel": kernel}, DM_AND_HYPERV + f'[api]\nsocket = "{sock}"\n')
        run = Run(args.microvmm, config, args.timeout)
        if not run.wait_for(r"^TINY: idle$"):
            run.finish()
            fail("the tiny kernel did not start")
        wait_for_socket(run, sock, 30)
        status, memory = get(sock, "/api/v1/memory")
        if status != 200 or memory.get("boot_mib") != 256 or memory.get("max_mib") != 512 \
                or memory.get("dm", {}).get("connected") is not False:
            run.process.kill()
            run.finish()
            fail(f"GET /api/v1/memory: {status} {memory}")
        run_suite(args, sock, with_guest=False)
        stop_and_check(run, sock)


def api_guest(args) -> None:
    paths = guest_paths(args)
    with tempfile.TemporaryDirectory() as directory:
        sock = Path(directory) / "api.sock"
        cmdline = paths["cmdline"].read_text().strip() + " microvmm.test=balloon microvmm.dirty_mib=0 microvmm.interval=5"
        config = write_config(Path(directory), {"vcpus": 1, "memory_mib": 512, "max_memory_mib": 1024,
                                                "on_reboot": "exit"},
                              {"kernel": paths["vmlinux"], "initrd": paths["initramfs"], "cmdline": cmdline},
                              DM_AND_HYPERV + f'[api]\nsocket = "{sock}"\n')
        run = Run(args.microvmm, config, args.timeout)
        wait_for_socket(run, sock, 30)
        if not run.wait_for(r"INIT: dirtied"):
            run.finish()
            fail("the guest's /init did not reach balloon mode")
        deadline = time.monotonic() + 120
        while get(sock, "/api/v1/memory")[1].get("dm", {}).get("connected") is not True:
            if time.monotonic() > deadline:
                run.process.kill()
                run.finish()
                fail("the guest's DM driver did not connect")
            time.sleep(1)
        run_suite(args, sock, with_guest=True)
        stop_and_check(run, sock)


CASES = {"api-tiny": api_tiny, "api-guest": api_guest}

if __name__ == "__main__":
    run_cases(CASES, default_timeout=900)

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Stress: starts and stops microvmm repeatedly while API clients hammer every endpoint and the
# guest (a tiny PVH kernel that resets at once, on_reboot = "reset") reboots continuously, so
# machine build/teardown, the DM device's attach/detach, the DM tick and the API threads all
# overlap. Meant for the sanitizer builds (make check SANITIZE=thread): any sanitizer report, a
# lock-order abort or a wrong exit status fails it. Exit status as e2e.py (0/1/77).
import socket
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e import Run, fail, run_cases, tiny_kernel, write_config  # noqa: E402

ROUNDS = 4            # microvmm start/stop cycles.
HAMMER_SECONDS = 4.0  # API load per cycle.
CLIENTS = 4
SANITIZER_MARKERS = ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "lock order violated")
REQUESTS = [
    b"GET /api/v1/vm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /api/v1/memory HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /api/v1/memory/operations/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"PUT /api/v1/memory/target HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 19\r\n\r\n"
    b'{"target_mib": 192}',
    b"PUT /api/v1/memory/target HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 19\r\n\r\n"
    b'{"target_mib": 384}',
]


def exchange(sock_path: Path, request: bytes, read_for: float = 5.0) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(read_for)
        s.connect(str(sock_path))
        s.sendall(request)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except socket.timeout:
            pass
        return data


class Hammer:
    """CLIENTS threads sending REQUESTS round-robin plus one event-stream reader, until stopped."""

    def __init__(self, sock_path: Path):
        self.sock_path = sock_path
        self.stop = threading.Event()
        self.answers = 0
        self.statuses: set[int] = set()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(CLIENTS)]
        self.threads.append(threading.Thread(target=self.events, daemon=True))
        for thread in self.threads:
            thread.start()

    def client(self, index: int) -> None:
        n = index
        while not self.stop.is_set():
            try:
                reply = exchange(self.sock_path, REQUESTS[n % len(REQUESTS)])
            except OSError:
                time.sleep(0.01)  # Not listening yet, or going away: the VMM's business, not ours.
                continue
            n += 1
            if reply.startswith(b"HTTP/1.1 "):
                with self.lock:
                    self.answers += 1
                    self.statuses.add(int(reply.split(b" ", 2)[1]))

    def events(self) -> None:
        while not self.stop.is_set():
            try:
                exchange(self.sock_path, b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n", read_for=0.5)
            except OSError:
                time.sleep(0.01)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def stress(args) -> None:
    with tempfile.TemporaryDirectory() as directory:
        sock = Path(directory) / "api.sock"
        kernel = tiny_kernel(Path(directory), "TINY: booted", "reset")
        config = write_config(Path(directory),
                              {"vcpus": 2, "memory_mib": 256, "max_memory_mib": 512, "on_reboot": "reset"},
                              {"kernel": kernel},
                              "[dynamic_memory]\nenabled = true\n[hyperv]\nenabled = true\n"
                              f'[api]\nsocket = "{sock}"\n')
        total_answers = 0
        for round_index in range(ROUNDS):
            run = Run(args.microvmm, config, args.timeout)
            hammer = Hammer(sock)
            if not run.wait_for(r"^TINY: booted$"):
                hammer.finish()
                run.process.kill()
                run.finish()
                fail(f"round {round_index}: the guest did not boot")
            time.sleep(HAMMER_SECONDS)
            boots = sum(1 for _, line in run.lines if line == "TINY: booted")
            run.process.send_signal(signal.SIGTERM)
            status, log = run.finish()
            hammer.finish()
            for marker in SANITIZER_MARKERS:
                if marker in log:
                    fail(f"round {round_index}: '{marker}' in the log")
            if status != 128 + signal.SIGTERM:
                fail(f"round {round_index}: exit status {status} after SIGTERM (expected 143)")
            if sock.exists():
                fail(f"round {round_index}: the socket was left behind")
            reboots = log.count("guest stopped: reset")
            print(f"round {round_index}: {hammer.answers} API answers {sorted(hammer.statuses)}, "
                  f"{reboots} guest reboots ({boots} boot lines read)", flush=True)
            if reboots < 2:
                fail(f"round {round_index}: only {reboots} guest reboots during the hammering")
            if 200 not in hammer.statuses:
                fail(f"round {round_index}: no successful API answer")
            total_answers += hammer.answers
        print(f"STRESS: rounds={ROUNDS} api_answers={total_answers}", flush=True)


if __name__ == "__main__":
    run_cases({"stress": stress}, default_timeout=120)

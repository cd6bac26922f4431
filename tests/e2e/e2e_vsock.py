#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# End-to-end test of hv_sock with the Linux test guest (guest/init mode vsock, guest/vsockt.c),
# over the Unix-socket convention of configs/README.md "[vsock]". One boot:
#   guest-initiated: CONNS guest connections at once to host port 6000 reach an echo listener at
#     <uds_path>_6000; each sends BYTES, the host echoes, the guest compares every byte;
#   host-initiated: CONNS host clients at once connect to uds_path, "CONNECT 5000\n", read
#     "OK <port>\n", send BYTES of random data, half-close and read the guest's echo back
#     (compared by SHA-256); the guest prints each connection's byte count and FNV-1a sum.
# So BYTES go each way on every connection, both directions at once, with half-close.
# Exit status: 0 pass, 1 fail, 77 skip (only when /dev/kvm is absent).
import hashlib
import os
import random
import re
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e import Run, fail, guest_paths, run_cases, write_config  # noqa: E402

# Sizes: each byte crosses the emulated guest kernel twice per direction (see the case below).
# 8 connections x 2 MiB is the 16 MiB each way per phase (guest- and host-initiated):
# 360 s here at load 6-9 (2026-12-05: boot 90 s, guest-initiated 168 s, host-initiated 102 s);
# BENCHMARKS.md "hv_sock with a guest" has the rates.
BYTES = int(os.environ.get("VSOCK_E2E_BYTES", 2 << 20))
CONNS = int(os.environ.get("VSOCK_E2E_CONNS", 8))


class EchoListener:
    """<uds_path>_6000: echoes every connection until EOF, then half-closes; counts bytes."""

    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(64)
        self.echoed: list[int] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        total = 0
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)
                total += len(data)
            conn.shutdown(socket.SHUT_WR)
        with self.lock:
            self.echoed.append(total)


def host_client(uds: Path, port: int, payload: bytes, results: list, index: int) -> None:
    try:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.settimeout(120)
        client.connect(str(uds))
        client.sendall(f"CONNECT {port}\n".encode())
        line = b""
        while not line.endswith(b"\n"):
            byte = client.recv(1)
            if not byte:
                results[index] = "closed before OK"
                return
            line += byte
        if not re.fullmatch(rb"OK \d+\n", line):
            results[index] = f"bad reply {line!r}"
            return

        def send() -> None:
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        received = hashlib.sha256()
        count = 0
        while data := client.recv(65536):
            received.update(data)
            count += len(data)
        sender.join()
        client.close()
        ok = count == len(payload) and received.digest() == hashlib.sha256(payload).digest()
        results[index] = "ok" if ok else f"echo differs ({count} of {len(payload)} bytes)"
    except OSError as error:
        results[index] = f"error {error}"


def vsock(args) -> None:
    paths = guest_paths(args)
    with tempfile.TemporaryDirectory() as directory:
        uds = Path(directory) / "v.sock"
        listener = EchoListener(Path(f"{uds}_6000"))
        cmdline = (paths["cmdline"].read_text().strip()
                   + f" microvmm.test=vsock microvmm.vsock_bytes={BYTES} microvmm.vsock_conns={CONNS}")
        config = write_config(Path(directory), {"vcpus": 1, "memory_mib": 256},
                              {"kernel": paths["vmlinux"], "initrd": paths["initramfs"], "cmdline": cmdline},
                              f'[hyperv]\nenabled = true\n[vsock]\nuds_path = "{uds}"\n')
        run = Run(args.microvmm, config, args.timeout)
        if not run.wait_for(r"VSOCK: listening port=5000"):
            run.process.kill()
            fail("the guest's vsock echo server did not start")
        started = time.monotonic()
        if not run.wait_for(r"INIT: vsock (send ok|ready)|INIT: error vsock"):
            run.process.kill()
            fail("the guest-initiated connections did not finish")
        guest_s = time.monotonic() - started
        sends = [line for _, line in run.lines if line.startswith("VSOCK: send conn=")]
        good = [line for line in sends if f"bytes={BYTES} echoed={BYTES} ok=1" in line]
        with listener.lock:
            echoed = list(listener.echoed)
        print(f"guest-initiated: {len(good)}/{CONNS} connections x {BYTES} bytes each way in {guest_s:.1f} s; "
              f"host echoed {sorted(echoed)}", flush=True)
        if len(good) != CONNS or sorted(echoed) != [BYTES] * CONNS:
            run.process.kill()
            run.finish()
            fail(f"guest-initiated connections: {sends}")
        rng = random.Random(12)
        payloads = [rng.randbytes(BYTES) for _ in range(CONNS)]
        results: list = [None] * CONNS
        started = time.monotonic()
        clients = [threading.Thread(target=host_client, args=(uds, 5000, payloads[i], results, i)) for i in range(CONNS)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(timeout=max(1.0, args.timeout - (time.monotonic() - run.start)))
        host_s = time.monotonic() - started
        print(f"host-initiated: {results} in {host_s:.1f} s", flush=True)
        echo_lines = 0
        deadline = time.monotonic() + 20
        while echo_lines < CONNS and time.monotonic() < deadline:
            if not run.wait_for(rf"VSOCK: echo bytes={BYTES} "):
                break
            echo_lines += 1
        # A CONNECT to a port nobody listens on in the guest gets no "OK" (rescinded later).
        run.process.kill()
        status, log = run.finish()
        if results != ["ok"] * CONNS:
            fail(f"host-initiated connections: {results}")
        if echo_lines != CONNS:
            fail(f"the guest reported {echo_lines} of {CONNS} echo connections with {BYTES} bytes")
        if "guest packet refused" in log or "ring broken" in log:
            fail("hv_sock reported a protocol error")


CASES = {"vsock": vsock}


def main() -> None:
    run_cases(CASES, default_timeout=600)


if __name__ == "__main__":
    main()

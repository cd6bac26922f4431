#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# hv_sock with the real Linux test guest (BENCHMARKS.md "hv_sock with a guest"), next to a Unix
# socketpair on this host as the ceiling; stdlib only; prints one report in the format of
# bench/report.hpp on stdout.
#
# One boot (1 vCPU, 256 MiB, guest/init mode vsockbench), host-initiated connections over the
# hybrid-vsock Unix socket ([vsock] uds_path, configs/README.md):
#  * rtt_64b_ms: RTTS round trips of a 64-byte message to the guest's echo server (port 5000);
#  * to_guest_kib_s: CONNS connections to the guest's sink (5001) send the bench pattern for
#    SECONDS, half-close, and wait for the guest's "bytes=N ok=1" (every byte arrived and was
#    checked in guest user space): bytes / time until that reply;
#  * from_guest_kib_s: CONNS connections to the guest's source (5002) read for SECONDS, every
#    byte checked against the pattern here: bytes / time.
# The socketpair figures run the same client code against a forked peer doing what the guest
# does. `--matrix` (diagnosis, not part of `make bench`) measures both directions for each
# I/O size x connection count x ring size instead and prints a table on stderr.
# The guest kernel (CPL0) is emulated on this project's test host: the hv_sock figures are
# guest-bound (see BENCHMARKS.md); the VMM's own per-packet cost is bench/hvsock_bench.cpp.
import argparse
import json
import os
import re
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from net import Guest  # noqa: E402  (the serial-console reader of bench/net.py)

PERIOD = 65521  # guest/vsockt.c BENCH_PERIOD
GUEST_PORTS = (5000, 5001, 5002, 5011, 5012)  # guest/init mode_vsockbench


def bench_byte(k):
    x = (k * 2654435761 + 1) & 0xFFFFFFFF
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    return (x >> 11) & 0xFF


TABLE = bytes(bench_byte(k) for k in range(PERIOD))
MAX_IO = 256 * 1024
WINDOW = TABLE * (MAX_IO // PERIOD + 2)  # Any MAX_IO-byte slice starting below PERIOD.


def log(text):
    print("hvsock_guest: " + text, file=sys.stderr, flush=True)


def hv_connect(uds, port, timeout):
    """Host-initiated hv_sock connection: CONNECT <port>, then "OK <host port>"."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(uds)
    sock.sendall(f"CONNECT {port}\n".encode())
    line = b""
    while not line.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            raise RuntimeError(f"port {port}: closed before OK")
        line += byte
    if not re.fullmatch(rb"OK \d+\n", line):
        raise RuntimeError(f"port {port}: bad reply {line!r}")
    return sock


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise RuntimeError("peer closed mid-message")
        data += chunk
    return data


def rtts(sock, count):
    message = bytes(range(64))
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        sock.sendall(message)
        if recv_exact(sock, 64) != message:
            raise RuntimeError("echo differs")
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def send_for(sock, size, seconds):
    """Sends the pattern for `seconds` (as `size`-byte writes), half-closes, reads the sink's
    reply; returns (bytes, seconds until the reply)."""
    sock.sendall(struct.pack("<I", size))
    started = time.monotonic()
    sent = 0
    view = memoryview(WINDOW)
    while time.monotonic() - started < seconds:
        offset = sent % PERIOD
        sent += sock.send(view[offset:offset + size])
    sock.shutdown(socket.SHUT_WR)
    reply = b""
    while chunk := sock.recv(256):
        reply += chunk
    elapsed = time.monotonic() - started
    match = re.fullmatch(rb"bytes=(\d+) ok=([01])\n", reply)
    if not match or int(match.group(1)) != sent or match.group(2) != b"1":
        raise RuntimeError(f"sink reply {reply!r} after {sent} bytes sent")
    return sent, elapsed


def receive_for(sock, size, seconds):
    """Reads the source's pattern for `seconds`, checking every byte; returns (bytes, seconds)."""
    sock.sendall(struct.pack("<I", size))
    started = time.monotonic()
    got = 0
    buffer = bytearray(MAX_IO)
    view = memoryview(buffer)
    while (elapsed := time.monotonic() - started) < seconds:
        n = sock.recv_into(buffer)
        if n == 0:
            raise RuntimeError(f"source closed after {got} bytes")
        offset = got % PERIOD
        if view[:n] != WINDOW[offset:offset + n]:
            raise RuntimeError(f"byte mismatch within bytes {got}..{got + n}")
        got += n
    return got, elapsed


def parallel(conns, opener, transfer, size, seconds):
    """CONNS connections at once; returns total KiB/s (total bytes / the slowest one's time)."""
    results = [None] * conns
    socks = [opener() for _ in range(conns)]

    def one(i):
        try:
            results[i] = transfer(socks[i], size, seconds)
        except Exception as error:  # noqa: BLE001 (reported below)
            results[i] = error

    threads = [threading.Thread(target=one, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in socks:
        s.close()
    for r in results:
        if isinstance(r, Exception):
            raise r
    total = sum(r[0] for r in results)
    return total / max(r[1] for r in results) / 1024, total


# ---- socketpair peer (what the guest's vsockt does, in a forked child) ----

def peer_serve(sock, role):
    if role == "echo":
        while data := sock.recv(65536):
            sock.sendall(data)
        return
    size = struct.unpack("<I", recv_exact(sock, 4))[0]
    view = memoryview(WINDOW)
    if role == "sink":
        total, ok = 0, True
        buffer = bytearray(size)
        while n := sock.recv_into(buffer):
            offset = total % PERIOD
            ok &= memoryview(buffer)[:n] == view[offset:offset + n]
            total += n
        sock.sendall(f"bytes={total} ok={int(ok)}\n".encode())
        sock.shutdown(socket.SHUT_WR)
        return
    total = 0
    try:
        while True:
            offset = total % PERIOD
            total += sock.send(view[offset:offset + size])
    except OSError:
        pass


def socketpair_opener(role, timeout):
    def opener():
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            ours.close()
            try:
                peer_serve(theirs, role)
            finally:
                os._exit(0)
        theirs.close()
        ours.settimeout(timeout)
        opener.children.append(pid)
        return ours
    opener.children = []
    return opener


def reap(opener):
    for pid in opener.children:
        os.waitpid(pid, 0)


def measure(uds, args, guest_ports):
    """Both directions and the RTT; uds=None measures the socketpair."""
    to_guest, from_guest = [], []

    def opener_for(role):
        if uds is None:
            return socketpair_opener(role, args.timeout)
        return lambda: hv_connect(uds, guest_ports[role], args.timeout)

    echo = opener_for("echo")
    sock = echo()
    rtts(sock, 5)  # Warm-up (first-touch of the guest's pages).
    rtt = rtts(sock, args.rtts)
    sock.close()
    if uds is None:
        reap(echo)
    for run in range(args.runs):
        sink = opener_for("sink")
        kib_s, total = parallel(args.conns, sink, send_for, args.size, args.seconds)
        if uds is None:
            reap(sink)
        to_guest.append(kib_s)
        source = opener_for("source")
        kib_s2, total2 = parallel(args.conns, source, receive_for, args.size, args.seconds)
        if uds is None:
            reap(source)
        from_guest.append(kib_s2)
        log(f"{'hv_sock' if uds else 'socketpair'} run {run + 1}: to guest {total} bytes, {kib_s:.1f} KiB/s; "
            f"from guest {total2} bytes, {kib_s2:.1f} KiB/s (load {os.getloadavg()[0]:.1f})")
    return to_guest, from_guest, rtt


def cpu_seconds(pid):
    """User + system CPU time of a process (the VMM: its vCPU thread's guest emulation is
    system time), from /proc/<pid>/stat fields 14-15."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vcpu_schedstat(pid):
    """(ns on a CPU, ns waiting for one) of the VMM's vcpu* threads, from
    /proc/<pid>/task/<tid>/schedstat: wall time minus both is time the vCPUs slept (the guest
    halted: nothing to do, or waiting for the VMM)."""
    run = wait = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if not f.read().startswith("vcpu"):
                    continue
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                fields = f.read().split()
        except OSError:
            continue
        run += int(fields[0])
        wait += int(fields[1])
    return run, wait


def vcpu_split(pid, transfer):
    """Runs transfer(); returns (its result, 'run x% / runqueue y% / halted z%' of the vCPU)."""
    run0, wait0 = vcpu_schedstat(pid)
    started = time.monotonic_ns()
    result = transfer()
    wall = time.monotonic_ns() - started
    run1, wait1 = vcpu_schedstat(pid)
    run, wait = run1 - run0, wait1 - wait0
    return result, f"vCPU run {100 * run / wall:.0f}% runqueue {100 * wait / wall:.0f}% halted {100 * (wall - run - wait) / wall:.0f}%"


def matrix(uds, args, pid):
    """Diagnosis: KiB/s both ways per I/O size x connections x ring, and KiB per VMM CPU-second
    (which the load of a shared host changes much less than KiB/s)."""
    rows = []
    for ring, ports in (("default", {"sink": 5001, "source": 5002}), ("256KiB", {"sink": 5011, "source": 5012})):
        for conns in args.matrix_conns:
            for size in args.matrix_sizes:
                cpu0 = cpu_seconds(pid)
                (to_kib, to_bytes), to_split = vcpu_split(pid, lambda: parallel(
                    conns, lambda: hv_connect(uds, ports["sink"], args.timeout), send_for, size, args.seconds))
                cpu1 = cpu_seconds(pid)
                (from_kib, from_bytes), from_split = vcpu_split(pid, lambda: parallel(
                    conns, lambda: hv_connect(uds, ports["source"], args.timeout), receive_for, size, args.seconds))
                cpu2 = cpu_seconds(pid)
                load = os.getloadavg()[0]
                to_eff = to_bytes / 1024 / max(cpu1 - cpu0, 0.01)
                from_eff = from_bytes / 1024 / max(cpu2 - cpu1, 0.01)
                rows.append((ring, conns, size, to_kib, from_kib, to_eff, from_eff, load))
                log(f"matrix ring={ring} conns={conns} io={size}: to guest {to_kib:.1f} KiB/s ({to_bytes} B, "
                    f"{to_eff:.0f} KiB/CPU-s, {to_split}), from guest {from_kib:.1f} KiB/s ({from_bytes} B, "
                    f"{from_eff:.0f} KiB/CPU-s, {from_split}), load {load:.1f}")
    return rows


def p90(samples):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--microvmm", required=True)
    parser.add_argument("--kernel", required=True)
    parser.add_argument("--initrd", required=True)
    parser.add_argument("--cmdline-file", required=True)
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_HVSOCK_RUNS", 3)))
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_HVSOCK_SECONDS", 10)))
    parser.add_argument("--size", type=int, default=65536, help="read/write size on both ends")
    parser.add_argument("--conns", type=int, default=1)
    parser.add_argument("--rtts", type=int, default=100)
    parser.add_argument("--boot-timeout", type=float, default=300)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--matrix", action="store_true", help="diagnosis table instead of the bench figures")
    parser.add_argument("--matrix-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[4096, 65536, 262144])
    parser.add_argument("--matrix-conns", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8])
    parser.add_argument("--cmdline-extra", default="", help="diagnosis: more guest kernel parameters")
    parser.add_argument("--keep-log", help="file for the VMM's log")
    parser.add_argument("--hold", type=float, help="diagnosis: once ready, print the socket and the VMM's pid "
                        "and keep the guest up this many seconds (for measuring by hand)")
    args = parser.parse_args()
    if not 0 < args.size <= MAX_IO:
        parser.error(f"--size must be 1..{MAX_IO}")
    with open(args.cmdline_file) as f:
        cmdline = f.read().strip() + " microvmm.test=vsockbench"
    for word in args.cmdline_extra.split():
        # One clearcpuid= only: the kernel reads a single instance (cmdline_find_option()).
        if word.startswith("clearcpuid=") and " clearcpuid=" in cmdline:
            cmdline = cmdline.replace(" clearcpuid=", f" clearcpuid={word.split('=', 1)[1]},", 1)
        else:
            cmdline += " " + word
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as directory:
        uds = os.path.join(directory, "v.sock")
        config = os.path.join(directory, "vsock.toml")
        with open(config, "w") as f:
            f.write('[machine]\nvcpus = 1\nmemory_mib = 256\non_reboot = "exit"\n')
            f.write("[boot]\nkernel = %s\ninitrd = %s\ncmdline = %s\n"
                    % (json.dumps(os.path.abspath(args.kernel)), json.dumps(os.path.abspath(args.initrd)),
                       json.dumps(cmdline)))
            f.write('[hyperv]\nenabled = true\n[vsock]\nuds_path = %s\n' % json.dumps(uds))
        guest = Guest([args.microvmm, "--config", config], args.keep_log or os.path.join(directory, "vmm.log"))
        try:
            # Every listener must be up: an offer to a port nobody listens on is ignored by the
            # guest (hyperv_transport.c hvs_open_connection()) until the VMM's open timeout.
            waiting = {"INIT: vsockbench ready"} | {f"VSOCK: listening port={p}" for p in GUEST_PORTS}
            deadline = time.monotonic() + args.boot_timeout
            while waiting:
                match = guest.wait_for("|".join(re.escape(w) for w in waiting), deadline - time.monotonic())
                if not match:
                    raise RuntimeError(f"the guest never got ready (missing: {sorted(waiting)})")
                waiting.discard(match.group(0))
            log("guest ready")
            if args.hold:
                print(json.dumps({"uds": uds, "pid": guest.proc.pid}), flush=True)
                time.sleep(args.hold)
                return 0
            if args.matrix:
                matrix(uds, args, guest.proc.pid)
                return 0
            hv = measure(uds, args, {"echo": 5000, "sink": 5001, "source": 5002})
        finally:
            guest.stop()
    load_guest = os.getloadavg()
    pair = measure(None, args, None)
    figures, notes = {}, {}
    for prefix, (to_guest, from_guest, rtt) in (("hvsock_guest", hv), ("hvsock_guest.socketpair", pair)):
        figures[f"{prefix}.to_guest_kib_s"] = {"samples": to_guest, "unit": "KiB/s"}
        figures[f"{prefix}.from_guest_kib_s"] = {"samples": from_guest, "unit": "KiB/s"}
        figures[f"{prefix}.rtt_64b_ms"] = {"samples": rtt, "unit": "ms"}
        figures[f"{prefix}.rtt_64b_p90_ms"] = {"value": round(p90(rtt), 4), "unit": "ms"}
    for key in ("to_guest_kib_s", "from_guest_kib_s", "rtt_64b_ms"):
        figures[f"hvsock_guest.ratio.{key}"] = {"ratio_of": [f"hvsock_guest.{key}", f"hvsock_guest.socketpair.{key}"]}
    notes["hvsock_guest.to_guest_kib_s"] = (
        f"1 vCPU, host-initiated, {args.conns} connection(s), {args.size}-byte reads/writes on both ends, "
        f"default rings, {args.runs} runs x {args.seconds:g} s each way, every byte checked; load average "
        f"{load_before[0]:.1f} before, {load_guest[0]:.1f} after; the guest kernel is emulated on this host, "
        f"so these are guest-bound")
    notes["hvsock_guest.rtt_64b_ms"] = f"{args.rtts} round trips of 64 bytes; median here, p90 in rtt_64b_p90_ms"
    notes["hvsock_guest.socketpair.to_guest_kib_s"] = (
        "ceiling: the same Python client code against a forked peer over socket.socketpair() on this host")
    print(json.dumps({"figures": figures, "notes": notes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Guest networking, microvmm netvsc next to QEMU 7.2 microvm + virtio-net (BENCHMARKS.md "net"),
# stdlib only; prints one report in the format of bench/report.hpp on stdout.
#
# Both VMMs boot the same test kernel, initramfs and command line (guest/init mode netbench:
# eth0 at 10.0.2.2/24, TCP 7001 streams zeros, 7002 swallows) with 1 vCPU and 256 MiB, one after
# the other, on the same persistent TAP inside a network namespace this script creates (no
# traffic leaves the machine). microvmm: [[net]] (hv_netvsc over VMBus, its "net" thread on the
# TAP). QEMU: -netdev tap,vhost=off + virtio-net-device (virtio-mmio; QEMU's user-space
# virtio-net back-end on its main loop), via guest/qemu-boot.sh.
# Per VMM, once the guest says "INIT: net ready":
#  * ping: PINGS echo requests host -> guest (busybox ping -i PING_INTERVAL), every RTT a sample;
#  * tcp_to_guest: RUNS connections to 7002, each sends for SECONDS, half-closes and waits for
#    the guest's close (so every byte arrived): bytes / time, KiB/s;
#  * tcp_from_guest: RUNS connections to 7001, each reads for SECONDS: bytes / time, KiB/s.
# On a host whose KVM emulates guest kernel code (this project's test host) both VMMs are
# guest-bound: the figures measure the emulated guest network stack first, the VMM second.
# The VMM's own per-packet cost is bench/netvsc_bench.cpp.
import argparse
import json
import os
import queue
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time

HOST_IP, GUEST_IP = "10.0.2.1", "10.0.2.2"
TAP = "mvbench0"
MAC = "02:15:5d:4e:00:02"
CLONE_NEWNET = 0x40000000
RTT = re.compile(r"time=([0-9.]+) ms")


def log(text):
    print("net: " + text, file=sys.stderr, flush=True)


def sh(*cmd):
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def enter_netns(name):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/run/netns/" + name, os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")
    os.close(fd)


class Guest:
    """One VMM process; its serial console lines (stdout) are collected by a thread."""

    def __init__(self, argv, log_path):
        self.log_file = open(log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log_file, stdin=subprocess.DEVNULL,
                                     text=True, errors="replace")
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, pattern, timeout):
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if line is None:
                return None
            if "INIT: error" in line:
                log("guest: " + line)
            if match := regex.search(line):
                return match

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log_file.close()


def connect(port, timeout):
    deadline = time.monotonic() + 60
    while True:
        try:
            sock = socket.create_connection((GUEST_IP, port), timeout=timeout)
            return sock
        except (ConnectionRefusedError, socket.timeout):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def tcp_to_guest(seconds, timeout):
    chunk = bytes(65536)
    sock = connect(7002, timeout)
    with sock:
        sock.settimeout(timeout)
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < seconds:
            sent += sock.send(chunk)
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass  # The guest's close: everything sent has arrived.
        return sent, time.monotonic() - started


def tcp_from_guest(seconds, timeout):
    sock = connect(7001, timeout)
    with sock:
        sock.settimeout(timeout)
        started = time.monotonic()
        got = 0
        while time.monotonic() - started < seconds:
            data = sock.recv(65536)
            if not data:
                break
            got += len(data)
        return got, time.monotonic() - started


def ping(count, interval):
    result = subprocess.run(["busybox", "ping", "-c", str(count), "-i", str(interval), "-W", "10", GUEST_IP],
                            capture_output=True, text=True)
    return [float(m.group(1)) for m in RTT.finditer(result.stdout)]


class EmulationCounter:
    """perf stat on the VMM process over one transfer: the guest kernel instructions KVM emulated
    (kvm:kvm_emulate_insn; this host emulates guest CPL0 code), the exits to user space and the
    MSIs injected. None where perf or the tracepoints are missing (a host with hardware guest
    kernel execution has no emulated instructions to count)."""

    EVENTS = ("kvm:kvm_emulate_insn", "kvm:kvm_userspace_exit", "kvm:kvm_msi_set_irq")

    def __init__(self, pid):
        self.proc = None
        try:
            self.proc = subprocess.Popen(["perf", "stat", "-x", ",", "-e", ",".join(self.EVENTS), "-p", str(pid)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        except OSError:
            pass

    def stop(self):
        if self.proc is None:
            return None
        self.proc.send_signal(2)
        _, err = self.proc.communicate()
        counts = {}
        for line in err.splitlines():
            fields = line.split(",")
            if len(fields) > 2 and fields[2] in self.EVENTS and fields[0].isdigit():
                counts[fields[2]] = int(fields[0])
        return counts if len(counts) == len(self.EVENTS) else None


def measure(name, guest, args):
    match = guest.wait_for(r"INIT: netbench eth0 driver=(\S+)|INIT: error net", args.boot_timeout)
    if not match or not match.group(1):
        raise RuntimeError(f"{name}: the guest has no eth0")
    driver = match.group(1)
    if not guest.wait_for(r"INIT: net ready", args.boot_timeout):
        raise RuntimeError(f"{name}: the guest never got ready")
    log(f"{name}: guest ready, eth0 driver {driver}")
    ping(2, 0.5)  # ARP and first-touch warm-up.
    rtts = ping(args.pings, args.ping_interval)
    log(f"{name}: ping {len(rtts)}/{args.pings} replies, RTT ms: " + " ".join(f"{r:.1f}" for r in rtts))
    to_guest, from_guest = [], []
    cost = {"to_guest": [], "from_guest": []}  # Emulated guest instructions per KiB moved.

    def counted(direction, transfer):
        counter = EmulationCounter(guest.proc.pid)
        moved, seconds = transfer(args.seconds, args.tcp_timeout)
        counts = counter.stop()
        if counts and moved:
            cost[direction].append(counts["kvm:kvm_emulate_insn"] / (moved / 1024))
            log(f"{name}: {direction}: {counts['kvm:kvm_emulate_insn']} emulated guest instructions "
                f"({cost[direction][-1]:.0f}/KiB), {counts['kvm:kvm_userspace_exit']} exits to the VMM, "
                f"{counts['kvm:kvm_msi_set_irq']} MSIs")
        return moved, seconds

    for run in range(args.runs):
        sent, seconds = counted("to_guest", tcp_to_guest)
        to_guest.append(sent / seconds / 1024)
        log(f"{name}: host -> guest run {run + 1}: {sent} bytes in {seconds:.2f} s = {to_guest[-1]:.1f} KiB/s")
        got, seconds = counted("from_guest", tcp_from_guest)
        from_guest.append(got / seconds / 1024)
        log(f"{name}: guest -> host run {run + 1}: {got} bytes in {seconds:.2f} s = {from_guest[-1]:.1f} KiB/s")
    return driver, rtts, to_guest, from_guest, cost


def microvmm_argv(args, directory, cmdline):
    config = os.path.join(directory, "net.toml")
    with open(config, "w") as f:
        f.write('[machine]\nvcpus = 1\nmemory_mib = 256\non_reboot = "exit"\n')
        f.write("[boot]\nkernel = %s\ninitrd = %s\ncmdline = %s\n"
                % (json.dumps(args.kernel), json.dumps(args.initrd), json.dumps(cmdline)))
        f.write('[hyperv]\nenabled = true\n[[net]]\ntap = "%s"\nmac = "%s"\n' % (TAP, MAC))
    return [args.microvmm, "--config", config]


# virtio-net without its offloads (checksum, TSO/GSO both ways): what a NIC that offloads
# nothing costs the same guest, next to netvsc, which advertises none.
NO_OFFLOADS = ",csum=off,guest_csum=off,gso=off,host_tso4=off,host_tso6=off,host_ecn=off,host_ufo=off," \
              "guest_tso4=off,guest_tso6=off,guest_ecn=off,guest_ufo=off"


def qemu_argv(args, cmdline_extra, offloads=True):
    env_args = f"-netdev tap,id=n0,ifname={TAP},script=no,downscript=no,vhost=off " \
               f"-device virtio-net-device,netdev=n0,mac={MAC}" + ("" if offloads else NO_OFFLOADS)
    os.environ["QEMU_EXTRA_ARGS"] = env_args
    os.environ["GUEST_MEM"] = "256M"
    return [args.qemu_boot, args.kernel, args.initrd, "1"] + shlex.split(cmdline_extra)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--microvmm", required=True)
    parser.add_argument("--kernel", required=True)
    parser.add_argument("--initrd", required=True)
    parser.add_argument("--cmdline-file", required=True)
    parser.add_argument("--qemu-boot", help="guest/qemu-boot.sh; without it only microvmm is measured")
    parser.add_argument("--only", choices=["microvmm", "qemu", "qemu_nooffload"], help="measure one VMM (diagnosis)")
    parser.add_argument("--no-qemu-nooffload", action="store_true", help="skip QEMU without virtio-net offloads")
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_NET_RUNS", 3)))
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_NET_SECONDS", 15)))
    parser.add_argument("--pings", type=int, default=20)
    parser.add_argument("--ping-interval", type=float, default=0.5)
    parser.add_argument("--boot-timeout", type=float, default=300)
    parser.add_argument("--tcp-timeout", type=float, default=300)
    parser.add_argument("--keep-logs", help="directory for the VMMs' logs")
    args = parser.parse_args()
    args.kernel, args.initrd = os.path.abspath(args.kernel), os.path.abspath(args.initrd)
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        print(json.dumps({"figures": {}, "notes": {"net": "needs root and /dev/net/tun (network namespace, TAP)"}}))
        return 1
    with open(args.cmdline_file) as f:
        extra = f" microvmm.test=netbench microvmm.net_ip={GUEST_IP}/24 microvmm.wait=120"
        cmdline = f.read().strip() + extra
    vmms = ["microvmm"] + (["qemu"] if args.qemu_boot else [])
    if args.qemu_boot and not args.no_qemu_nooffload:
        vmms.append("qemu_nooffload")
    if args.only:
        vmms = [args.only]
    namespace = f"microvmm-bench-{os.getpid()}"
    sh("ip", "netns", "add", namespace)
    results = {}
    load = os.getloadavg()
    try:
        enter_netns(namespace)
        sh("ip", "link", "set", "lo", "up")
        sh("ip", "tuntap", "add", "dev", TAP, "mode", "tap")
        sh("ip", "addr", "add", f"{HOST_IP}/24", "dev", TAP)
        sh("ip", "link", "set", TAP, "up")
        with tempfile.TemporaryDirectory() as directory:
            logs = args.keep_logs or directory
            for vmm in vmms:
                if vmm == "microvmm":
                    argv = microvmm_argv(args, directory, cmdline)
                else:
                    argv = qemu_argv(args, extra, offloads=vmm == "qemu")
                guest = Guest(argv, os.path.join(logs, f"{vmm}.log"))
                try:
                    results[vmm] = measure(vmm, guest, args)
                finally:
                    guest.stop()
    finally:
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
    load_after = os.getloadavg()
    figures, notes = {}, {}
    for vmm, (driver, rtts, to_guest, from_guest, cost) in results.items():
        figures[f"net.{vmm}.ping_ms"] = {"samples": rtts, "unit": "ms"}
        figures[f"net.{vmm}.tcp_to_guest_kib_s"] = {"samples": to_guest, "unit": "KiB/s"}
        figures[f"net.{vmm}.tcp_from_guest_kib_s"] = {"samples": from_guest, "unit": "KiB/s"}
        for direction, samples in cost.items():
            key = f"net.{vmm}.guest_insns_per_kib_{direction}"
            if samples:
                figures[key] = {"samples": samples, "unit": "insn/KiB"}
            else:
                figures[key] = {"value": None}
                notes[key] = "not measured: perf or the kvm:kvm_emulate_insn tracepoint unavailable"
        notes[f"net.{vmm}.ping_ms"] = f"guest driver {driver}; {len(rtts)}/{args.pings} replies"
    for other in ("qemu", "qemu_nooffload"):
        if "microvmm" not in results or other not in results:
            continue
        suffix = "" if other == "qemu" else "_vs_nooffload"
        for key in ("tcp_to_guest_kib_s", "tcp_from_guest_kib_s"):
            figures[f"net.ratio.{key}{suffix}"] = {"ratio_of": [f"net.microvmm.{key}", f"net.{other}.{key}"]}
            notes[f"net.ratio.{key}{suffix}"] = f"microvmm / {other} (higher is better for microvmm)"
        figures[f"net.ratio.ping_ms{suffix}"] = {"ratio_of": ["net.microvmm.ping_ms", f"net.{other}.ping_ms"]}
        notes[f"net.ratio.ping_ms{suffix}"] = f"microvmm / {other} (lower is better for microvmm)"
    notes["net.microvmm.tcp_to_guest_kib_s"] = (
        f"1 vCPU, {args.runs} runs x {args.seconds:g} s each way; load average {load[0]:.1f} before, "
        f"{load_after[0]:.1f} after; guest kernel code is emulated on this host, so both VMMs are guest-bound")
    print(json.dumps({"figures": figures, "notes": notes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

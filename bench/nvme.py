#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# NVMe disk I/O from inside the guest, microvmm next to QEMU 7.2's NVMe device (BENCHMARKS.md
# §9), stdlib only. Prints one report in the format of bench/report.hpp on stdout.
#
# Each run boots the test guest in mode `nvmebench` (guest/init) once under each VMM, in turn
# (so load changes hit both alike), with the same vmlinux, initramfs, command line, 1 vCPU and
# memory, and a fresh raw image of the same size and content. The guest runs guest/nvmeload.c:
# 4 KiB O_DIRECT sequential read, sequential write, random read, random write, queue depth 1,
# --seconds each, and prints one line per case (ops, bytes, seconds, IOPS, MB/s, timed by the
# guest's CLOCK_MONOTONIC).
#  * microvmm: `[pci] enabled` and one `[[disk]]` (its NVMe controller, vmm/devices/nvme_disk,
#    io_uring back-end vmm/backends/image_file_backend: buffered I/O, flush = fdatasync).
#  * qemu: guest/qemu-boot.sh (QEMU microvm, the startup baseline) with `pcie=on` and
#    `-device nvme` on `-drive cache=writeback,aio=io_uring`: buffered I/O through the host page
#    cache with flush = fdatasync, as microvmm's back-end does (cache=none would add O_DIRECT on
#    the QEMU side only, and aio=native needs it), and the same io_uring.
# Host CPU per I/O: the host samples every thread of the VMM process (/proc/PID/task/TID/
# schedstat: nanoseconds on a CPU; stat: utime, stime, guest_time) when the guest prints
# "NVME: start case=..." and again at its result line, and divides by the case's operations:
#  * cpu_us_per_io: all threads of the VMM process. Here this includes the vCPU thread's time in
#    the guest, i.e. the emulated guest kernel, so it is dominated by the guest (same kernel on
#    both sides).
#  * io_threads_us_per_io: the threads that are not vCPUs (microvmm: nvme-io and the event
#    loop; QEMU: the main loop, which reaps its io_uring). QEMU handles NVMe doorbell writes on
#    the vCPU thread (ioeventfd off by default) and microvmm through ioeventfds, so only the
#    total compares like for like; the split says where each spends it.
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

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = ("seqread", "seqwrite", "randread", "randwrite")
START = re.compile(r"NVME: start case=(\w+)")
RESULT = re.compile(r"NVME: case=(\w+) ops=(\d+) bytes=(\d+) seconds=([\d.]+) iops=([\d.]+) mbps=([\d.]+) errors=(\d+)")
CLOCKSOURCE = re.compile(r"INIT: clocksource=(\S+)")
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def log(text):
    print("nvme: " + text, file=sys.stderr, flush=True)


def make_image(path, mib):
    """A fresh raw image, every block written (not sparse: reads hit data on both sides) and
    synced, so the first guest flush does not pay for writing it back."""
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


def write_microvmm_config(directory, kernel, initrd, cmdline, memory_mib, image):
    path = os.path.join(directory, "nvme.toml")
    with open(path, "w") as f:
        f.write("[machine]\nvcpus = 1\nmemory_mib = %d\non_reboot = \"exit\"\n" % memory_mib)
        f.write("[boot]\nkernel = %s\ninitrd = %s\ncmdline = %s\n"
                % (json.dumps(kernel), json.dumps(initrd), json.dumps(cmdline)))
        f.write("[pci]\nenabled = true\n")
        f.write("[[disk]]\npath = %s\nserial = \"MVMBENCH\"\n" % json.dumps(image))
    return path


def is_vcpu(name):
    # microvmm names them vcpuN (vmm/vcpu_thread.cpp), QEMU "CPU N/KVM" (-name debug-threads=on).
    return name.startswith("vcpu") or (name.startswith("CPU ") and name.endswith("/KVM"))


def thread_cpu(pid):
    """{tid: (name, on-CPU ns, run-queue wait ns, utime+stime s, guest_time s)} for every thread
    of `pid` (schedstat: time on a CPU, time runnable but waiting for one; sched/stats.c)."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        base = "/proc/%d/task/%s/" % (pid, tid)
        try:
            with open(base + "comm") as f:
                name = f.read().strip()
            with open(base + "schedstat") as f:
                ns, wait_ns = (int(x) for x in f.read().split()[:2])
            with open(base + "stat") as f:
                # Fields after the ")" that ends comm: utime is field 14, stime 15, guest_time
                # 43 (proc(5)), i.e. indexes 11, 12 and 40 of the rest.
                rest = f.read().rsplit(")", 1)[1].split()
            out[tid] = (name, ns, wait_ns, (int(rest[11]) + int(rest[12])) * TICK_S, int(rest[40]) * TICK_S)
        except (OSError, IndexError, ValueError):
            pass  # The thread ended meanwhile.
    return out


def cpu_delta(before, after):
    """(all threads s, non-vCPU threads s, utime+stime s, guest_time s, vCPU run-queue wait s,
    {name: s})."""
    total = own = ticks = guest = vcpu_wait = 0.0
    names = {}
    for tid, (name, ns, wait_ns, st, gt) in after.items():
        _, ns0, wait0, st0, gt0 = before.get(tid, (name, 0, 0, 0.0, 0.0))
        seconds = (ns - ns0) / 1e9
        if is_vcpu(name):
            vcpu_wait += (wait_ns - wait0) / 1e9
        total += seconds
        ticks += st - st0
        guest += gt - gt0
        if not is_vcpu(name):
            own += seconds
        names[name] = names.get(name, 0.0) + seconds
    return total, own, ticks, guest, vcpu_wait, names


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_guest(command, env, timeout_s, transcript):
    """Boots one guest and follows its serial output. Returns {case: {...}} and the clocksource;
    raises RuntimeError if the guest does not finish all cases in time."""
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)
    results, starts = {}, {}
    clocksource = None
    started = booted = time.monotonic()
    deadline = time.monotonic() + timeout_s
    buffer = b""
    try:
        while len(results) < len(CASES):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError("the guest did not finish within %d s (cases done: %s)" % (timeout_s, list(results)))
            ready, _, _ = select.select([proc.stdout], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError("the VMM exited (status %s) after cases %s" % (proc.wait(), list(results)))
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                text = line.decode(errors="replace").rstrip("\r")
                transcript.write(text + "\n")
                now = time.monotonic()
                if "INIT: error" in text or "NVME: error" in text or "Kernel panic" in text:
                    raise RuntimeError("guest: " + text.strip())
                if text.startswith("NVME: device="):
                    booted = now
                if match := CLOCKSOURCE.search(text):
                    clocksource = match.group(1)
                elif match := START.search(text):
                    starts[match.group(1)] = (now, thread_cpu(proc.pid))
                elif match := RESULT.search(text):
                    case = match.group(1)
                    after = thread_cpu(proc.pid)
                    if case not in starts:
                        raise RuntimeError("result of %s without its start line" % case)
                    t0, before = starts[case]
                    total, own, ticks, guest, vcpu_wait, names = cpu_delta(before, after)
                    ops = int(match.group(2))
                    if int(match.group(7)):
                        raise RuntimeError("guest: %s had %s I/O errors" % (case, match.group(7)))
                    results[case] = {
                        "ops": ops, "bytes": int(match.group(3)), "seconds": float(match.group(4)),
                        "iops": float(match.group(5)), "mbps": float(match.group(6)),
                        "host_seconds": now - t0, "cpu_s": total, "io_threads_s": own,
                        "utime_stime_s": ticks, "guest_time_s": guest, "vcpu_wait_s": vcpu_wait,
                        "threads": names, "boot_s": booted - started,
                    }
        return results, clocksource
    finally:
        stop(proc)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--microvmm", required=True)
    parser.add_argument("--kernel", required=True)
    parser.add_argument("--initrd", required=True)
    parser.add_argument("--cmdline-file", required=True)
    parser.add_argument("--qemu-boot", default=os.path.join(HERE, "..", "guest", "qemu-boot.sh"),
                        help="guest/qemu-boot.sh; empty to skip the QEMU baseline")
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_NVME_RUNS", "3")),
                        help="boots per VMM (each about a minute here: boot plus 4 cases)")
    parser.add_argument("--seconds", type=int, default=5, help="seconds per case")
    parser.add_argument("--image-mib", type=int, default=256)
    parser.add_argument("--memory-mib", type=int, default=128, help="guest RAM (128 MiB as in startup.py: less for the emulated kernel to initialise)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per boot, cases included (boots took 3-4 min at load 15)")
    parser.add_argument("--only", choices=("microvmm", "qemu"), help="run one VMM only (debugging)")
    parser.add_argument("--transcript", help="append every serial line here")
    args = parser.parse_args()
    with open(args.cmdline_file) as f:
        cmdline = f.read().strip()
    guest_args = "microvmm.test=nvmebench microvmm.wait=120 microvmm.nvme_seconds=%d" % args.seconds
    kernel, initrd = os.path.abspath(args.kernel), os.path.abspath(args.initrd)
    figures, notes = {}, {}
    transcript = open(args.transcript, "a") if args.transcript else open(os.devnull, "w")

    with tempfile.TemporaryDirectory(prefix="microvmm-nvme-", dir="/var/tmp") as directory:
        image = os.path.join(directory, "disk.img")
        config = write_microvmm_config(directory, kernel, initrd, cmdline + " " + guest_args, args.memory_mib, image)
        vmms = {}
        if args.only in (None, "microvmm"):
            vmms["microvmm"] = ([args.microvmm, "--config", config, "--log-level", "warn"], None)
        if args.only in (None, "qemu") and args.qemu_boot:
            env = dict(os.environ, GUEST_MEM="%dM" % args.memory_mib, QEMU_MACHINE_OPTS=",pcie=on",
                       QEMU_EXTRA_ARGS=" ".join([
                           "-name", "nvmebench,debug-threads=on",
                           "-drive", "file=%s,format=raw,if=none,id=disk0,cache=writeback,aio=io_uring" % image,
                           "-device", "nvme,drive=disk0,serial=MVMBENCH"]))
            vmms["qemu"] = ([args.qemu_boot, kernel, initrd, "1", guest_args], env)
        samples = {name: [] for name in vmms}
        errors, clocksources = {}, {}
        loads = []
        for run in range(args.runs):
            for name, (command, env) in vmms.items():
                if name in errors:
                    continue
                make_image(image, args.image_mib)
                loads.append(open("/proc/loadavg").read().split()[0])
                log("run %d %s (load %s)" % (run + 1, name, loads[-1]))
                transcript.write("=== run %d %s\n" % (run + 1, name))
                try:
                    result, clocksources[name] = run_guest(command, env, args.timeout, transcript)
                except (OSError, RuntimeError) as error:
                    errors[name] = str(error)
                    log("%s: %s" % (name, error))
                    continue
                samples[name].append(result)
                log("  " + ", ".join("%s %.0f IOPS %.1f us CPU/IO" % (c, r["iops"], r["cpu_s"] / r["ops"] * 1e6)
                                     for c, r in result.items()))
    transcript.close()

    for name in ("microvmm", "qemu"):
        runs = samples.get(name, [])
        for case in CASES:
            key = "nvme.%s.%s" % (name, case)
            if not runs:
                why = errors.get(name, "not run (--only)" if name not in vmms else "no run finished")
                for figure in ("iops", "mbps", "cpu_us_per_io", "io_threads_us_per_io"):
                    figures["%s_%s" % (key, figure)] = {"value": None}
                    notes["%s_%s" % (key, figure)] = "not measured: " + why
                continue
            figures[key + "_iops"] = {"samples": [r[case]["iops"] for r in runs], "unit": "IOPS"}
            figures[key + "_mbps"] = {"samples": [r[case]["mbps"] for r in runs], "unit": "MB/s"}
            figures[key + "_cpu_us_per_io"] = {"samples": [r[case]["cpu_s"] / r[case]["ops"] * 1e6 for r in runs],
                                               "unit": "us"}
            figures[key + "_io_threads_us_per_io"] = {
                "samples": [r[case]["io_threads_s"] / r[case]["ops"] * 1e6 for r in runs], "unit": "us"}
            last = runs[-1][case]
            notes[key + "_iops"] = ("4 KiB O_DIRECT, QD1, %d s, guest clock (%s); last run: %d ops in %.3f s "
                                    "guest / %.3f s host" % (args.seconds, clocksources.get(name), last["ops"],
                                                            last["seconds"], last["host_seconds"]))
            notes[key + "_cpu_us_per_io"] = ("all VMM threads' on-CPU time (schedstat) / ops; last run per thread "
                                             "(s): %s; utime+stime %.2f s, guest_time %.2f s; vCPU runnable but waiting for a host CPU "
                                             "%.2f s; boot to the first NVME line %.0f s" % (
                                                 json.dumps({k: round(v, 3) for k, v in last["threads"].items()}),
                                                 last["utime_stime_s"], last["guest_time_s"], last["vcpu_wait_s"],
                                                 last["boot_s"]))
            if name in errors:
                notes[key + "_iops"] += "; only %d runs: then %s" % (len(runs), errors[name])
    for case in CASES:
        for figure in ("iops", "mbps", "cpu_us_per_io", "io_threads_us_per_io"):
            figures["nvme.%s.%s_ratio" % (case, figure)] = {
                "ratio_of": ["nvme.microvmm.%s_%s" % (case, figure), "nvme.qemu.%s_%s" % (case, figure)]}
    figures["nvme.load_average"] = {"samples": [float(x) for x in loads] or [0.0], "unit": "1-min load"}
    notes["nvme.load_average"] = "1-minute load average before each boot"
    print(json.dumps({"figures": figures, "notes": notes}, indent=1))
    return 0 if samples.get("microvmm") or samples.get("qemu") else 1


if __name__ == "__main__":
    sys.exit(main())

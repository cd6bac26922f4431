#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Records one real Linux test-guest boot's VMBus traffic for fuzz seeds (README "Fuzzing"):
# microvmm runs with MICROVMM_RECORD_GUEST_TRAFFIC=OUT (vmm/backends/traffic_recorder.hpp) and
# a guest with Dynamic Memory, the four integration services and a synthetic NIC (on a TAP
# microvmm creates). The guest (mode ic, 192 MiB) binds hv_utils, hv_balloon and hv_netvsc; the
# host then balloons 32 MiB out, gives it back, hot-adds 128 MiB
# and asks the guest to shut down, so the recording holds the DM handshake, status reports,
# balloon, unballoon and hot-add responses, every IC's negotiation and answers, NVSP/RNDIS
# bring-up and the VMBus messages around them. Then run
#   tests/fuzz/traffic_to_corpus.py OUT/guest-traffic-*.bin
# --mode nvme-root records instead a guest with Hyper-V on (no DM) whose root file system is an
# ext4 image on an NVMe disk (as e2e-nvme-root): the NVMe admin bring-up, the reads and writes
# of mounting and using / with their PRP lists, the shutdown, and the guest's synthetic MSR
# writes and hypercalls (fuzz_nvme, fuzz_hyperv_hypercall and fuzz_hyperv_time seeds).
# Needs /dev/kvm, root (TAP, device nodes), mkfs.ext4 and cpio (nvme-root) and the test guest
# (guest/build.sh build/guest).
# Usage: record_traffic.py [--microvmm build/microvmm] [--build-root build] [--mode ic|nvme-root] OUT
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

root = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(root / "tests" / "e2e"))
from e2e import SLOW_GUEST_DM_TIMEOUTS, Run, guest_paths, write_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--microvmm", default=str(root / "build" / "microvmm"))
    parser.add_argument("--build-root", default=str(root / "build"))
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--mode", choices=["ic", "nvme-root"], default="ic")
    parser.add_argument("out")
    args = parser.parse_args()
    args.source_root = str(root)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ["MICROVMM_RECORD_GUEST_TRAFFIC"] = str(out)
    paths = guest_paths(args)
    if args.mode == "nvme-root":
        return record_nvme_root(args, paths)
    with tempfile.TemporaryDirectory() as directory:
        socket = Path(directory) / "api.sock"
        cmdline = paths["cmdline"].read_text().strip() + " microvmm.test=ic microvmm.wait=60"
        extra = ("[dynamic_memory]\nenabled = true\n" + SLOW_GUEST_DM_TIMEOUTS + "[hyperv]\nenabled = true\n"
                 f'[api]\nsocket = "{socket}"\n[integration]\nheartbeat_interval_ms = 1000\n'
                 "time_sync_period_ms = 2000\n[guest_info]\nrecorded = \"yes\"\n"
                 '[[net]]\ntap = "mvrec0"\n')
        config = write_config(Path(directory), {"vcpus": 1, "memory_mib": 192, "max_memory_mib": 448},
                              {"kernel": paths["vmlinux"], "initrd": paths["initramfs"], "cmdline": cmdline}, extra)
        run = Run(args.microvmm, config, args.timeout)

        def ctl(*words: str, timeout: float = 300) -> None:
            result = subprocess.run([args.microvmm, "ctl", "--socket", str(socket), *words], capture_output=True,
                                    text=True, timeout=timeout)
            print(f"ctl {' '.join(words)}: {result.returncode} {result.stdout.strip()} {result.stderr.strip()}",
                  flush=True)

        if not run.wait_for(r"INIT: ic ready"):
            run.process.kill()
            sys.exit("the guest never said INIT: ic ready")
        time.sleep(5)  # Heartbeats, time samples and DM status reports.
        ctl("memory", "set", "160", "--wait")  # Above the safe floor (committed + buffer, at least 128 MiB).
        ctl("memory", "set", "192", "--wait")
        ctl("memory", "set", "320", "--wait")
        time.sleep(3)
        ctl("vm", "shutdown")
        status, _ = run.finish()
        print(f"microvmm exited {status}; recording in {out}")


def record_nvme_root(args, paths) -> None:
    with tempfile.TemporaryDirectory() as directory:
        directory = Path(directory)
        tree, image = directory / "root", directory / "root.img"
        tree.mkdir()
        with open(paths["initramfs"], "rb") as archive:
            subprocess.run([shutil.which("cpio") or "cpio", "-idm", "--quiet"], stdin=archive, cwd=tree, check=True)
        with open(image, "wb") as f:
            f.truncate(32 << 20)
        subprocess.run([shutil.which("mkfs.ext4") or "/sbin/mkfs.ext4", "-q", "-F", "-t", "ext4", "-d", str(tree), str(image)],
                       check=True)
        cmdline = (paths["cmdline"].read_text().strip()
                   + " root=/dev/nvme0n1 rootfstype=ext4 rw rootwait init=/init microvmm.test=nvme-root")
        config = write_config(directory, {"vcpus": 1, "memory_mib": 256},
                              {"kernel": paths["vmlinux"], "cmdline": cmdline},
                              f'[hyperv]\nenabled = true\n[[disk]]\npath = "{image}"\nserial = "ROOT"\n')
        run = Run(args.microvmm, config, args.timeout)
        if not run.wait_for(r"INIT: poweroff"):
            run.process.kill()
            sys.exit("the guest never said INIT: poweroff")
        status, _ = run.finish()
        print(f"microvmm exited {status}; recording in {Path(args.out).resolve()}")


if __name__ == "__main__":
    main()

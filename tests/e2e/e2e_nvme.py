#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# End-to-end tests of [[disk]]: NVMe controllers on PCI over raw image files, with the Linux
# test guest (guest/init modes nvme and nvme-root, guest/nvmet.c). Seccomp is on (the default).
#
# nvme (1 vCPU: two emulated vCPUs spin in lockstep at boot and crawl on a loaded 2-core host;
#   several queues and vectors per disk are covered by vmm_unit's NvmePciFunction tests; 2 disks, two boots):
#   sysfs shows two NVMe functions (vendor/device 1b36:1000, class 010802) and the controllers
#   by serial, with block devices /dev/nvme0n1 and /dev/nvme1n1;
#   the guest reads the host's pattern from the writable disk and writes another (O_DIRECT,
#   O_DSYNC), which the host finds in the image file afterwards;
#   a write to the read_only disk fails in the guest and its file stays byte-identical;
#   the guest streams numbered O_DSYNC blocks and reboots (reboot(2), no sync) after 20 are
#   acknowledged, with the next write in flight: every block it logged as acknowledged is in
#   the file; the second boot (same images, held open and locked across the reboot) reads the
#   first boot's writes back and powers off;
#   GET /metrics has each disk's counters.
# nvme-root: an ext4 image made now from the initramfs's files (mkfs.ext4 -d, e2fsprogs) is
#   the only disk and the guest boots with root=/dev/nvme0n1 and no initramfs: /init reports
#   that / is nvme0n1's ext4.
# Exit status: 0 pass, 1 fail, 77 skip (no /dev/kvm; nvme-root: not root, no mkfs.ext4/cpio).
import hashlib
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e import SKIP, Run, fail, guest_paths, run_cases, write_config  # noqa: E402

BLOCK = 4096


def block(seed: int, number: int) -> bytes:
    """guest/nvmet.c's block: one 64-bit little-endian word (seed << 32 | number), repeated."""
    return struct.pack("<Q", (seed << 32) | number) * (BLOCK // 8)


def api_get(path: Path, url: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(30)
        client.connect(str(path))
        client.sendall(f"GET {url} HTTP/1.1\r\nHost: microvmm\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := client.recv(65536):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[1].decode()


def check_log(log: str) -> None:
    # An unmodified Linux driver never trips the engine's guest-error paths, and every doorbell
    # eventfd registers.
    bad = [line for line in log.splitlines()
           if ("nvme" in line and ("warn" in line or "error" in line)) or "not registered" in line]
    if bad:
        fail(f"microvmm logged NVMe problems with an unmodified Linux guest: {bad[:5]}")


def nvme(args) -> None:
    paths = guest_paths(args)
    with tempfile.TemporaryDirectory() as directory:
        directory = Path(directory)
        rw, ro, api = directory / "rw.img", directory / "ro.img", directory / "api.sock"
        with open(rw, "wb") as f:
            for number in range(8):
                f.write(block(1, number))
            f.truncate(4 << 20)
        ro.write_bytes(os.urandom(1 << 20))
        ro_sha = hashlib.sha256(ro.read_bytes()).hexdigest()
        cmdline = (paths["cmdline"].read_text().strip()
                   + " microvmm.test=nvme microvmm.wait=120 microvmm.nvme_after=20")
        config = write_config(directory, {"vcpus": 1, "memory_mib": 256},
                              {"kernel": paths["vmlinux"], "initrd": paths["initramfs"], "cmdline": cmdline},
                              f'[api]\nsocket = "{api}"\n'
                              f'[[disk]]\npath = "{rw}"\nserial = "RW"\n'
                              f'[[disk]]\npath = "{ro}"\nserial = "RO"\nread_only = true\n')
        run = Run(args.microvmm, config, args.timeout)
        functions = 0
        while functions < 2:
            match = run.expect(r"INIT: pci \S+ vendor=(\S+) device=(\S+) class=(\S+)", "fewer than 2 NVMe functions in sysfs")
            if match.group(3) == "0x010802":
                if (match.group(1), match.group(2)) != ("0x1b36", "0x1000"):
                    fail(f"NVMe function with IDs {match.group(1)}:{match.group(2)}")
                functions += 1
        found = run.expect(r"INIT: nvme rw=(/dev/nvme\dn1) ro=(/dev/nvme\dn1)|INIT: error nvme", "no NVMe block devices")
        if found.group(1) is None or {found.group(1), found.group(2)} != {"/dev/nvme0n1", "/dev/nvme1n1"}:
            fail("the guest did not get /dev/nvme0n1 and /dev/nvme1n1 for serials RW and RO")
        run.expect(r"NVMET: read ok blocks=8", "the guest did not read the host's pattern")
        run.expect(r"NVMET: write ok blocks=8", "the guest's O_DSYNC write failed")
        refused = run.expect(r"NVMET: write (\S+)", "no result of the read-only write")
        if refused.group(1) != "error":
            fail("a write to the read_only disk succeeded in the guest")
        print(f"read-only disk: the guest's write failed ({run.lines[run.cursor - 1][1]})", flush=True)
        run.expect(r"NVMET: stream reboot acked=\d+", "the stream did not reach its reboot")
        run.expect(r"INIT: nvme second boot", "no second boot seeing the stream's marker")
        acked = [int(m.group(1)) for _, line in run.lines
                 if (m := re.search(r"NVMET: stream acked block=(\d+)", line))]
        run.expect(r"NVMET: read ok blocks=8", "the second boot could not read the first boot's writes")
        metrics = api_get(api, "/metrics")
        for disk, serial in ((0, "RW"), (1, "RO")):
            if f'microvmm_disk_read_commands_total{{disk="{disk}",serial="{serial}"}}' not in metrics:
                fail(f"/metrics lacks disk {disk}'s counters")
        written = re.search(r'microvmm_disk_write_bytes_total\{disk="0",serial="RW"\} (\d+)', metrics)
        if not written or int(written.group(1)) < (8 + len(acked)) * BLOCK:
            fail(f"/metrics: disk 0 wrote {written and written.group(1)} bytes, expected >= {(8 + len(acked)) * BLOCK}")
        run.expect(r"INIT: poweroff", "the second boot did not power off")
        status, log = run.finish()
        if status != 0:
            fail(f"microvmm exited with {status}")
        check_log(log)
        data = rw.read_bytes()
        at = lambda number: data[number * BLOCK:(number + 1) * BLOCK]  # noqa: E731
        if any(at(n) != block(1, n) for n in range(8)):
            fail("the host's pattern (blocks 0-7) changed")
        if any(at(n) != block(2, n) for n in range(16, 24)):
            fail("the guest's pattern (blocks 16-23) is not in the image file")
        if len(acked) < 20:
            fail(f"only {len(acked)} acknowledged stream blocks")
        lost = [n for n in acked if at(n) != block(4, n)]
        if lost:
            fail(f"{len(lost)} of {len(acked)} acknowledged blocks are not in the file after the reboot: {lost[:10]}")
        print(f"reboot mid-stream: all {len(acked)} acknowledged blocks ({acked[0]}-{acked[-1]}) are in the file", flush=True)
        if hashlib.sha256(ro.read_bytes()).hexdigest() != ro_sha:
            fail("the read_only image changed")


def nvme_root(args) -> None:
    mkfs, cpio = shutil.which("mkfs.ext4") or "/sbin/mkfs.ext4", shutil.which("cpio")
    if os.geteuid() != 0 or not Path(mkfs).exists() or not cpio:
        print("SKIP: needs root (device nodes), mkfs.ext4 (e2fsprogs) and cpio")
        sys.exit(SKIP)
    paths = guest_paths(args)
    with tempfile.TemporaryDirectory() as directory:
        directory = Path(directory)
        tree, image = directory / "root", directory / "root.img"
        tree.mkdir()
        with open(paths["initramfs"], "rb") as archive:
            subprocess.run([cpio, "-idm", "--quiet"], stdin=archive, cwd=tree, check=True)
        with open(image, "wb") as f:
            f.truncate(32 << 20)
        subprocess.run([mkfs, "-q", "-F", "-t", "ext4", "-d", str(tree), str(image)], check=True)
        cmdline = (paths["cmdline"].read_text().strip()
                   + " root=/dev/nvme0n1 rootfstype=ext4 rw rootwait init=/init microvmm.test=nvme-root")
        # 2 vCPUs: the driver must get one I/O queue pair per vCPU (the other case keeps 1 vCPU:
        # two emulated vCPUs boot slowly on a loaded 2-core host).
        config = write_config(directory, {"vcpus": 2, "memory_mib": 256},
                              {"kernel": paths["vmlinux"], "cmdline": cmdline},
                              f'[[disk]]\npath = "{image}"\nserial = "ROOT"\n')
        run = Run(args.microvmm, config, args.timeout)
        root = run.expect(r"INIT: nvme root=(\S+) type=(\S+) nvme0n1=(\S+) io_queues=(\d+)", "init did not report its root")
        if root.group(2) != "ext4" or root.group(1) != root.group(3):
            fail(f"/ is {root.group(1)} ({root.group(2)}), not nvme0n1 ({root.group(3)}) as ext4")
        if int(root.group(4)) != 2:
            fail(f"the guest has {root.group(4)} NVMe I/O queues with 2 vCPUs, wanted one per vCPU")
        run.expect(r"INIT: poweroff", "no poweroff")
        status, log = run.finish()
        if status != 0:
            fail(f"microvmm exited with {status}")
        check_log(log)
        print(f"root on NVMe: / is {root.group(1)} = nvme0n1, ext4; {root.group(4)} I/O queues for 2 vCPUs", flush=True)


CASES = {"nvme": nvme, "nvme-root": nvme_root}


def main() -> None:
    run_cases(CASES, default_timeout=1700)


if __name__ == "__main__":
    main()

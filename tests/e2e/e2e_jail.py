#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# End-to-end test of `microvmm jail` (vmm/jail/, docs/jailer.md), one boot of the Linux test
# guest: the VMM runs as an unprivileged uid with no capabilities, as PID 1 of its own PID
# namespace, in its own mount/IPC/UTS/network namespaces, and sees only the jail's files and its
# own process; the REST API works through the socket in the jail directory; the cgroup holds the
# limits sized from the configuration, and a DM hot-add to the maximum stays under the memory
# limit (no failcnt, no OOM kill); SIGTERM stops it and the jail directory and cgroup go away.
# Exit status: 0 pass, 1 fail, 77 skip (not root, no /dev/kvm, or no cgroup memory/cpu/pids).
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e import SKIP, SLOW_GUEST_DM_TIMEOUTS, fail, guest_paths, run_cases, write_config  # noqa: E402

UID = GID = 10017  # Unnamed on purpose: owns nothing on the host.
CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_dirs(vm_id: str) -> dict[str, Path] | None:
    """The VM's cgroup directory per controller (v1), or for all (v2); None if neither is usable."""
    controllers = CGROUP_ROOT / "cgroup.controllers"
    if controllers.exists() and {"memory", "cpu", "pids"} <= set(controllers.read_text().split()):
        d = CGROUP_ROOT / "microvmm" / vm_id
        return {"memory": d, "cpu": d, "pids": d, "version": 2}
    if all((CGROUP_ROOT / c).is_dir() for c in ("memory", "cpu", "pids")):
        return {c: CGROUP_ROOT / c / "microvmm" / vm_id for c in ("memory", "cpu", "pids")} | {"version": 1}
    return None


class Jail:
    """The jailer process: serial lines from stdout, log lines (the jailer's and microvmm's) from stderr."""

    def __init__(self, command: list[str]):
        self.start = time.monotonic()
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        errors="replace")
        self.serial: list[str] = []
        self.log: list[str] = []
        self.lock = threading.Lock()
        for pipe, sink, tag in ((self.process.stdout, self.serial, ""), (self.process.stderr, self.log, "log: ")):
            threading.Thread(target=self._read, args=(pipe, sink, tag), daemon=True).start()

    def _read(self, pipe, sink, tag):
        for line in pipe:
            with self.lock:
                sink.append(line.rstrip("\n"))
            print(f"[{time.monotonic() - self.start:7.2f}] {tag}{line.rstrip()}", flush=True)

    def find(self, lines: list[str], pattern: str, timeout: float) -> re.Match | None:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                match = next((m for line in lines for m in [re.search(pattern, line)] if m), None)
            if match or time.monotonic() > deadline or self.process.poll() is not None:
                return match
            time.sleep(0.2)

    def last(self, pattern: str) -> re.Match | None:
        with self.lock:
            return next((m for line in reversed(self.serial) for m in [re.search(pattern, line)] if m), None)


def status_fields(pid: int) -> dict[str, str]:
    return dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)


def jail(args) -> None:
    if os.geteuid() != 0:
        print("SKIP: the jailer needs root")
        sys.exit(SKIP)
    vm_id = f"e2e-{os.getpid()}"
    cgroups = cgroup_dirs(vm_id)
    if cgroups is None:
        print("SKIP: no cgroup v2 with memory/cpu/pids and no v1 memory, cpu and pids hierarchies")
        sys.exit(SKIP)
    paths = guest_paths(args)
    with tempfile.TemporaryDirectory() as directory:
        directory = Path(directory)
        cmdline = paths["cmdline"].read_text().strip() + " microvmm.test=balloon microvmm.dirty_mib=0 microvmm.interval=2"
        config = write_config(directory, {"vcpus": 1, "memory_mib": 256, "max_memory_mib": 512, "on_reboot": "exit"},
                              {"kernel": paths["vmlinux"], "initrd": paths["initramfs"], "cmdline": cmdline},
                              "[dynamic_memory]\nenabled = true\n" + SLOW_GUEST_DM_TIMEOUTS + "[hyperv]\nenabled = true\n")
        base = directory / "jails"
        run = Jail([args.microvmm, "jail", "--id", vm_id, "--uid", str(UID), "--gid", str(GID), "--config", str(config),
                    "--chroot-base-dir", str(base), "--new-netns"])

        def stop(message: str):
            run.process.kill()
            run.process.wait()
            fail(message)

        started = run.find(run.log, r"microvmm jail: vm \S+ pid (\d+) root (\S+)", 30)
        socket_line = run.find(run.log, r"microvmm jail: api socket (\S+)", 5)
        if not started or not socket_line:
            stop("the jailer did not report the VMM's pid, root and API socket")
        pid, root, socket = int(started.group(1)), Path(started.group(2)), socket_line.group(1)
        if root != base / "microvmm" / vm_id / "root" or socket != str(root / "run" / "api.sock"):
            stop(f"unexpected jail layout: root {root}, socket {socket}")
        if not run.find(run.serial, r"INIT: up", args.timeout / 3):
            stop("no 'INIT: up' from the jailed guest")

        # Identity: the uid/gid, no supplementary groups, no capabilities, no_new_privs, PID 1.
        fields = status_fields(pid)
        print({k: fields[k].strip() for k in ("Uid", "Gid", "Groups", "NSpid", "CapEff", "CapPrm", "NoNewPrivs")},
              flush=True)
        if fields["Uid"].split() != [str(UID)] * 4 or fields["Gid"].split() != [str(GID)] * 4:
            stop(f"the VMM runs as Uid {fields['Uid']} Gid {fields['Gid']}")
        if fields["Groups"].strip() or int(fields["CapEff"], 16) or int(fields["CapPrm"], 16):
            stop(f"groups/capabilities left: {fields['Groups']} {fields['CapEff']} {fields['CapPrm']}")
        if fields["NoNewPrivs"].strip() != "1":
            stop("no_new_privs is not set")
        if fields["NSpid"].split() != [str(pid), "1"]:
            stop(f"the VMM is not PID 1 of its own PID namespace: NSpid {fields['NSpid']}")
        # Namespaces: all new, the network one too (--new-netns).
        for ns in ("mnt", "pid", "ipc", "uts", "net"):
            if os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/self/ns/{ns}"):
                stop(f"the VMM shares the host's {ns} namespace")
        # Files: its root is the jail, which holds only what the VM needs; none of the host's.
        seen = sorted(os.listdir(f"/proc/{pid}/root"))
        print(f"the VMM's / : {seen}", flush=True)
        if seen != sorted(["boot", "dev", "disk", "microvmm", "proc", "run", "vm.toml"]):
            stop(f"the VMM's root holds {seen}")
        for host_path in ("etc/passwd", "usr", "home", "work", "tmp"):
            if os.path.exists(f"/proc/{pid}/root/{host_path}"):
                stop(f"the VMM can see the host's /{host_path}")
        dev = sorted(os.listdir(f"/proc/{pid}/root/dev"))
        if dev != ["kvm"]:
            stop(f"the jail's /dev holds {dev}")
        # Processes: its /proc shows its own PID namespace, i.e. only itself.
        pids = sorted(e for e in os.listdir(f"/proc/{pid}/root/proc") if e.isdigit())
        if pids != ["1"]:
            stop(f"the VMM can see processes {pids}")
        mounts = Path(f"/proc/{pid}/mountinfo").read_text()
        if not re.search(r" / ro,nosuid,nodev,noexec", mounts) or not re.search(r" /boot/kernel ro,", mounts):
            stop(f"the jail's root or kernel is not mounted read-only:\n{mounts}")
        # The jail's mounts never reach the host's mount table.
        if str(root) in Path("/proc/self/mountinfo").read_text():
            stop("a jail mount is visible on the host")

        # The cgroup: limits sized from the configuration, the VMM inside.
        memory_dir = cgroups["memory"]
        if cgroups["version"] == 1:
            limit = int((memory_dir / "memory.limit_in_bytes").read_text())
            quota = (cgroups["cpu"] / "cpu.cfs_quota_us").read_text().strip()
        else:
            limit = int((memory_dir / "memory.max").read_text())
            quota = (cgroups["cpu"] / "cpu.max").read_text().split()[0]
        pids_max = (cgroups["pids"] / "pids.max").read_text().strip()
        print(f"cgroup v{cgroups['version']}: memory limit {limit >> 20} MiB, cpu quota {quota}, pids.max {pids_max}",
              flush=True)
        # 512 MiB maximum + 32 MiB + 4 MiB per GiB (vmm/jail/jail_options.hpp); 2 CPUs; 1 + 64 pids.
        if limit != (512 + 36) << 20 or quota != "200000" or pids_max != "65":
            stop("cgroup limits differ from the configuration's")
        for controller in ("memory", "cpu", "pids"):
            if str(pid) not in (cgroups[controller] / "cgroup.procs").read_text().split():
                stop(f"the VMM is not in its {controller} cgroup")

        # The API through the socket in the jail directory.
        def ctl(*words: str, timeout: float = 60) -> subprocess.CompletedProcess:
            return subprocess.run([args.microvmm, "ctl", "--socket", socket, *words], capture_output=True, text=True,
                                  timeout=timeout)

        vm = ctl("vm", "get")
        if vm.returncode != 0 or json.loads(vm.stdout).get("state") != "running":
            stop(f"`microvmm ctl vm get` through the jail's socket: {vm.returncode} {vm.stdout} {vm.stderr}")
        deadline = time.monotonic() + args.timeout / 2
        while not json.loads(ctl("memory", "get").stdout or "{}").get("dm", {}).get("connected"):
            if time.monotonic() > deadline or run.process.poll() is not None:
                stop("the guest's DM driver never connected")
            time.sleep(1)
        boot_total = run.find(run.serial, r"MEM: total_kib=(\d+)", 120)
        if not boot_total:
            stop("no MEM: line from the guest")
        boot_total = int(boot_total.group(1))

        # Hot-add to the maximum: the guest gets it, the cgroup stays under its limit.
        hot_add = ctl("memory", "set", "512", "--wait", "--timeout-ms", "300000", timeout=330)
        print(f"memory set 512: {hot_add.returncode} {hot_add.stdout.strip()} {hot_add.stderr.strip()}", flush=True)
        if hot_add.returncode != 0:
            stop("the hot-add to 512 MiB failed")
        deadline = time.monotonic() + 120
        while (m := run.last(r"MEM: total_kib=(\d+)")) is None or int(m.group(1)) < boot_total + 200 * 1024:
            if time.monotonic() > deadline:
                stop(f"MemTotal did not grow by 200 MiB from {boot_total} KiB")
            time.sleep(1)
        grown = int(run.last(r"MEM: total_kib=(\d+)").group(1))
        if cgroups["version"] == 1:
            peak = int((memory_dir / "memory.max_usage_in_bytes").read_text())
            failcnt = int((memory_dir / "memory.failcnt").read_text())
            oom_kills = int(re.search(r"oom_kill (\d+)", (memory_dir / "memory.oom_control").read_text()).group(1))
        else:
            peak_file = memory_dir / "memory.peak"
            peak = int(peak_file.read_text()) if peak_file.exists() else int((memory_dir / "memory.current").read_text())
            events = (memory_dir / "memory.events").read_text()
            failcnt = int(re.search(r"max (\d+)", events).group(1))
            oom_kills = int(re.search(r"oom_kill (\d+)", events).group(1))
        shmem_kib = int(re.search(r"RssShmem:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))
        print(f"after hot-add: MemTotal {boot_total} -> {grown} KiB; cgroup peak {peak / 2**20:.1f} MiB of "
              f"{limit >> 20} MiB; guest RAM resident {shmem_kib / 1024:.1f} MiB, so the VMM's own use is "
              f"{(peak - shmem_kib * 1024) / 2**20:.1f} MiB; failcnt {failcnt}, oom_kill {oom_kills}", flush=True)
        if peak >= limit or failcnt or oom_kills or run.process.poll() is not None:
            stop("the hot-add hit the cgroup memory limit")

        # SIGTERM to the jailer reaches the VMM; the jail directory and cgroup are removed.
        run.process.send_signal(signal.SIGTERM)
        try:
            status = run.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stop("the jailer did not stop within 60 s of SIGTERM")
        time.sleep(0.5)
        print(f"jailer exit status {status}", flush=True)
        if status != 128 + signal.SIGTERM:
            fail(f"exit status {status} after SIGTERM (expected {128 + signal.SIGTERM})")
        if (base / "microvmm" / vm_id).exists():
            fail("the jail directory was left behind")
        if any(cgroups[c].exists() for c in ("memory", "cpu", "pids")):
            fail("the cgroup was left behind")


def bad_options(args) -> None:
    """Every bad option is refused with exit 2 and one line naming it, before the host changes."""
    cases = [
        (["--id", "a/b", "--uid", "1", "--gid", "1", "--config", "x"], "--id"),
        (["--id", "a", "--uid", "0", "--gid", "1", "--config", "x"], "--allow-root"),
        (["--id", "a", "--uid", "-3", "--gid", "1", "--config", "x"], "--uid"),
        (["--id", "a", "--uid", "1", "--gid", "1", "--config", "/nonexistent.toml"], "/nonexistent.toml"),
    ]
    if os.geteuid() == 0:
        # Checks that need root: run only as root (the jailer refuses anything else first).
        tiny = Path(tempfile.mkdtemp(prefix="jail-bad-"))
        subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "tiny_pvh_kernel.py"),
                        str(tiny / "k.elf"), "TINY: x", "poweroff"], check=True)
        (tiny / "vm.toml").write_text('[machine]\nmemory_mib = 64\n[boot]\nkernel = "k.elf"\n')
        common = ["--uid", "1", "--gid", "1", "--config", str(tiny / "vm.toml"), "--chroot-base-dir", str(tiny / "j")]
        cases += [
            (["--id", "a", *common, "--netns", "/etc/passwd"], "not a network namespace"),
            (["--id", "a", *common, "--netns", "/nonexistent"], "--netns"),
            (["--id", "a", *common, "--cgroup-root", str(tiny)], "--no-cgroup"),
            (["--id", "a", "--uid", "1", "--gid", "1", "--config", str(tiny / "vm.toml"), "--chroot-base-dir",
              "/" + "x" * 100], "--chroot-base-dir"),
        ]
    for words, needle in cases:
        result = subprocess.run([args.microvmm, "jail", *words], capture_output=True, text=True, timeout=30)
        print(f"{words}: {result.returncode} {result.stderr.strip()}", flush=True)
        if result.returncode != 2 or needle not in result.stderr or len(result.stderr.strip().splitlines()) != 1:
            fail(f"`microvmm jail {' '.join(words)}` should exit 2 with one line naming {needle}")
    if os.geteuid() == 0:
        if (tiny / "j").exists() and any((tiny / "j").rglob("*")):
            fail(f"a refused jail left files: {list((tiny / 'j').rglob('*'))}")
        subprocess.run(["rm", "-rf", str(tiny)], check=True)


CASES = {"jail": jail, "jail-bad-options": bad_options}


def main() -> None:
    run_cases(CASES, default_timeout=900, kvm_free=("jail-bad-options",))


if __name__ == "__main__":
    main()

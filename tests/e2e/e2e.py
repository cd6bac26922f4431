#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# End-to-end tests of the microvmm binary: boots the Linux test guest (build/guest) and a
# tiny PVH kernel written on the fly, and checks serial output and exit statuses.
# Exit status: 0 pass, 1 fail, 77 skip (meson's skip code; only when /dev/kvm is absent).
import argparse
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKIP = 77


# [dynamic_memory] reply timeouts for the test guest: its kernel code may run emulated (a few
# ms per page it touches), so 64 Ki unballooned pages or onlining a 128 MiB block take longer
# than the engine's defaults (sized for real hardware). A late reply only delays failure
# detection, so the tests wait generously.
SLOW_GUEST_DM_TIMEOUTS = "balloon_reply_timeout_ms = 120000\nunballoon_reply_timeout_ms = 120000\nhot_add_reply_timeout_ms = 60000\nhot_add_reply_timeout_per_block_ms = 60000\n"


def fail(message: str) -> None:
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def write_config(directory: Path, machine: dict, boot: dict, extra: str = "") -> Path:
    lines = ["[machine]"]
    for key, value in machine.items():
        lines.append(f"{key} = {value!r}".replace("'", '"'))
    lines.append("[boot]")
    for key, value in boot.items():
        lines.append(f'{key} = "{value}"')
    path = directory / "vm.toml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


class Run:
    """One microvmm process; serial output (stdout) and log (stderr) are kept with timestamps.
    Reader threads drain both pipes, so every wait honours the deadline even when the guest
    prints nothing (a blocking readline would wait for meson's own timeout instead)."""

    def __init__(self, microvmm: str, config: Path, timeout: float):
        self.start = time.monotonic()
        self.process = subprocess.Popen([microvmm, "--config", str(config)], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, errors="replace")
        self.timeout = timeout
        self.lines: list[tuple[float, str]] = []
        self.cursor = 0  # Lines before it were consumed by earlier matches.
        self._serial: queue.Queue[str | None] = queue.Queue()  # None: stdout closed.
        self._log: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(self.process.stdout, self._serial.put), daemon=True),
                         threading.Thread(target=self._read, args=(self.process.stderr, self._log.append), daemon=True)]
        for reader in self._readers:
            reader.start()
        self._eof = False

    @staticmethod
    def _read(pipe, sink) -> None:
        for line in pipe:
            sink(line)
        sink(None)

    def _remaining(self) -> float:
        return self.timeout - (time.monotonic() - self.start)

    def _take(self, timeout: float) -> str | None:
        """The next serial line, or None at EOF or when `timeout` passes first."""
        if self._eof:
            return None
        try:
            line = self._serial.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        if line is None:
            self._eof = True
            return None
        self.lines.append((time.monotonic() - self.start, line.rstrip("\n")))
        print(f"[{self.lines[-1][0]:7.2f}] {self.lines[-1][1]}", flush=True)
        return line

    def wait_for(self, pattern: str) -> re.Match | None:
        """Reads serial lines until one after the last match matches `pattern` (None at EOF/timeout)."""
        regex = re.compile(pattern)
        while True:
            while self.cursor < len(self.lines):
                line = self.lines[self.cursor][1]
                self.cursor += 1
                if match := regex.search(line):
                    return match
            if self._remaining() <= 0 or self._take(self._remaining()) is None:
                return None

    def expect(self, pattern: str, what: str) -> re.Match:
        """wait_for, or stop microvmm and fail with `what` (its log printed)."""
        match = self.wait_for(pattern)
        if not match:
            self.process.kill()
            self.finish()
            fail(what)
        return match

    def finish(self) -> tuple[int, str]:
        try:
            self.process.wait(timeout=max(1.0, self._remaining()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            self._drain()
            print("".join(line for line in self._log if line), flush=True)
            fail(f"microvmm still running after {self.timeout} s")
        self._drain()
        err = "".join(line for line in self._log if line)
        print(err, end="", flush=True)
        return self.process.returncode, err

    def next_serial_line(self) -> str | None:
        """For a caller that keeps its own copy of the lines: the next one (blocking), None at EOF."""
        line = None if self._eof else self._serial.get()
        if line is None:
            self._eof = True
            return None
        return line.rstrip("\n")

    def _drain(self) -> None:
        for reader in self._readers:
            reader.join(timeout=10)
        while self._take(0) is not None:
            pass

    def first_time(self, pattern: str) -> float | None:
        regex = re.compile(pattern)
        return next((t for t, line in self.lines if regex.search(line)), None)


def guest_paths(args) -> dict[str, Path]:
    guest = Path(args.build_root).resolve() / "guest"
    paths = {"vmlinux": guest / "vmlinux", "bzImage": guest / "bzImage",
             "initramfs": guest / "initramfs.cpio", "cmdline": Path(args.source_root).resolve() / "guest" / "cmdline.txt"}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        fail("guest artifacts missing (run `make guest`): " + ", ".join(missing))
    return paths


def linux_boot(args, kernel: str, vcpus: int, memory_mib: int, pci: bool = False) -> None:
    paths = guest_paths(args)
    cmdline = paths["cmdline"].read_text().strip() + " microvmm.test=boot"
    with tempfile.TemporaryDirectory() as directory:
        config = write_config(Path(directory), {"vcpus": vcpus, "memory_mib": memory_mib, "on_reboot": "exit"},
                              {"kernel": paths[kernel], "initrd": paths["initramfs"], "cmdline": cmdline},
                              "[pci]\nenabled = true\n" if pci else "")
        run = Run(args.microvmm, config, args.timeout)
        if not run.wait_for(r"INIT: up"):
            run.finish()
            fail("no 'INIT: up' on the serial console")
        cpus = run.wait_for(r"INIT: cpus[=: ]+(\d+)")
        if not cpus or int(cpus.group(1)) != vcpus:
            run.finish()
            fail(f"expected INIT: cpus={vcpus}, got {cpus.group(0) if cpus else 'nothing'}")
        memtotal = run.wait_for(r"INIT: memtotal_kib[=: ]+(\d+)")
        if not memtotal:
            run.finish()
            fail("no 'INIT: memtotal_kib' line")
        kib = int(memtotal.group(1))
        # MemTotal is RAM minus the kernel image and reservations: well above half, never above RAM.
        if not (memory_mib * 1024 // 2 < kib <= memory_mib * 1024):
            run.finish()
            fail(f"memtotal_kib={kib} is implausible for {memory_mib} MiB")
        status, log = run.finish()
        if status != 0:
            fail(f"microvmm exited with {status} after the guest's poweroff (expected 0)")
        if "guest stopped: poweroff" not in log:
            fail("microvmm did not log the guest poweroff")
        if pci:
            check_pci_root([line for _, line in run.lines])
        first_kvm_run = re.search(r"first KVM_RUN (\d+) ms", log)
        print(f"TIMING: kernel={kernel} vcpus={vcpus} first_kvm_run_ms={first_kvm_run.group(1) if first_kvm_run else '?'} "
              f"first_init_line_s={run.first_time(r'INIT:'):.2f} exit_s={time.monotonic() - run.start:.2f}", flush=True)


def check_pci_root(serial: list[str]) -> None:
    """The guest found the host bridge 0:0.0 and used the MCFG's ECAM (guest/init pci_report):
    its sysfs identity, a 4 KiB config space (extended config space is reachable only through
    ECAM), and the kernel's own MMCONFIG lines without a refusal."""
    text = "\n".join(serial)
    bridge = "INIT: pci 0000:00:00.0 vendor=0x1b36 device=0x0008 class=0x060000 config_bytes=4096"
    if bridge not in text:
        fail(f"no '{bridge}' line: the guest did not enumerate the host bridge through ECAM")
    mmconfig = "PCI: MMCONFIG for domain 0000 [bus 00-00] at [mem 0xe0000000-0xe00fffff]"
    if mmconfig not in text:
        fail(f"no '{mmconfig}' kernel line: the MCFG was not used")
    for refusal in ("not using MMCONFIG", "not reserved in ACPI motherboard resources"):
        if refusal in text:
            fail(f"the kernel said '{refusal}'")
    if "PNP0A08:00" not in text:
        fail("no PNP0A08:00 line: the ACPI PCI root was not bound")
    print("PCI: host bridge 1b36:0008 class 060000 via ECAM, MCFG accepted", flush=True)


def tiny_kernel(directory: Path, message: str, action: str) -> Path:
    path = directory / f"tiny-{action}.elf"
    subprocess.run([sys.executable, str(HERE / "tiny_pvh_kernel.py"), str(path), message, action], check=True)
    return path


def tiny_poweroff(args) -> None:
    with tempfile.TemporaryDirectory() as directory:
        kernel = tiny_kernel(Path(directory), "TINY: hello", "poweroff")
        config = write_config(Path(directory), {"vcpus": 2, "memory_mib": 64}, {"kernel": kernel})
        run = Run(args.microvmm, config, 30)
        if not run.wait_for(r"^TINY: hello$"):
            run.finish()
            fail("tiny kernel output missing")
        status, _ = run.finish()
        if status != 0:
            fail(f"exit status {status} after ACPI S5 (expected 0)")


def tiny_reset(args) -> None:
    with tempfile.TemporaryDirectory() as directory:
        kernel = tiny_kernel(Path(directory), "TINY: booted", "reset")
        # on_reboot = "reset": a fresh machine boots again; SIGTERM then ends it with 143.
        config = write_config(Path(directory), {"vcpus": 1, "memory_mib": 64, "on_reboot": "reset"}, {"kernel": kernel})
        run = Run(args.microvmm, config, 30)
        boots = 0
        while boots < 3 and run.wait_for(r"^TINY: booted$"):
            boots += 1
        run.process.send_signal(signal.SIGTERM)
        status, log = run.finish()
        if boots < 3:
            fail(f"expected at least 3 boots with on_reboot = reset, saw {boots}")
        if status != 128 + signal.SIGTERM:
            fail(f"exit status {status} after SIGTERM (expected 143)")
        # on_reboot = "exit": the first reset ends microvmm with 0.
        config = write_config(Path(directory), {"vcpus": 1, "memory_mib": 64, "on_reboot": "exit"}, {"kernel": kernel})
        run = Run(args.microvmm, config, 30)
        status, log = run.finish()
        if status != 0 or "on_reboot" not in log:
            fail(f"on_reboot = exit: status {status}, log {log!r}")


def bad_config(args) -> None:
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "vm.toml"
        config.write_text("[machine]\nvcpus = 1\nmemroy_mib = 64\n[boot]\nkernel = \"x\"\n")
        result = subprocess.run([args.microvmm, "--config", str(config)], capture_output=True, text=True, timeout=30)
        if result.returncode != 2 or "machine.memroy_mib" not in result.stderr:
            fail(f"typo: status {result.returncode}, stderr {result.stderr!r}")
        if len(result.stderr.strip().splitlines()) != 1:
            fail(f"a config error must be one line: {result.stderr!r}")
        result = subprocess.run([args.microvmm, "--no-such-flag"], capture_output=True, text=True, timeout=30)
        if result.returncode != 2:
            fail(f"unknown flag: status {result.returncode}")


def silent_guest(args) -> None:
    """The harness itself: a guest that prints one line and then nothing must not hold
    wait_for() past the Run's timeout (it used to block in readline until meson's 600 s)."""
    with tempfile.TemporaryDirectory() as directory:
        kernel = tiny_kernel(Path(directory), "TINY: idle", "idle")
        config = write_config(Path(directory), {"vcpus": 1, "memory_mib": 64}, {"kernel": kernel})
        run = Run(args.microvmm, config, 3)
        if not run.wait_for(r"^TINY: idle$"):
            run.process.kill()
            run.finish()
            fail("the tiny kernel did not start")
        began = time.monotonic()
        if run.wait_for(r"never printed") is not None:
            fail("matched a line the guest never printed")
        waited = time.monotonic() - began
        run.process.send_signal(signal.SIGTERM)
        run.finish()
        if waited > 10:
            fail(f"wait_for returned {waited:.1f} s after the start, past the 3 s timeout")


CASES = {
    # With [pci] enabled: the host bridge enumerated through ECAM (check_pci_root).
    "linux-vmlinux-1vcpu": lambda a: linux_boot(a, "vmlinux", 1, 256, pci=True),
    "linux-vmlinux-2vcpu": lambda a: linux_boot(a, "vmlinux", 2, 512),
    "linux-bzimage-1vcpu": lambda a: linux_boot(a, "bzImage", 1, 256),
    "tiny-poweroff": tiny_poweroff,
    "tiny-reset": tiny_reset,
    "bad-config": bad_config,
    "silent-guest": silent_guest,
}


def run_cases(cases, default_timeout: float, kvm_free=()) -> None:
    """Shared command line of the e2e scripts: runs one named case; skips (77) only when
    /dev/kvm is missing and the case needs it."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--microvmm", required=True)
    parser.add_argument("--source-root", required=True)
    parser.add_argument("--build-root", required=True)
    parser.add_argument("--timeout", type=float, default=default_timeout)
    parser.add_argument("case", choices=cases)
    args = parser.parse_args()
    if args.case not in kvm_free and not os.path.exists("/dev/kvm"):
        print("SKIP: /dev/kvm does not exist")
        sys.exit(SKIP)
    cases[args.case](args)
    print("PASS")


def main() -> None:
    run_cases(CASES, default_timeout=540, kvm_free=("bad-config",))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# End-to-end tests of the integration services with the Linux test guest (hv_utils, guest/init
# mode ic). One boot each:
#   ic-shutdown: hv_utils binds the shutdown and heartbeat ICs; GET /api/v1/vm says heartbeat ok,
#     then late once the guest unbinds the heartbeat device (heartbeat_late event, metrics);
#     `ctl vm shutdown` powers the guest off through its own orderly_poweroff() (/sbin/poweroff on
#     its console) and microvmm exits 0.
#   ic-sigterm-forced: the guest accepts the request but never powers off; SIGTERM waits
#     [integration] shutdown_timeout_ms, then stops it (shutdown_forced) and exits 143.
# Exit status: 0 pass, 1 fail, 77 skip (only when /dev/kvm is absent).
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e import Run, fail, guest_paths, run_cases, write_config  # noqa: E402

LATE_MS = 4000


def ic_config(directory: Path, paths, cmdline_extra: str, socket: Path, shutdown_timeout_ms: int) -> Path:
    cmdline = paths["cmdline"].read_text().strip() + " microvmm.test=ic " + cmdline_extra
    extra = (f'[hyperv]\nenabled = true\n[api]\nsocket = "{socket}"\n[integration]\n'
             f"heartbeat_interval_ms = 1000\nheartbeat_late_ms = {LATE_MS}\n"
             f"shutdown_timeout_ms = {shutdown_timeout_ms}\n")
    return write_config(directory, {"vcpus": 1, "memory_mib": 256},
                        {"kernel": paths["vmlinux"], "initrd": paths["initramfs"], "cmdline": cmdline}, extra)


def ctl(microvmm: str, socket: Path, *words: str) -> subprocess.CompletedProcess:
    return subprocess.run([microvmm, "ctl", "--socket", str(socket), *words], capture_output=True, text=True,
                          timeout=60)


def vm_get(microvmm: str, socket: Path) -> dict:
    result = ctl(microvmm, socket, "vm", "get")
    return json.loads(result.stdout) if result.returncode == 0 else {}


def wait_guest(microvmm: str, socket: Path, predicate, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    vm = {}
    while time.monotonic() < deadline:
        vm = vm_get(microvmm, socket)
        if predicate(vm.get("guest", {})):
            return vm
        time.sleep(0.5)
    return vm


def events_stream(microvmm: str, socket: Path) -> subprocess.Popen:
    deadline = time.monotonic() + 30
    while not socket.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return subprocess.Popen([microvmm, "ctl", "--socket", str(socket), "events"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def collected_events(stream: subprocess.Popen) -> list[dict]:
    stream.terminate()
    out, _ = stream.communicate(timeout=10)
    return [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]


def shutdown(args) -> None:
    paths = guest_paths(args)
    with tempfile.TemporaryDirectory() as directory:
        socket = Path(directory) / "api.sock"
        config = ic_config(Path(directory), paths, "microvmm.ic_unbind_after=8", socket, 120000)
        run = Run(args.microvmm, config, args.timeout)
        stream = events_stream(args.microvmm, socket)
        if not run.wait_for(r"INIT: ic shutdown=hv_utils heartbeat=hv_utils"):
            run.process.kill()
            fail("hv_utils did not bind the shutdown and heartbeat devices")
        vm = wait_guest(args.microvmm, socket, lambda g: g.get("heartbeat") == "ok", 15)
        guest = vm.get("guest", {})
        if guest.get("heartbeat") != "ok" or guest.get("shutdown_service") != "ready":
            run.process.kill()
            fail(f"expected heartbeat ok and shutdown_service ready, got {guest}")
        metrics = ctl(args.microvmm, socket, "metrics").stdout
        if "microvmm_guest_heartbeat 1" not in metrics:
            run.process.kill()
            fail("metrics lack microvmm_guest_heartbeat 1 while the heartbeat is ok")
        if not run.wait_for(r"INIT: heartbeat unbound"):
            run.process.kill()
            fail("the guest did not unbind its heartbeat device")
        vm = wait_guest(args.microvmm, socket, lambda g: g.get("heartbeat") == "late", LATE_MS / 1000 + 20)
        guest = vm.get("guest", {})
        if guest.get("heartbeat") != "late" or (guest.get("age_ms") or 0) < LATE_MS:
            run.process.kill()
            fail(f"expected heartbeat late with age_ms >= {LATE_MS} after the unbind, got {guest}")
        answer = ctl(args.microvmm, socket, "vm", "shutdown", "--timeout-ms", "120000")
        if answer.returncode != 0 or json.loads(answer.stdout).get("method") != "guest":
            run.process.kill()
            fail(f"ctl vm shutdown: {answer.returncode} {answer.stdout} {answer.stderr}")
        if not run.wait_for(r"INIT: orderly poweroff \(host request\)"):
            run.process.kill()
            fail("the guest did not run its own poweroff path")
        status, log = run.finish()
        events = [e.get("event") for e in collected_events(stream)]
        if status != 0:
            fail(f"microvmm exited with {status} after the guest powered off")
        if "guest stopped: poweroff" not in log or "shutdown request: accepted" not in log:
            fail("the log lacks the guest's accepted shutdown or its poweroff")
        for wanted in ("heartbeat_late", "shutdown_requested", "shutdown_answered"):
            if wanted not in events:
                fail(f"no {wanted} event (got {events})")
        if "shutdown_forced" in events:
            fail("a graceful shutdown was reported forced")


def sigterm_forced(args) -> None:
    paths = guest_paths(args)
    timeout_ms = 5000
    with tempfile.TemporaryDirectory() as directory:
        socket = Path(directory) / "api.sock"
        config = ic_config(Path(directory), paths, "microvmm.ic_ignore_shutdown=1", socket, timeout_ms)
        run = Run(args.microvmm, config, args.timeout)
        stream = events_stream(args.microvmm, socket)
        if not run.wait_for(r"INIT: ic ready"):
            run.process.kill()
            fail("the guest did not reach INIT: ic ready")
        # The shutdown service must be negotiated before SIGTERM can use it.
        wait_guest(args.microvmm, socket, lambda g: g.get("shutdown_service") == "ready", 15)
        sent = time.monotonic()
        run.process.send_signal(signal.SIGTERM)
        if not run.wait_for(r"INIT: ignoring the poweroff request"):
            run.process.kill()
            fail("the guest did not receive the shutdown request")
        status, log = run.finish()
        elapsed = time.monotonic() - sent
        events = collected_events(stream)
        if status != 128 + signal.SIGTERM:
            fail(f"microvmm exited with {status}, expected 143")
        if elapsed < timeout_ms / 1000:
            fail(f"stopped {elapsed:.1f} s after SIGTERM, before shutdown_timeout_ms")
        if "guest did not power off in time" not in log:
            fail("no forced-stop line in the log")
        kinds = [e.get("event") for e in events]
        if "shutdown_requested" not in kinds or "shutdown_forced" not in kinds:
            fail(f"expected shutdown_requested and shutdown_forced events, got {kinds}")
        requested = next(e for e in events if e.get("event") == "shutdown_requested")
        if requested.get("origin") != "sigterm":
            fail(f"shutdown_requested origin {requested.get('origin')}, expected sigterm")


CASES = {"ic-shutdown": shutdown, "ic-sigterm-forced": sigterm_forced}


def main() -> None:
    run_cases(CASES, default_timeout=900)


if __name__ == "__main__":
    main()

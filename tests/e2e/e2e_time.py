#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# End-to-end test of guest time with the Linux test guest (guest/init mode "time"): one boot
# proves that the guest's clocksource is the Hyper-V reference TSC page, its clockevent the
# synthetic timer in direct mode (HVS interrupts counted), that guest sleeps keep host time
# (10 s - 1 s lasts 9 s within 2 %, neither ends early; see time_case), that the CMOS RTC gives
# the guest the host's time within 1 s, that the kernel's wall clock starts behind it only by
# what the guest's own early-boot timekeeping loses (printed; see time_case), that once set
# from the RTC (like hwclock --hctosys) it is the host's within 1 s and, in the 1-vCPU case,
# drifts at most 50 ms from the host's over 2 minutes.
# Exit status: 0 pass, 1 fail, 77 skip (only when /dev/kvm is absent).
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e import Run, fail, guest_paths, run_cases, write_config  # noqa: E402

SLEEP_TOLERANCE = 0.02    # 2 % (issue 11)
SLEEP_FIXED_COST_MAX_S = 0.5  # console lines around a sleep, emulated guest kernel code (see below)
RTC_OFFSET_MAX_S = 1.0   # issue 11: the guest gets the host's time at boot within 1 s
BOOT_LOSS_MAX_S = 60.0    # the guest kernel's early-boot tick loss on this emulating host (see time_case)
UNEXPLAINED_MAX_S = 5.0   # wall-clock offset + CLOCK_MONOTONIC deficit (see time_case)
DRIFT_MAX_S = 0.050       # over DRIFT_WINDOW_S
DRIFT_WINDOW_S = 120


def time_case(args, vcpus: int, watch_s: int) -> None:
    paths = guest_paths(args)
    cmdline = paths["cmdline"].read_text().strip() + f" microvmm.test=time microvmm.wait={watch_s}"
    with tempfile.TemporaryDirectory() as directory:
        config = write_config(Path(directory), {"vcpus": vcpus, "memory_mib": 256, "on_reboot": "exit"},
                              {"kernel": paths["vmlinux"], "initrd": paths["initramfs"], "cmdline": cmdline},
                              # The default enlightenment set. No time sync IC: this case measures
                              # the clock the RTC and reference time give the guest (time sync, which
                              # would set it from the host, is tested in e2e_ic.py ic-shutdown).
                              "[hyperv]\nenabled = true\n[integration]\ntime_sync = false\n")
        run = Run(args.microvmm, config, args.timeout)
        # Host wall clock of a line = this + its monotonic arrival time (Run keeps monotonic).
        real_base = time.time() - (time.monotonic() - run.start)

        def line_time(pattern: str) -> float:
            match = run.wait_for(pattern)
            if not match:
                run.finish()
                fail(f"no line matching {pattern!r}")
            return run.lines[run.cursor - 1][0]

        source = run.wait_for(r"INIT: clocksource=(\S+)")
        clockevents = []
        while True:
            match = run.wait_for(r"INIT: clockevent (\S+)=(.*)|CLOCK: rtc=(\d+) realtime=(\d+\.\d+)")
            if not match or match.group(3):
                break
            clockevents.append(match.group(2))
        if not match:
            run.finish()
            fail("no CLOCK: rtc line")
        rtc = (int(match.group(3)), float(match.group(4)), real_base + run.lines[run.cursor - 1][0])
        if not run.wait_for(r"CLOCK: hctosys rtc=\d+ was="):
            run.finish()
            fail("the guest did not set its clock from the RTC (no CLOCK: hctosys line)")
        match = run.wait_for(r"CLOCK: realtime=(\d+\.\d+) monotonic=(\d+\.\d+)")
        if not match:
            run.finish()
            fail("no CLOCK line")
        samples = [(float(match.group(1)), real_base + run.lines[run.cursor - 1][0])]
        # Host time since microvmm started vs the guest's CLOCK_MONOTONIC at the same line.
        monotonic_deficit = run.lines[run.cursor - 1][0] - float(match.group(2))
        sleeps = {}
        for name in ("sleep1", "sleep10"):
            begin = line_time(rf"INIT: {name} begin")
            sleeps[name] = line_time(rf"INIT: {name} end") - begin
        bench = run.wait_for(r"CLOCK: bench calls=(\d+) vdso_ns=(\d+) syscall_ns=(\d+)")
        stimer_irqs = run.wait_for(r"INIT: irq HVS:((?:\s+\d+)+)")
        while True:
            match = run.wait_for(r"CLOCK: realtime=(\d+\.\d+)|INIT: poweroff")
            if not match or not match.group(1):
                break
            samples.append((float(match.group(1)), real_base + run.lines[run.cursor - 1][0]))
        status, log = run.finish()

    if status != 0:
        fail(f"microvmm exited {status}")
    if not source or source.group(1) != "hyperv_clocksource_tsc_page":
        fail(f"clocksource is {source.group(1) if source else 'unknown'}, not hyperv_clocksource_tsc_page")
    if len(clockevents) != vcpus or any(name != "Hyper-V clockevent" for name in clockevents):
        fail(f"clockevents {clockevents}: expected one 'Hyper-V clockevent' per vCPU")
    # HVS counts sysvec_hyperv_stimer0, which only direct mode raises (arch/x86/kernel/cpu/
    # mshyperv.c:76-86); message mode would come through the VMBus interrupt (HYP) instead.
    counts = [int(n) for n in stimer_irqs.group(1).split()] if stimer_irqs else []
    if len(counts) != vcpus or min(counts) == 0:
        fail(f"direct-mode stimer interrupts per CPU: {counts}")
    # Each sleep is bracketed by two console lines, so each measurement also holds the same fixed
    # cost: the guest kernel waking ash, ash's read syscalls and the next line's serial output,
    # all guest kernel code that this host emulates (tens of ms; docs/test-host.md). The timer's
    # rate is therefore checked on the difference of the two sleeps, which cancels that cost:
    # 10 s - 1 s must last 9 s of host time within 2 %. Neither sleep may end early, and the fixed
    # cost is printed and bounded so a late timer cannot hide in it.
    for name, expected in (("sleep1", 1.0), ("sleep10", 10.0)):
        print(f"{name}: {sleeps[name]:.4f} s host time")
        if sleeps[name] < expected * (1 - SLEEP_TOLERANCE):
            fail(f"{name} lasted {sleeps[name]:.4f} s of host time: shorter than {expected} s - 2 %")
    span = sleeps["sleep10"] - sleeps["sleep1"]
    overhead = sleeps["sleep1"] - 1.0
    print(f"sleep10 - sleep1: {span:.4f} s host time (9 s expected); fixed cost of the bracketing lines: {overhead * 1000:.1f} ms")
    if abs(span - 9.0) > 9.0 * SLEEP_TOLERANCE:
        fail(f"sleep10 - sleep1 lasted {span:.4f} s of host time, not 9 s +- 2 %")
    if overhead > SLEEP_FIXED_COST_MAX_S:
        fail(f"sleep1 lasted {sleeps['sleep1']:.4f} s: {overhead * 1000:.0f} ms over, more than the "
             f"{SLEEP_FIXED_COST_MAX_S * 1000:.0f} ms the bracketing lines can cost")
    offsets = [guest - host for guest, host in samples]
    print(f"wall-clock offsets guest - host (s): {[round(o, 4) for o in offsets]}")
    # Issue 11 asks for the host's time at boot within 1 s. The host's part is the CMOS RTC: it
    # must read the host's time, truncated to its 1 s resolution, read by the guest (clockprobe
    # rtc, through /dev/port) just before the line that reports it reaches the host.
    rtc_value, rtc_kernel, rtc_host = rtc
    rtc_offset = rtc_value + 0.5 - rtc_host  # Centre of the RTC's second vs the line's arrival.
    print(f"CMOS RTC: {rtc_offset:+.3f} s from the host (second centre; goal: within 1 s)")
    if abs(rtc_offset) > RTC_OFFSET_MAX_S:
        fail(f"the CMOS RTC reads {rtc_value}, {rtc_offset:+.3f} s from the host's time {rtc_host:.3f}")
    # The kernel reads the RTC once, in timekeeping_init(), then keeps time with the jiffies
    # clocksource until clocksource_done_booting() (fs_initcall) switches to the TSC page
    # (kernel/time/clocksource.c:972, clocksource_find_best() returns nothing before then). On
    # this host the guest kernel is emulated, so that phase lasts 10-40 s and loses ticks
    # (each jiffies tick is programmed 10 ms after the last one's handler ran); the guest's
    # CLOCK_MONOTONIC falls behind the host by the same amount, which shows the loss is the
    # guest's timekeeping, not the RTC's value (docs/test-host.md §10). A native host loses
    # well under a millisecond there. The kernel's wall clock at the RTC line:
    kernel_offset = rtc_kernel - rtc_host
    print(f"kernel wall clock before hctosys: {kernel_offset:+.3f} s from the host's (kernel - RTC "
          f"{rtc_kernel - rtc_value:+.3f} s); CLOCK_MONOTONIC behind the host by {monotonic_deficit:.3f} s")
    if kernel_offset > RTC_OFFSET_MAX_S or kernel_offset < -BOOT_LOSS_MAX_S:
        fail(f"the kernel's wall clock at boot is {kernel_offset:+.3f} s from the host's")
    # wall offset = RTC truncation (-1..0 s) - tick loss; monotonic deficit = tick loss + the
    # emulated boot before the guest's sched_clock starts (hv_init_clocksource(), ~1-2 s here).
    # Their sum must stay within that, or the wall clock lost time the kernel did not.
    unexplained = kernel_offset + monotonic_deficit
    if not -RTC_OFFSET_MAX_S - 0.5 <= unexplained <= UNEXPLAINED_MAX_S:
        fail(f"wall-clock offset {kernel_offset:+.3f} s is not explained by the guest's own tick loss "
             f"({monotonic_deficit:.3f} s): {unexplained:+.3f} s")
    # The guest then sets its clock from the RTC at the RTC's next second (clockprobe hctosys,
    # what `hwclock --hctosys` does in a distribution's boot; the time-sync integration service
    # of issue 12 is the Hyper-V way): from there the guest has the host's time (issue 11: 1 s).
    print(f"guest wall clock at boot (after hctosys): {offsets[0]:+.3f} s from the host's (goal: within 1 s)")
    if abs(offsets[0]) > RTC_OFFSET_MAX_S:
        fail(f"guest wall clock at boot is {offsets[0]:+.3f} s from the host's after setting it from the RTC")
    if bench:
        print(f"guest clock_gettime: vDSO {bench.group(2)} ns/call, syscall {bench.group(3)} ns/call")
    if watch_s:
        span = samples[-1][1] - samples[0][1]
        if span < DRIFT_WINDOW_S:
            fail(f"wall-clock samples span only {span:.0f} s")
        drift = offsets[-1] - offsets[0]
        print(f"drift over {span:.0f} s: {drift * 1000:+.1f} ms")
        if abs(drift) > DRIFT_MAX_S:
            fail(f"guest wall clock drifted {drift * 1000:+.1f} ms from the host's in {span:.0f} s")
    if "RDMSR" in log or "WRMSR" in log:
        fail("the guest touched a synthetic MSR the partition refused:\n" + log)


CASES = {
    "time-1vcpu": lambda args: time_case(args, 1, DRIFT_WINDOW_S + 10),
    "time-2vcpu": lambda args: time_case(args, 2, 0),
}


def main() -> None:
    run_cases(CASES, default_timeout=600)


if __name__ == "__main__":
    main()

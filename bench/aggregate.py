#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Merges the JSON reports of the benchmark programs into bench/results.json and prints a table.
# Each report: {"figures": {"section.key": spec}, "notes": {"section.key": text}} where spec is
# {"samples": [...], "unit"} (per-run figures: value = median, with min/median/max in "stats"),
# {"value": x, "unit"} (sizes, counts; null = not measured, the note says why),
# {"ratio_of": [a, b]} (median of a / median of b) or {"same_as": a} (a headline alias).
# Stdlib only.
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

# Every key the issue asks for, in table order; a key no report produced is written as null
# with a note, never left out.
REQUIRED = [
    "range_tree.ours_ops_per_s", "range_tree.std_map_ops_per_s", "range_tree.ours_bytes_contiguous_1tib",
    "range_tree.bitmap_bytes_1tib", "range_tree.ours_bytes_per_fragment",
    "balloon.ours_gb_per_min", "balloon.raw_discard_gb_per_min", "balloon.ratio",
    "unballoon_200gb.ms_2mib_ranges", "unballoon_200gb.ms_4kib_mix",
    "hot_add.request_us", "hot_add.memslot_us", "hot_add.slots_used", "hot_add.slots_one_big",
    "startup_ms", "startup_vmm_own_ms", "idle_wakeups_per_s", "rss_kib",
    "nvme.microvmm.randread_iops", "nvme.qemu.randread_iops", "nvme.randread.iops_ratio",
    "nvme.microvmm.randwrite_iops", "nvme.qemu.randwrite_iops", "nvme.randwrite.iops_ratio",
    "nvme.microvmm.randread_cpu_us_per_io", "nvme.qemu.randread_cpu_us_per_io", "nvme.randread.cpu_us_per_io_ratio",
    "net.microvmm.tcp_to_guest_kib_s", "net.microvmm.tcp_from_guest_kib_s", "net.microvmm.ping_ms",
    "net.ratio.tcp_to_guest_kib_s", "net.ratio.tcp_from_guest_kib_s", "net.ratio.ping_ms",
    "hvsock_guest.to_guest_kib_s", "hvsock_guest.from_guest_kib_s", "hvsock_guest.rtt_64b_ms",
    "hvsock_guest.rtt_64b_p90_ms", "hvsock_guest.socketpair.to_guest_kib_s",
    "hvsock_guest.socketpair.from_guest_kib_s", "hvsock_guest.socketpair.rtt_64b_ms",
    "auto_memory.grow_decision_s", "auto_memory.grow_s", "auto_memory.hot_add_s", "auto_memory.shrink_s",
    "auto_memory.balloon_mib_per_s", "auto_memory.unballoon_mib_per_s", "auto_memory.reporting_mib_per_s",
]


def stats_of(samples):
    return {"min": min(samples), "median": statistics.median(samples), "max": max(samples), "runs": len(samples)}


def resolve(figures, notes):
    """Turns specs into {key: (value, stats or None, unit)}; ratios and aliases after samples."""
    out = {}
    pending = []
    for key, spec in figures.items():
        if "samples" in spec:
            samples = [float(x) for x in spec["samples"]]
            if samples:
                st = stats_of(samples)
                st["unit"] = spec.get("unit", "")
                out[key] = (st["median"], st, spec.get("unit", ""))
            else:
                out[key] = (None, None, spec.get("unit", ""))
        elif "value" in spec:
            out[key] = (spec["value"], None, spec.get("unit", ""))
        else:
            pending.append((key, spec))
    for key, spec in pending:
        if "same_as" in spec:
            out[key] = out.get(spec["same_as"], (None, None, ""))
            notes[key] = "= %s%s" % (spec["same_as"], "; " + notes[key] if notes.get(key) else "")
        elif "ratio_of" in spec:
            a, b = spec["ratio_of"]
            va, sa, _ = out.get(a, (None, None, ""))
            vb, sb, _ = out.get(b, (None, None, ""))
            if va is None or vb is None or vb == 0:
                out[key] = (None, None, "x")
                notes[key] = "not measured: needs %s and %s" % (a, b)
                continue
            st = None
            fa, fb = figures.get(a, {}), figures.get(b, {})
            if "samples" in fa and "samples" in fb and len(fa["samples"]) == len(fb["samples"]):
                # Runs are interleaved (same run index = same moment), so per-run ratios are fair.
                per_run = [x / y for x, y in zip(fa["samples"], fb["samples"]) if y]
                st = stats_of(per_run)
                st["unit"] = "x (per-run ratio)"
            out[key] = (va / vb, st, "x")
            notes.setdefault(key, "median(%s) / median(%s)" % (a, b))
    return out


def machine_info():
    info = {"kernel": platform.release()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in lscpu.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "Model name":
                info["cpu_model"] = value.strip()
            elif name.strip() == "CPU(s)":
                info["cpus"] = int(value.strip())
            elif name.strip() == "Hypervisor vendor":
                info["hypervisor"] = value.strip()
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["ram_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    info["kvm"] = "kvm_pvm (PVM-style KVM: guest CPL0 emulated, shadow paging)" \
        if os.path.isdir("/sys/module/kvm_pvm") else ("kvm" if os.path.exists("/dev/kvm") else "none")
    return info


def fmt_value(value):
    if value is None:
        return "null"
    if isinstance(value, float):
        if abs(value) >= 1e6:
            return "%.3g" % value
        if abs(value) >= 100:
            return "%.0f" % value
        return "%.3g" % value
    return str(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="results.json to write")
    parser.add_argument("--markdown", help="also write the table as Markdown here")
    parser.add_argument("--missing", action="append", default=[],
                        help="section=why: a benchmark program that did not run")
    parser.add_argument("reports", nargs="*")
    args = parser.parse_args()

    figures, notes = {}, {}
    for path in args.reports:
        try:
            with open(path) as f:
                doc = json.load(f)
        except (OSError, ValueError) as error:
            print("aggregate: skipping %s: %s" % (path, error), file=sys.stderr)
            continue
        figures.update(doc.get("figures", {}))
        notes.update(doc.get("notes", {}))
    missing_why = dict(item.split("=", 1) for item in args.missing)
    for key in REQUIRED:
        if key not in figures:
            section = key.split(".")[0]
            figures[key] = {"value": None}
            notes[key] = "not measured: " + missing_why.get(section, "no report produced this figure")

    resolved = resolve(figures, notes)
    results = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "machine": machine_info(), "stats": {}, "notes": {}}
    for key in sorted(resolved):
        value, st, _unit = resolved[key]
        parts = key.split(".")
        node = results
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        if st is not None:
            results["stats"][key] = st
        if notes.get(key):
            results["notes"][key] = notes[key]
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1, sort_keys=False)
        f.write("\n")

    # The table: required keys first, then the details.
    order = REQUIRED + sorted(k for k in resolved if k not in REQUIRED)
    print("%-52s %12s %12s %12s  %s" % ("figure", "median/value", "min", "max", "unit / note"))
    print("-" * 110)
    for key in order:
        value, st, unit = resolved[key]
        low = fmt_value(st["min"]) if st else ""
        high = fmt_value(st["max"]) if st else ""
        note = notes.get(key, "")
        tail = unit + ("  " + note if note and (value is None or key in REQUIRED) else "")
        print("%-52s %12s %12s %12s  %s" % (key, fmt_value(value), low, high, tail))
        if key == REQUIRED[-1]:
            print("-" * 110)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("| figure | median / value | min | max | unit | note |\n|---|---:|---:|---:|---|---|\n")
            for key in order:
                value, st, unit = resolved[key]
                row = (key, fmt_value(value), fmt_value(st["min"]) if st else "", fmt_value(st["max"]) if st else "",
                       unit, notes.get(key, "").replace("|", "/"))
                f.write("| `%s` | %s | %s | %s | %s | %s |\n" % row)
        print("wrote %s" % args.markdown)
    print("\nwrote %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

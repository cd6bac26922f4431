#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make bench`: runs every benchmark once (each repeats its own runs), merges the reports into
# bench/results.json and prints the table. Usage: bench/run.sh BUILD_DIR (already built, with
# the test guest in BUILD_DIR/guest). BENCH_RUNS (default 5, at least 5) sets the runs per
# figure; BENCH_FRAGMENTED_GIB the window of the fragmented range-tree case (default 8);
# BENCH_GUEST_DIR where the test guest is (default BUILD_DIR/guest).
# Benchmarks run one after another: the machine has 2 cores and each wants one.
set -euo pipefail

if (($# != 1)); then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "$1" && pwd)
reports=$build/bench-reports
rm -rf "$reports"
mkdir -p "$reports"
missing=()
started=$(date +%s)

# run NAME SECTIONS COMMAND...: the report goes to $reports/NAME.json, progress to the terminal;
# if the program is missing or fails, its SECTIONS (comma-separated) are noted as not measured.
run() {
  local name=$1 section=$2
  shift 2
  local why=
  if ! command -v "$1" >/dev/null; then
    echo "bench: $name: $1 was not built" >&2
    why="$(basename "$1") not built (the code it measures is missing)"
  else
    local t0=$SECONDS
    echo "bench: $name ..." >&2
    if "$@" >"$reports/$name.json"; then
      echo "bench: $name done in $((SECONDS - t0)) s" >&2
      return
    fi
    echo "bench: $name FAILED" >&2
    why="the $name benchmark failed (see the make bench output)"
    rm -f "$reports/$name.json"
  fi
  local key
  for key in ${section//,/ }; do
    missing+=(--missing "$key=$why")
  done
}

run range_tree range_tree "$build/bench/bench_range_tree"
run balloon balloon "$build/bench/bench_balloon"
run unballoon unballoon_200gb "$build/bench/bench_unballoon"
run hot_add hot_add "$build/bench/bench_hot_add"
run hvsock hvsock "$build/bench/bench_hvsock"
run netvsc netvsc "$build/bench/bench_netvsc"

# The test guest from `make guest` (BENCH_GUEST_DIR overrides, e.g. to reuse another build's).
guest_dir=${BENCH_GUEST_DIR:-$build/guest}
kernel=$guest_dir/vmlinux
initrd=$guest_dir/initramfs.cpio
if [[ -x $build/microvmm && -f $kernel && -f $initrd ]]; then
  qemu=()
  if [[ -x $root/guest/qemu-boot.sh ]] && command -v qemu-system-x86_64 >/dev/null; then
    qemu=(--qemu-boot "$root/guest/qemu-boot.sh")
  fi
  run startup startup_ms,startup_vmm_own_ms,idle_wakeups_per_s,rss_kib python3 "$root/bench/startup.py" --microvmm "$build/microvmm" \
    --kernel "$kernel" --initrd "$initrd" --cmdline-file "$root/guest/cmdline.txt" "${qemu[@]}"
  run clock clock python3 "$root/bench/clock.py" --microvmm "$build/microvmm" \
    --kernel "$kernel" --initrd "$initrd" --cmdline-file "$root/guest/cmdline.txt"
  # NVMe next to QEMU's NVMe device: BENCH_NVME_RUNS boots per VMM (default 3), ~2-4 min each here.
  nvme_qemu=()
  ((${#qemu[@]})) || nvme_qemu=(--qemu-boot "")
  run nvme nvme python3 "$root/bench/nvme.py" --microvmm "$build/microvmm" \
    --kernel "$kernel" --initrd "$initrd" --cmdline-file "$root/guest/cmdline.txt" "${nvme_qemu[@]}"
  # Guest TCP both ways and ping, microvmm netvsc next to QEMU virtio-net (with and without its
  # offloads) on one TAP in a network namespace (needs root and /dev/net/tun).
  run net net python3 "$root/bench/net.py" --microvmm "$build/microvmm" \
    --kernel "$kernel" --initrd "$initrd" --cmdline-file "$root/guest/cmdline.txt" "${qemu[@]}"
  # hv_sock with the real guest (host-initiated, both ways + 64-byte RTT) next to a socketpair.
  run hvsock_guest hvsock_guest python3 "$root/bench/hvsock_guest.py" --microvmm "$build/microvmm" \
    --kernel "$kernel" --initrd "$initrd" --cmdline-file "$root/guest/cmdline.txt"
  run auto_memory auto_memory python3 "$root/bench/auto_memory.py" --microvmm "$build/microvmm" \
    --kernel "$kernel" --initrd "$initrd" --cmdline-file "$root/guest/cmdline.txt"
else
  echo "bench: startup: needs $build/microvmm, $kernel and $initrd" >&2
  missing+=(--missing "startup_ms=needs build/microvmm and the test guest (build/guest/vmlinux, initramfs.cpio)")
  missing+=(--missing "rss_kib=needs build/microvmm and the test guest")
  missing+=(--missing "startup_vmm_own_ms=needs build/microvmm and the test guest")
  missing+=(--missing "idle_wakeups_per_s=needs build/microvmm and the test guest")
  missing+=(--missing "nvme=needs build/microvmm and the test guest")
  missing+=(--missing "net=needs build/microvmm and the test guest")
  missing+=(--missing "auto_memory=needs build/microvmm and the test guest")
  missing+=(--missing "hvsock_guest=needs build/microvmm and the test guest")
fi

shopt -s nullglob
python3 "$root/bench/aggregate.py" --out "$root/bench/results.json" --markdown "$root/bench/results.md" \
  "${missing[@]}" "$reports"/*.json \
  | tee "$reports/table.txt"
echo "bench: total $(($(date +%s) - started)) s; reports in $reports" >&2

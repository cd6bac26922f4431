#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make demo`: boots configs/demo.toml (the Linux test guest from BUILD/guest with Dynamic
# Memory) and shows its serial console. Usage: scripts/demo.sh [BUILD]
set -euo pipefail
build=$(realpath "${1:-build}")
root=$(cd "$(dirname "$0")/.." && pwd)
microvmm="$build/microvmm"
[[ -x "$microvmm" ]] || { echo "demo: $microvmm not built (make build)" >&2; exit 1; }
[[ -e /dev/kvm ]] || { echo "demo: /dev/kvm missing: this demo needs KVM" >&2; exit 1; }
for artifact in vmlinux initramfs.cpio; do
  [[ -f "$build/guest/$artifact" ]] || { echo "demo: $build/guest/$artifact missing (make guest)" >&2; exit 1; }
done

# configs/demo.toml names ../build/guest/...: point it at this BUILD (paths become absolute).
work=$(mktemp -d)
trap 'kill "$vmm_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
sed -e "s|\"\\.\\./build/guest/|\"$build/guest/|" "$root/configs/demo.toml" > "$work/demo.toml"
socket=$(sed -n 's/^socket *= *"\(.*\)"/\1/p' "$work/demo.toml")

echo "demo: booting configs/demo.toml (serial console follows; takes ~15 s on this host)"
"$microvmm" --config "$work/demo.toml" &
vmm_pid=$!

# --- Memory resizing through the REST API goes here (socket: $socket) ----------------------
# Once the API and the DM device are wired, wait for the guest's DM driver to connect, then
# e.g.:  "$microvmm" ctl --socket "$socket" memory set 384 --wait
#        "$microvmm" ctl --socket "$socket" memory set 1024 --wait
# and show `memory get` after each step.
# -------------------------------------------------------------------------------------------

status=0
wait "$vmm_pid" || status=$?
vmm_pid=
echo "demo: microvmm exited with status $status"
exit "$status"

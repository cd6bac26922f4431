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

# Memory resizing through the REST API (vmm/api/demo_memory.sh): shrink to 256 MiB, grow to
# 1024 MiB (unballoon + hot-add), then power off: the balloon guest loops forever, so the demo
# ends microvmm with SIGTERM (a clean stop of the VM: exit status 143 is expected here).
demo_status=0
bash "$root/vmm/api/demo_memory.sh" "$microvmm" "$socket" 256 1024 300 || demo_status=$?
echo "demo: powering off"
kill -TERM "$vmm_pid" 2>/dev/null || true

status=0
wait "$vmm_pid" || status=$?
vmm_pid=
echo "demo: microvmm exited with status $status"
[[ $status -eq 0 || $status -eq 143 ]] || exit "$status"
exit "$demo_status"

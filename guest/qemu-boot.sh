#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Boots the test guest under QEMU's microvm machine (the stand-in VMM of test-host §2),
# serial console on stdout; QEMU's exit status is the script's. Baseline for the benchmarks.
#
# Usage: guest/qemu-boot.sh KERNEL INITRD VCPUS [extra kernel command line...]
#   KERNEL is the uncompressed vmlinux (PVH entry; qboot jumps straight to it).
#   GUEST_MEM (default 128M) sets -m, QEMU_CPU (default host,-arch-capabilities) sets -cpu. The command line is guest/cmdline.txt plus the extras.
#   QEMU_MACHINE_OPTS (e.g. ",pcie=on") is appended to the -M options, QEMU_EXTRA_ARGS (split on
#   spaces, so no spaces inside one argument) to the command: bench/nvme.py adds an NVMe disk,
#   bench/net.py a -netdev tap + virtio-net-device.
set -euo pipefail

if (($# < 3)); then
  echo "usage: $0 KERNEL INITRD VCPUS [extra kernel command line...]" >&2
  exit 2
fi
kernel=$1 initrd=$2 vcpus=$3
shift 3
guest=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cmdline=$(<"$guest/cmdline.txt")
(($# > 0)) && cmdline+=" $*"

# x-option-roms=off, rtc=off: less firmware work; isa-serial=on: COM1 (ACPI PNP0501, see
# test-host §5 on SERIAL_8250_PNP). -no-reboot: a guest reboot ends QEMU (rc 0).
# -arch-capabilities: on this host (AMD EPYC, kvm_pvm) QEMU 7.2 aborts with "failed to set MSR
# 0x10a" (IA32_ARCH_CAPABILITIES) for -cpu host and -cpu max; the guest does not need the MSR.
# shellcheck disable=SC2086 # QEMU_EXTRA_ARGS is split into arguments on purpose
exec qemu-system-x86_64 -enable-kvm \
  -M "microvm,x-option-roms=off,isa-serial=on,rtc=off${QEMU_MACHINE_OPTS:-}" \
  -cpu "${QEMU_CPU:-host,-arch-capabilities}" -m "${GUEST_MEM:-128M}" -smp "$vcpus" \
  -nographic -nodefaults -no-user-config -serial stdio -no-reboot \
  -kernel "$kernel" \
  -initrd "$initrd" \
  -append "$cmdline" \
  ${QEMU_EXTRA_ARGS:-}

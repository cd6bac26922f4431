#!/usr/bin/env bash
# Installs the Debian packages microvmm needs, only those missing (apt-get update once first:
# a fresh machine's package lists may be stale).
set -euo pipefail
packages=(
  meson ninja-build g++ pkg-config
  libboost-dev libfmt-dev libtomlplusplus-dev libgtest-dev libgmock-dev nlohmann-json3-dev libcli11-dev
  # Per-thread seccomp filters (vmm/sandbox/, SECURITY.md): compiled to BPF at build time.
  libseccomp-dev
  # io_uring for disk image back-ends (vmm/backends/image_file_backend.*).
  liburing-dev
  # Test guest: kernel source and its build tools, busybox for the initramfs.
  linux-source-6.1 bc flex bison libelf-dev libssl-dev cpio xz-utils busybox-static make
  # Fuzzing (libFuzzer) and the QEMU baseline for benchmarks.
  clang-16 libclang-rt-16-dev python3 time
  # Network e2e (tests/e2e/e2e_net.py): `ip` for its namespace and TAP.
  iproute2
  # NVMe root-file-system e2e (tests/e2e/e2e_nvme.py nvme-root): mkfs.ext4 -d builds the image.
  e2fsprogs
  # ACPICA: the firmware tests disassemble and evaluate our AML with iasl/acpiexec.
  acpica-tools
)
missing=()
for package in "${packages[@]}"; do
  [[ "$package" == \#* ]] && continue
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the microvmm test guest into OUTDIR: a patched Debian Linux 6.1 (vmlinux with the PVH
# note, bzImage, System.map) and a busybox initramfs (uncompressed newc cpio). See guest/README.md.
#
# Usage: guest/build.sh OUTDIR [all|kernel|initramfs]
# The kernel is rebuilt only when guest/config.fragment, guest/patches/*.patch, the
# linux-source-6.1 package version or KERNEL_RECIPE below change (OUTDIR/kernel.stamp).
# GUEST_JOBS (default 2) sets make -j: this machine has 2 cores shared by everyone.
set -euo pipefail

# Bump when the kernel build steps below change in a way the stamp inputs do not capture.
readonly KERNEL_RECIPE=1
readonly PACKAGE=linux-source-6.1
readonly TARBALL=/usr/src/linux-source-6.1.tar.xz
readonly TOPDIR=linux-source-6.1 # the tarball's top-level directory
readonly BUSYBOX=/bin/busybox     # Debian busybox-static: statically linked, no loader needed
# Options that Kconfig may legitimately drop or derive: a mismatch only warns.
readonly OPTIONAL_OPTIONS=(HYPERV_TIMER PAGE_REPORTING)
# Options the project cannot live without: checked by name even if the fragment changes.
readonly KEY_OPTIONS=(HYPERV HYPERV_BALLOON MEMORY_HOTPLUG MEMORY_HOTPLUG_DEFAULT_ONLINE PVH
  SERIAL_8250_CONSOLE SERIAL_8250_PNP X86_X2APIC ACPI BLK_DEV_INITRD TMPFS SMP PROC_FS SYSFS)

die() { echo "guest/build.sh: error: $*" >&2; exit 1; }
note() { echo "guest/build.sh: $*"; }

(($# >= 1 && $# <= 2)) || die "usage: $0 OUTDIR [all|kernel|initramfs]"
part=${2:-all}
case $part in all | kernel | initramfs) ;; *) die "unknown part '$part'" ;; esac
mkdir -p "$1"
out=$(cd "$1" && pwd)
guest=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
jobs=${GUEST_JOBS:-2}
fragment=$guest/config.fragment
shopt -s nullglob
patches=("$guest"/patches/*.patch)
shopt -u nullglob

[[ -r $TARBALL ]] || die "$TARBALL missing: install $PACKAGE (make deps)"
[[ -x $BUSYBOX ]] || die "$BUSYBOX missing: install busybox-static (make deps)"
package_version=$(dpkg-query -W -f='${Version}' "$PACKAGE") || die "$PACKAGE is not installed"

# Identity of the patched source tree: package version + patch contents.
source_id() {
  {
    echo "$PACKAGE $package_version"
    for p in "${patches[@]}"; do echo "${p##*/} $(sha256sum <"$p")"; done
  } | sha256sum | cut -d' ' -f1
}

# Identity of the built kernel: source tree + fragment + recipe.
kernel_id() {
  { echo "recipe $KERNEL_RECIPE"; source_id; sha256sum <"$fragment"; } | sha256sum | cut -d' ' -f1
}

# Extracts and patches the source into OUTDIR/src unless a tree with the same identity is there.
# A changed package or patch set gets a fresh tree; a changed fragment reuses the tree, so
# kbuild recompiles only what the config change touches.
prepare_source() {
  local src=$out/src id
  id=$(source_id)
  if [[ -f $src/.microvmm-source-id && $(<"$src/.microvmm-source-id") == "$id" ]]; then
    return
  fi
  note "extracting $PACKAGE $package_version into $src"
  rm -rf "$src" "$out/src.tmp"
  mkdir -p "$out/src.tmp"
  tar -xf "$TARBALL" -C "$out/src.tmp"
  for p in "${patches[@]}"; do
    note "applying ${p##*/}"
    patch -p1 --forward --quiet -d "$out/src.tmp/$TOPDIR" <"$p" || die "${p##*/} does not apply"
  done
  mv "$out/src.tmp/$TOPDIR" "$src"
  rmdir "$out/src.tmp"
  echo "$id" >"$src/.microvmm-source-id"
}

# Value of CONFIG_$1 in a .config: y, m, a string/number, or n when unset.
config_value() {
  local line
  line=$(grep -E "^CONFIG_$1=" "$2" || true)
  if [[ -n $line ]]; then echo "${line#*=}"; else echo n; fi
}

# Fails unless every option of the fragment (and every KEY_OPTIONS entry) survived olddefconfig.
verify_config() {
  local config=$1 failed=0 name want got optional
  while IFS= read -r line; do
    [[ $line =~ ^CONFIG_([A-Za-z0-9_]+)=(.*)$ ]] || continue
    name=${BASH_REMATCH[1]}
    want=${BASH_REMATCH[2]}
    got=$(config_value "$name" "$config")
    [[ $got == "$want" ]] && continue
    optional=0
    for o in "${OPTIONAL_OPTIONS[@]}"; do [[ $o == "$name" ]] && optional=1; done
    if ((optional)); then
      note "warning: CONFIG_$name=$want requested, Kconfig gave $got (optional)"
    else
      echo "guest/build.sh: CONFIG_$name=$want requested, but .config has $got" >&2
      failed=1
    fi
  done <"$fragment"
  for name in "${KEY_OPTIONS[@]}"; do
    got=$(config_value "$name" "$config")
    if [[ $got != y ]]; then
      echo "guest/build.sh: key option CONFIG_$name must be y, .config has $got" >&2
      failed=1
    fi
  done
  ((failed == 0)) || die "kernel config lost required options (see above; check their Kconfig dependencies)"
}

cache_root=${MICROVMM_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/microvmm-guest}

save_kernel_to_cache() {
  local cached=$1
  [[ -f $cached/kernel.stamp ]] && return
  if mkdir -p "$cached" 2>/dev/null; then
    cp "$out"/{vmlinux,bzImage,System.map,kernel.config,kernel.release} "$cached/" &&
      cp "$out/kernel.stamp" "$cached/kernel.stamp" || rm -rf "$cached"
  fi
}

build_kernel() {
  local id src=$out/src log=$out/kernel-build.log
  id=$(kernel_id)
  # A machine-wide cache keyed by the same identity: a fresh clone on the same machine (CI runs
  # `make check` in one) reuses the kernel instead of spending 5-15 minutes rebuilding it.
  local cached
  cached=$cache_root/$(sha256sum <<<"$id" | cut -c1-16)
  if [[ -f $out/kernel.stamp && $(<"$out/kernel.stamp") == "$id" &&
    -f $out/vmlinux && -f $out/bzImage && -f $out/System.map ]]; then
    note "kernel up to date ($out/vmlinux)"
    save_kernel_to_cache "$cached"
    return
  fi
  rm -f "$out/kernel.stamp"
  if [[ -f $cached/kernel.stamp && $(<"$cached/kernel.stamp") == "$id" ]]; then
    cp "$cached"/{vmlinux,bzImage,System.map,kernel.config,kernel.release} "$out/"
    echo "$id" >"$out/kernel.stamp"
    note "kernel restored from the machine cache ($cached)"
    return
  fi
  prepare_source
  note "configuring and building the kernel (make -j$jobs; log: $log)"
  (
    cd "$src"
    make tinyconfig
    scripts/kconfig/merge_config.sh -m .config "$fragment"
    make olddefconfig
  ) >"$log" 2>&1 || { tail -n 40 "$log" >&2; die "kernel configuration failed"; }
  verify_config "$src/.config"
  if ! make -C "$src" -j"$jobs" vmlinux bzImage >>"$log" 2>&1; then
    grep -E -m 20 'error|Error' "$log" >&2 || true
    tail -n 20 "$log" >&2
    die "kernel build failed (full log: $log)"
  fi
  grep -q 'Xen' <(readelf -n "$src/vmlinux") || die "vmlinux has no Xen/PVH ELF note"
  cp "$src/vmlinux" "$out/vmlinux.tmp" && mv "$out/vmlinux.tmp" "$out/vmlinux"
  cp "$src/arch/x86/boot/bzImage" "$out/bzImage"
  cp "$src/System.map" "$out/System.map"
  cp "$src/.config" "$out/kernel.config"
  make -s -C "$src" kernelrelease >"$out/kernel.release"
  echo "$id" >"$out/kernel.stamp"
  save_kernel_to_cache "$cached"
  note "kernel $(<"$out/kernel.release") built: $out/vmlinux $out/bzImage $out/System.map"
}

# gen_init_cpio (the kernel's own newc writer) makes device nodes and FIFOs without root.
build_gen_init_cpio() {
  local tool=$out/tools/gen_init_cpio c_file=$out/src/usr/gen_init_cpio.c
  mkdir -p "$out/tools"
  if [[ ! -f $c_file ]]; then
    c_file=$out/tools/gen_init_cpio.c
    [[ -f $c_file ]] || tar -xOf "$TARBALL" "$TOPDIR/usr/gen_init_cpio.c" >"$c_file"
  fi
  if [[ ! -x $tool || $c_file -nt $tool ]]; then
    cc -O2 -o "$tool" "$c_file" || die "cannot compile gen_init_cpio"
  fi
}

# The guest's own tools (guest/NAME.c: memdirty, nvmet, nvmeload, clockprobe, vsockt; each
# file's head says what it does). Freestanding and static over guest/freestanding.h, so they
# need no loader or libc in the guest and stay a few KB (the emulated kernel unpacks the
# initramfs at ~1.2 ms per KiB). Each is rebuilt when its source or the header is newer.
build_tool() {
  local tool=$out/tools/$1 src=$guest/$1.c header=$guest/freestanding.h
  mkdir -p "$out/tools"
  if [[ ! -x $tool || $src -nt $tool || $header -nt $tool ]]; then
    cc -std=c11 -Wall -Wextra -Werror -O2 -static -nostdlib -ffreestanding -fno-stack-protector \
      -fno-pie -no-pie -s -Wl,--build-id=none -Wl,-z,noseparate-code -o "$tool.tmp" "$src" ||
      die "cannot compile $src"
    mv "$tool.tmp" "$tool"
  fi
}

# hv_kvp_daemon, the user-space half of Linux's KVP integration service (the kernel answers the
# host's KVP requests only through it, drivers/hv/hv_kvp.c), built from tools/hv/ of the same
# kernel source with that source's UAPI header, statically (the initramfs has no libc). ~1 MB:
# glibc's static getaddrinfo (for FullyQualifiedDomainName) comes with it.
build_kvp_daemon() {
  local tool=$out/tools/hv_kvp_daemon src=$out/src/tools/hv/hv_kvp_daemon.c header=$out/src/include/uapi/linux/hyperv.h
  local include=$out/tools/kvp-include
  mkdir -p "$out/tools" "$include/linux"
  if [[ ! -f $src || ! -f $header ]]; then
    src=$out/tools/hv_kvp_daemon.c
    header=$out/tools/hyperv.h
    [[ -f $src ]] || tar -xOf "$TARBALL" "$TOPDIR/tools/hv/hv_kvp_daemon.c" >"$src"
    [[ -f $header ]] || tar -xOf "$TARBALL" "$TOPDIR/include/uapi/linux/hyperv.h" >"$header"
  fi
  if [[ ! -x $tool || $src -nt $tool || $header -nt $tool || $0 -nt $tool ]]; then
    cp "$header" "$include/linux/hyperv.h"
    # The linker warns that static getaddrinfo wants the same glibc's NSS modules at run time:
    # glibc >= 2.34 has the "files" service built in, which is all the guest uses (/etc/hosts).
    # The daemon locks its pool files with fcntl(F_SETLKW) (hv_kvp_daemon.c kvp_acquire_lock):
    # config.fragment enables FILE_LOCKING for it.
    cc -O2 -Wall -D_GNU_SOURCE -I"$include" -static -s -o "$tool.tmp" "$src" \
      2>"$out/tools/hv_kvp_daemon.log" ||
      { cat "$out/tools/hv_kvp_daemon.log" >&2; die "cannot compile $src"; }
    mv "$tool.tmp" "$tool"
  fi
}

build_initramfs() {
  local list=$out/initramfs.list cpio=$out/initramfs.cpio applet
  # A syntax error in /init panics the guest at boot ("Attempted to kill init") and fails every
  # e2e test at once: refuse to pack it (busybox sh parses what POSIX sh -n accepts).
  sh -n "$guest/init" || die "guest/init has a shell syntax error (see above)"
  build_gen_init_cpio
  build_tool memdirty
  build_tool clockprobe
  build_kvp_daemon
  build_tool vsockt
  build_tool nvmeload
  build_tool nvmet
  # The applets /init runs; ash finds them through these links when /proc/self/exe is absent.
  local applets=(sh mount poweroff reboot dmesg dd sed rm sleep cat ls readlink setsid cttyhack mknod strings date ip ping nc sha256sum wc seq head)
  local available
  available=$("$BUSYBOX" --list) # not piped into grep -q: SIGPIPE would fail under pipefail
  for applet in "${applets[@]}"; do
    grep -qx "$applet" <<<"$available" || die "$BUSYBOX lacks the applet $applet"
  done
  {
    echo "dir /bin 0755 0 0"
    echo "file /bin/busybox $BUSYBOX 0755 0 0"
    for applet in "${applets[@]}"; do echo "slink /bin/$applet busybox 0777 0 0"; done
    echo "file /bin/memdirty $out/tools/memdirty 0755 0 0"
    echo "file /bin/clockprobe $out/tools/clockprobe 0755 0 0"
    echo "file /bin/vsockt $out/tools/vsockt 0755 0 0"
    echo "file /bin/nvmeload $out/tools/nvmeload 0755 0 0"
    echo "file /bin/nvmet $out/tools/nvmet 0755 0 0"
    # The kernel's orderly_poweroff()/orderly_reboot() helpers (hv_utils shutdown requests).
    echo "dir /sbin 0755 0 0"
    echo "file /sbin/poweroff $guest/sbin-poweroff 0755 0 0"
    echo "file /sbin/reboot $guest/sbin-poweroff 0755 0 0"
    echo "file /sbin/hv_kvp_daemon $out/tools/hv_kvp_daemon 0755 0 0"
    # hv_kvp_daemon keeps its pools in /var/lib/hyperv (it creates only the last component).
    echo "dir /var 0755 0 0"
    echo "dir /var/lib 0755 0 0"
    echo "dir /dev 0755 0 0"
    # The kernel opens /dev/console for init's stdio before /init runs (init/main.c
    # console_on_rootfs); devtmpfs is not auto-mounted on an initramfs.
    echo "nod /dev/console 0600 0 0 c 5 1"
    echo "nod /dev/null 0666 0 0 c 1 3"
    echo "nod /dev/zero 0666 0 0 c 1 5"
    echo "nod /dev/kmsg 0644 0 0 c 1 11"
    echo "nod /dev/port 0600 0 0 c 1 4" # clockprobe rtc (drivers/char/mem.c, CONFIG_DEVPORT)
    echo "nod /dev/ttyS0 0600 0 0 c 4 64" # cttyhack's controlling tty in the shell mode
    echo "dir /dev/vmbus 0755 0 0"        # /init makes hv_kvp here (a dynamic misc minor)
    echo "dir /etc 0755 0 0"
    echo "file /etc/fstab $guest/fstab 0644 0 0"
    echo "file /etc/nsswitch.conf $guest/nsswitch.conf 0644 0 0"
    echo "file /etc/os-release $guest/os-release 0644 0 0" # OSName etc. that hv_kvp_daemon reports
    echo "dir /proc 0755 0 0"
    echo "dir /sys 0755 0 0"
    echo "dir /tmp 01777 0 0"
    echo "dir /run 0755 0 0"
    # A FIFO nobody writes to: `read -t SECONDS <> /run/sleep` is /init's fork-free sleep.
    echo "pipe /run/sleep 0600 0 0"
    echo "file /init $guest/init 0755 0 0"
  } >"$list"
  # -t 0: fixed mtimes for directories, nodes and links (files keep theirs), so an unchanged
  # tree gives an identical cpio and the file below is left alone.
  "$out/tools/gen_init_cpio" -t 0 "$list" >"$cpio.tmp" || die "gen_init_cpio failed"
  if [[ -f $cpio ]] && cmp -s "$cpio" "$cpio.tmp"; then
    rm -f "$cpio.tmp"
    note "initramfs up to date ($cpio)"
  else
    mv "$cpio.tmp" "$cpio"
    note "initramfs built: $cpio ($(stat -c %s "$cpio") bytes)"
  fi
}

case $part in
  kernel) build_kernel ;;
  initramfs) build_initramfs ;;
  all)
    build_kernel
    build_initramfs
    ;;
esac

#!/usr/bin/env bash
# Debian packages the tests need: a real OpenSSH server (fleet tests on loopback) and
# QEMU + mmdebstrap (the emulated arm64 device). Installed only when missing, as root.
set -euo pipefail

need=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v qemu-system-aarch64 >/dev/null 2>&1 || need+=(qemu-system-arm)
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
[ -e /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v arch-test >/dev/null 2>&1 || need+=(arch-test)
command -v mkfs.ext4 >/dev/null 2>&1 || [ -x /usr/sbin/mkfs.ext4 ] || need+=(e2fsprogs)
command -v update-binfmts >/dev/null 2>&1 || [ -x /usr/sbin/update-binfmts ] || need+=(binfmt-support)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing Debian packages: ${need[*]}" >&2
    echo "system-deps: install them with: sudo apt-get install -y ${need[*]}" >&2
    echo "system-deps: (tests that need them are skipped with that reason)" >&2
    exit 0
  fi
  echo "system-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# binfmt for aarch64 (building the QEMU image runs arm64 programs through qemu-user-static).
if [ "$(id -u)" -eq 0 ]; then
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64 2>/dev/null || true
  fi
fi
exit 0

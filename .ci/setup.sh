#!/usr/bin/env bash
# Installs everything vmigrate needs on a fresh Debian 12 machine (as root), then builds it.
# Idempotent: packages already present are not fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev pkg-config
  qemu-system-x86 qemu-utils
  gcc gcc-multilib binutils make g++ python3
  util-linux iproute2 procps nftables
  prometheus systemd
  systemd-container debootstrap
  busybox-static stress-ng
)

bash .ci/install-missing.sh "Debian packages" "${DEBS[@]}"

bash .ci/lab-qemu.sh

echo "setup: npm ci (builds the native libvirt addon)"
npm ci --no-audit --no-fund --loglevel=error
echo "setup: building TypeScript"
npm run --silent build

#!/usr/bin/env bash
# Unpacks bookworm-backports' QEMU beside the system's, for the lab only (src/lab/qemu-engine.ts).
# Debian 12's QEMU 7.2 loses dirty pages under TCG, so Linux guests die after migration (docs/lab.md);
# QEMU 9.0 fixed that. Nothing of the system is replaced: each lab host bind-mounts this tree over
# the system's QEMU inside its own mount namespace. Idempotent: a tree that runs is kept.
set -euo pipefail
ROOT=${VMIGRATE_LAB_QEMU_TREE:-/opt/vmigrate-lab/qemu}
PKGS=(qemu-system-x86 qemu-system-common qemu-system-data seabios)

if "$ROOT/usr/bin/qemu-system-x86_64" --version >/dev/null 2>&1; then
  exit 0
fi
echo "setup: unpacking QEMU from bookworm-backports into $ROOT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/debs"
echo 'deb http://deb.debian.org/debian bookworm-backports main' > "$work/sources.list"
APT=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$work/lists" -o APT::Sandbox::User=root)
apt-get "${APT[@]}" update -qq
# apt-get download writes into the current directory; root-only temp dirs: no _apt sandbox (APT above)
(cd "$work/debs" && apt-get "${APT[@]}" download -qq "${PKGS[@]/%//bookworm-backports}")

# The libraries those packages need come from Debian 12 itself; the packages unpacked here are left out.
mapfile -t libs < <(
  for d in "$work"/debs/*.deb; do dpkg-deb -f "$d" Depends; done |
    tr ',' '\n' | sed -E 's/\|.*//; s/\(.*\)//; s/:any//; s/^ +| +$//g' |
    grep -v -E '^(qemu-system-(common|data|x86)|seabios)$' | grep -v '^$' | sort -u
)
bash "$(dirname "$0")/install-missing.sh" "the libraries the lab's QEMU needs" "${libs[@]}"

rm -rf "$ROOT.new"
mkdir -p "$ROOT.new"
for d in "$work"/debs/*.deb; do dpkg-deb -x "$d" "$ROOT.new"; done
"$ROOT.new/usr/bin/qemu-system-x86_64" --version | head -1
rm -rf "$ROOT"
mv "$ROOT.new" "$ROOT"

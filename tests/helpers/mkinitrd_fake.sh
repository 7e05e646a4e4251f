#!/bin/bash
# Builds the initramfs for the fake guest (fake_guest_init.sh as /init, static
# busybox) as an lz4 legacy cpio, the format the runner's VMs boot.
#   mkinitrd_fake.sh OUT
set -euo pipefail
out=${1:?usage: mkinitrd_fake.sh OUT}
here=$(cd "$(dirname "$0")" && pwd)
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "mkinitrd_fake: no static busybox at $busybox" >&2; exit 1; }
command -v cpio >/dev/null || { echo "mkinitrd_fake: cpio is missing" >&2; exit 1; }
command -v lz4 >/dev/null || { echo "mkinitrd_fake: lz4 is missing" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin"
cp "$busybox" "$tmp/bin/busybox"
cp "$here/fake_guest_init.sh" "$tmp/init"
chmod 0755 "$tmp/init" "$tmp/bin/busybox"
(cd "$tmp" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | lz4 -l -q -f - "$out"

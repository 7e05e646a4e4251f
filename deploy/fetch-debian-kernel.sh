#!/usr/bin/env bash
# Downloads Debian's stock cloud kernel (no sched_ext: an EEVDF baseline)
# with apt and unpacks its bzImage. Prints the path of the bzImage.
# Usage: deploy/fetch-debian-kernel.sh [DEST_DIR] [PACKAGE]
set -euo pipefail
dest=${1:-${KTSTR_CACHE_DIR:-$HOME/.cache/ktstr}/debian-kernel}
pkg=${2:-linux-image-6.12-cloud-amd64}
mkdir -p "$dest"
if [ -f "$dest/vmlinuz" ] && [ -f "$dest/package" ] && [ "$(cat "$dest/package")" = "$pkg" ]; then
    echo "$dest/vmlinuz"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
# The meta package names the versioned image package it depends on.
real=$pkg
if apt-cache show "$pkg" >/dev/null 2>&1; then :; else apt-get update -qq >&2; fi
dep=$(apt-cache depends "$pkg" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$dep" ] && real=$dep
apt-get download "$real" >&2
deb=$(ls ./*.deb | head -n1)
dpkg-deb -x "$deb" unpacked
img=$(ls unpacked/boot/vmlinuz-* | head -n1)
[ -n "$img" ] || { echo "fetch-debian-kernel: no vmlinuz in $deb" >&2; exit 1; }
cp "$img" "$dest/vmlinuz.tmp" && mv "$dest/vmlinuz.tmp" "$dest/vmlinuz"
cp unpacked/boot/config-* "$dest/config" 2>/dev/null || true
echo "$pkg" > "$dest/package"
echo "$real" > "$dest/image-package"
echo "$dest/vmlinuz"

#!/usr/bin/env bash
# Builds a kernel and its sched_ext schedulers into the kernel cache
# (${KTSTR_CACHE_DIR:-~/.cache/ktstr}/kernels/) with deploy/ktstr.kconfig:
# a thin wrapper around `ktstr-coord kernel build` that can also fetch
# Debian's kernel source first.
#   deploy/build-kernel.sh --source DIR [-j N] [--force]
#   deploy/build-kernel.sh --debian-source 6.12 [-j N] [--force]
# --debian-source installs linux-source-X.Y with apt (root or sudo) and
# unpacks it once into ${KTSTR_CACHE_DIR:-~/.cache/ktstr}/src/.
# Prints the verb's output (the cache entry); exit status as the verb's.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
coord=$(command -v ktstr-coord || echo "$here/build/coordinator/ktstr-coord")
[ -x "$coord" ] || { echo "build-kernel.sh: no ktstr-coord in PATH or '$coord'" >&2; exit 2; }
src="" deb="" args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --source) src=$2; shift ;;
        --debian-source) deb=$2; shift ;;
        -j) args+=(-j "$2"); shift ;;
        --force) args+=(--force) ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "build-kernel.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
    shift
done
if [ -n "$deb" ]; then
    [[ "$deb" =~ ^[0-9]+\.[0-9]+$ ]] || { echo "build-kernel.sh: --debian-source '$deb': want X.Y, e.g. 6.12" >&2; exit 2; }
    pkg=linux-source-$deb
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    if ! dpkg-query -W -f='${Status}' "$pkg" 2> /dev/null | grep -q "install ok installed"; then
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "$pkg"
    fi
    ver=$(dpkg-query -W -f='${Version}' "$pkg")
    src=${KTSTR_CACHE_DIR:-$HOME/.cache/ktstr}/src/$pkg
    if [ "$(cat "$src/.ktstr-unpacked" 2> /dev/null)" != "$ver" ]; then
        echo "build-kernel.sh: unpacking /usr/src/$pkg.tar.xz ($ver) into $src" >&2
        rm -rf "$src" "$src.tmp" && mkdir -p "$src.tmp"
        tar -xJf "/usr/src/$pkg.tar.xz" -C "$src.tmp" --strip-components=1
        echo "$ver" > "$src.tmp/.ktstr-unpacked"
        mv "$src.tmp" "$src"
    fi
fi
[ -n "$src" ] || { echo "build-kernel.sh: --source DIR or --debian-source X.Y is required" >&2; exit 2; }
exec "$coord" kernel build --source "$src" "${args[@]}"

#!/usr/bin/env bash
# Installs every Debian 12 package ktstr-fleet needs to build, run and test,
# then configures and builds it in ./build. Idempotent; run as root (or with
# sudo available). Usage: deploy/setup.sh [--no-build] [--builddir DIR]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
builddir="$here/build"
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --builddir) builddir=$2; shift ;;
        -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
    shift
done

packages=(
    # build
    gcc meson ninja-build pkg-config
    libczmq-dev libzmq3-dev libsodium-dev libmsgpack-dev libgit2-dev liblz4-dev
    libbpf-dev libelf-dev zlib1g-dev libzstd-dev libjansson-dev libfyaml-dev
    libsqlite3-dev libcmocka-dev
    # run: VMs and the guest's userland
    qemu-system-x86 busybox-static
    # tests and tools
    jq cpio lz4 iproute2 procps sqlite3
    # fuzzing (tests/fuzz/run.sh): clang with its libFuzzer runtime
    clang libclang-rt-14-dev
    # kernel builds (ktstr-coord kernel build, deploy/build-kernel.sh): the
    # schedulers' BPF code needs clang >= 16 (Debian 12: clang-19), BTF needs
    # pahole (dwarves); the vm test builds Debian's linux-source-6.12
    make flex bison bc libssl-dev dwarves clang-19 llvm-19 xz-utils
)

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "setup: all ${#packages[@]} packages present"
fi

if [ "$build" -eq 1 ]; then
    if [ ! -f "$builddir/build.ninja" ]; then
        meson setup "$builddir" "$here"
    fi
    ninja -C "$builddir"
fi

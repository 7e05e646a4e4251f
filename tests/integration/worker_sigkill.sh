#!/bin/bash
# QEMU never outlives the process that started it, even when that process
# dies by SIGKILL and has no chance to clean up (PR_SET_PDEATHSIG). Four
# ways in, each killed with kill -9 while its VM is up:
#   1. kt-vm-tool mid-boot (a guest that never says hello)
#   2. kt-vm-tool mid-run (the guest said hello and then went silent)
#   3. ktstr-worker check during its TCG canary boot
#   4. ktstr-worker run-cell during its cell
# Each time: the VM's QEMU must be gone within a few seconds.
# Env: KT_BUILD, KT_SRC, KT_WORKER, KT_INIT (set by tests/integration/meson.build).
set -u

: "${KT_BUILD:?KT_BUILD must point at the build dir}"
: "${KT_SRC:?KT_SRC must point at the source dir}"
kernel=${KT_SANDBOX_KERNEL:-$KT_SRC/../shared/kernels/sched-ext-6.12.117/bzImage}
vmtool=$KT_BUILD/tests/kt-vm-tool
worker=${KT_WORKER:-$KT_BUILD/worker/ktstr-worker}

[ -r "$kernel" ] || { echo "# SKIP: fixture kernel not found at '$kernel'"; exit 77; }
command -v qemu-system-x86_64 >/dev/null || { echo "# SKIP: qemu-system-x86_64 not installed"; exit 77; }
for prog in lz4 cpio; do
    command -v "$prog" >/dev/null || { echo "# SKIP: $prog not installed"; exit 77; }
done
[ -x /bin/busybox ] || { echo "# SKIP: /bin/busybox not installed"; exit 77; }
[ -x "$vmtool" ] || { echo "Bail out! kt-vm-tool not found at '$vmtool'"; exit 1; }
[ -x "$worker" ] || { echo "Bail out! ktstr-worker not found at '$worker'"; exit 1; }

dir=$(mktemp -d /tmp/kt-sigkill.XXXXXX)
bgpids=()
seen_qemu=()
cleanup() {
    for p in "${bgpids[@]}"; do kill -9 "$p" 2>/dev/null; done
    # Never leave a VM behind, whatever happened above (a failing run of
    # this test must not leak the QEMUs it is about).
    for p in $(qemu_pids "$dir") "${seen_qemu[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

failures=0
n=0
result() { # ok|fail, description
    n=$((n + 1))
    if [ "$1" = ok ]; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2"
        failures=$((failures + 1))
    fi
}

# Live (not zombie) qemu-system processes whose command line contains $1.
qemu_pids() {
    local pat=$1 p cmd state
    for p in /proc/[0-9]*; do
        cmd=$({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null) || continue
        case $cmd in
        *qemu-system*"$pat"*)
            state=$(awk '/^State:/ {print $2}' "$p/status" 2>/dev/null)
            [ -n "$state" ] && [ "$state" != Z ] && echo "${p#/proc/}"
            ;;
        esac
    done
}

# Live qemu-system children of process $1.
qemu_children() {
    local parent=$1 p
    for p in /proc/[0-9]*; do
        [ "$(awk '/^PPid:/ {print $2}' "$p/status" 2>/dev/null)" = "$parent" ] || continue
        case $({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null) in
        *qemu-system*) echo "${p#/proc/}" ;;
        esac
    done
}

# Waits up to $2 seconds for "$1" (a command) to print something.
wait_for() {
    local cmd=$1 secs=$2 i out
    for ((i = 0; i < secs * 10; i++)); do
        out=$($cmd)
        [ -n "$out" ] && { echo "$out"; return 0; }
        sleep 0.1
    done
    return 1
}

# Kills $1 (the parent) with SIGKILL; the QEMU pids $2... must all be gone
# within 5 s. Prints how long they took.
kill_and_expect_gone() {
    local parent=$1
    shift
    local qpids=("$@") t0 t1 alive p
    seen_qemu+=("$@")
    t0=$(date +%s%N)
    kill -9 "$parent"
    wait "$parent" 2>/dev/null
    for ((i = 0; i < 50; i++)); do
        alive=""
        for p in "${qpids[@]}"; do
            if [ -d "/proc/$p" ] && [ "$(awk '/^State:/ {print $2}' "/proc/$p/status" 2>/dev/null)" != Z ]; then
                alive="$alive $p"
            fi
        done
        [ -z "$alive" ] && break
        sleep 0.1
    done
    t1=$(date +%s%N)
    echo "# qemu ${qpids[*]} gone after $(((t1 - t0) / 1000000)) ms${alive:+ (still alive:$alive)}"
    [ -z "$alive" ]
}

img=$dir/fake.img
if ! "$KT_SRC/tests/helpers/mkinitrd_fake.sh" "$img"; then
    echo "Bail out! cannot build the fake guest's initrd"
    exit 1
fi

# 1. kt-vm-tool, mid-boot.
wd=$dir/boot
mkdir -p "$wd"
"$vmtool" --kernel "$kernel" --initrd "$img" --workdir "$wd" --topology tiny-1llc \
    --append ktmode=hang --boot-timeout 300000 >"$dir/boot.out" 2>&1 &
tool=$!
bgpids+=("$tool")
if q=$(wait_for "qemu_pids $wd" 20); then
    sleep 1 # let the guest kernel get going
    if kill_and_expect_gone "$tool" $q; then
        result ok "kt-vm-tool killed mid-boot: its QEMU is gone"
    else
        result fail "kt-vm-tool killed mid-boot: its QEMU survived"
    fi
else
    cat "$dir/boot.out"
    result fail "kt-vm-tool mid-boot: no QEMU with '$wd' appeared"
fi
[ -z "$(qemu_pids "$wd")" ] && result ok "no QEMU left for '$wd'" || result fail "a QEMU is left for '$wd'"

# 2. kt-vm-tool, mid-run: wait for the guest's hello first. kt-vm-tool is
#    the bare runner, which boots once: when QEMU died on its own before the
#    hello (QEMU 7.2's TCG crashed once in CI in memory_region_dispatch_write,
#    SIGSEGV; the worker boots such a VM again, tests/vm/boot_retry.sh), this
#    part is tried once more: nothing was there to kill.
hello() { grep -q 'message t=hello' "$dir/run.out" && echo yes; }
for try in 1 2; do
    wd=$dir/run$try
    mkdir -p "$wd"
    "$vmtool" --kernel "$kernel" --initrd "$img" --workdir "$wd" --topology tiny-2llc \
        --append ktmode=hello-hang --cell-type cell --run-timeout 300000 --boot-timeout 120000 \
        --messages >"$dir/run.out" 2>&1 &
    tool=$!
    bgpids+=("$tool")
    if q=$(wait_for "qemu_pids $wd" 20) && wait_for hello 120 >/dev/null; then
        if kill_and_expect_gone "$tool" $q; then
            result ok "kt-vm-tool killed mid-run (after hello): its QEMU is gone"
        else
            result fail "kt-vm-tool killed mid-run: its QEMU survived"
        fi
    elif [ "$try" = 1 ] && grep -q 'qemu=signal' "$dir/run.out" &&
        grep -q 'reached=boot' "$dir/run.out"; then
        echo "# QEMU died on its own before the hello: $(grep '^error_text=' "$dir/run.out")"
        wait "$tool" 2>/dev/null
        continue
    else
        cat "$dir/run.out"
        result fail "kt-vm-tool mid-run: no QEMU or no hello from the guest"
    fi
    break
done
[ -z "$(qemu_pids "$wd")" ] && result ok "no QEMU left for '$wd'" || result fail "a QEMU is left for '$wd'"

# 3. ktstr-worker check, during its TCG canary (its workdir is a temporary
#    directory: find QEMU as the worker's child).
"$worker" check --accel tcg --kernel "$kernel" --image-dir "$dir" >"$dir/check.out" 2>&1 &
wpid=$!
bgpids+=("$wpid")
if q=$(wait_for "qemu_children $wpid" 30); then
    if kill_and_expect_gone "$wpid" $q; then
        result ok "ktstr-worker check killed during its canary: QEMU is gone"
    else
        result fail "ktstr-worker check killed: its QEMU survived"
    fi
else
    cat "$dir/check.out"
    result fail "ktstr-worker check: no canary QEMU appeared"
fi

# 4. ktstr-worker run-cell, during the cell.
mkdir -p "$dir/cell-out"
KTSTR_IMAGE_DIR=$dir "$worker" run-cell --kernel "$kernel" --topology tiny-2llc \
    --scenario steady --duration 60 --accel tcg --out "$dir/cell-out" >"$dir/cell.out" 2>&1 &
wpid=$!
bgpids+=("$wpid")
if q=$(wait_for "qemu_children $wpid" 30); then
    sleep 3 # into the run
    if kill_and_expect_gone "$wpid" $q; then
        result ok "ktstr-worker run-cell killed mid-cell: QEMU is gone"
    else
        result fail "ktstr-worker run-cell killed: its QEMU survived"
    fi
else
    cat "$dir/cell.out"
    result fail "ktstr-worker run-cell: no QEMU appeared"
fi

echo "1..$n"
[ "$failures" -eq 0 ]

# Debian's stock cloud kernel (no sched_ext) passes an EEVDF cell through the
# same runner. The kernel is fetched with apt by the test set-up.
source "$(dirname "$0")/lib.sh"
cache=${KTSTR_CACHE_DIR:-$HOME/.cache/ktstr}/debian-kernel
if ! img=$("$KT_SRC/deploy/fetch-debian-kernel.sh" "$cache" 2> "$TMP/fetch.err"); then
    echo "SKIP: could not fetch Debian's cloud kernel with apt:"; cat "$TMP/fetch.err"
    exit 77
fi
run_cell debian --kernel "$img" --topology tiny-2llc --scenario steady --duration 3
# Under TCG with a thread per vCPU, the kernel's live code patching
# (text_poke_bp: an int3 over a jump site while the rest is written, then
# the int3 taken away) is now and then executed half-done by another vCPU
# from stale translated code: the stock kernel, full of static keys, died at
# boot once in CI with "Oops: int3" in enqueue_timer. The worker boots such
# a VM again (boot_retries in the sidecar, tests/vm/boot_retry.sh); say so.
if [ "$(field '.boot_retries | length')" -gt 0 ] 2>/dev/null; then
    echo "# booted again after: $(field '[.boot_retries[].cause] | join(" / ")')"
fi
expect "exit status 0" eq "$RC" 0
expect "verdict pass" eq "$(field .verdict)" pass
expect "Debian's release" contains "$(field .kernel_version)" "deb12"
expect "guest saw the topology" eq "$(field .observed_topology.label)" 1n2l2c1t

# Asking for a sched_ext scheduler on a kernel without sched_ext is an error,
# not a pass under EEVDF.
if [ -x "$BIN/scx_simple" ]; then
    run_cell debian_scx --kernel "$img" --topology tiny-1llc --scenario steady \
        --scheduler "$BIN/scx_simple" --duration 2
    expect "scx on a kernel without sched_ext: error" eq "$(field .verdict)" error
    expect "reason says so" contains "$(field .reason)" "sched_ext"
fi
finish

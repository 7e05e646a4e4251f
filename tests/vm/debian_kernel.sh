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
# from stale translated code, after the kernel's int3 handler has stopped
# expecting it: the stock kernel, full of static keys, dies at boot with
# "Oops: int3" at a patch site (CI saw it once, in enqueue_timer during
# inet_init). That is the emulator, not the kernel or the harness. The
# harness must report it as what it saw, the kernel's panic at boot, and
# the cell is run once more.
if [ "$(field .verdict)" = fail ] && [ "$(field .accel)" = tcg ] &&
   [ "$(field .phase)" = boot ] && [[ "$(field .console_tail)" == *"Oops: int3"* ]]; then
    echo "# TCG trapped on a half-patched jump at boot: $(field .reason)"
    expect "int3 trap at boot: reported as the kernel's panic" \
        contains "$(field .reason)" "Kernel panic"
    run_cell debian_again --kernel "$img" --topology tiny-2llc --scenario steady --duration 3
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

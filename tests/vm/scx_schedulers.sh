# The kernel's example sched_ext schedulers enable, survive the steady
# scenario and pass; the sidecar names the scheduler and its ops.
source "$(dirname "$0")/lib.sh"
need_fixture
for s in simple central flatcg; do
    run_cell "scx_$s" --kernel "$KERNEL" --topology tiny-2llc --scenario steady \
        --scheduler "$BIN/scx_$s" --duration 3
    expect "scx_$s: exit status 0" eq "$RC" 0
    expect "scx_$s: verdict pass" eq "$(field .verdict)" pass
    expect "scx_$s: sidecar names the scheduler" eq "$(field .scheduler)" "scx_$s"
    expect "scx_$s: sched_ext ops read from the kernel" eq "$(field .scheduler_state.ops)" "$s"
    expect "scx_$s: still enabled at the end" eq "$(field .scheduler_state.state)" enabled
done
finish

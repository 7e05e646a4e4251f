# The built-in catalog on tiny-2llc under scx_simple: every scenario passes,
# each op of its steps shows in the timeline as a stimulus, and isolation is
# judged phase by phase. Then the per-phase isolation check is made to fail:
# a cpuset change (and a task move) recorded but never applied
# (ktstr.skip_op) leaves workers on CPUs the timeline says they lost.
source "$(dirname "$0")/lib.sh"
need_fixture
COORD=${KT_COORD:-$KT_BUILD/coordinator/ktstr-coord}
catalog=$("$COORD" scenarios --json | jq -r '.[].name' | grep -vxE 'steady|steady_llc|oversubscribed|pipe_pingpong|futex_pingpong')
expect "the catalog lists 14 scenarios with steps, affinities or nesting" eq "$(echo "$catalog" | wc -l)" 14
for s in $catalog; do
    run_cell "$s" --kernel "$KERNEL" --topology tiny-2llc --scenario "$s" \
        --scheduler "$BIN/scx_simple" --duration 3
    expect "$s: verdict pass" eq "$(field .verdict)" pass
    ops=$("$COORD" scenarios --yaml "$s" | grep -c '  - op: ' || true)
    stim=$(field '[.timeline[] | select(.kind == "stimulus")] | length')
    if [ "$ops" -gt 0 ]; then
        # A loop applies its ops more than once.
        expect "$s: every op of its steps is a stimulus in the timeline ($stim >= $ops)" \
            test "$stim" -ge "$ops"
    fi
    if "$COORD" scenarios --yaml "$s" | grep -qE '^steps:|affinity:|deferred:'; then
        expect "$s: isolation judged phase by phase" contains \
            "$(field '[.checks[] | select(.name == "cpuset_isolation") | .detail] | join(";")')" \
            "phases"
    fi
done

export KTSTR_TEST_GUEST_CMDLINE=ktstr.skip_op=set_cpuset
run_cell skip_set_cpuset --kernel "$KERNEL" --topology tiny-2llc --scenario cpuset_apply \
    --scheduler "$BIN/scx_simple" --duration 3
expect "cpuset_apply with its cpusets never applied: fail" eq "$(field .verdict)" fail
expect "...exit status 1" eq "$RC" 1
expect "...the reason names cpuset_isolation" contains "$(field .reason)" cpuset_isolation
expect "...a failed check names the phase after the step" contains \
    "$(field '[.checks[] | select(.passed == false) | .detail] | join(";")')" "phase 2 (after steps[1])"
export KTSTR_TEST_GUEST_CMDLINE=ktstr.skip_op=move_tasks
run_cell skip_move --kernel "$KERNEL" --topology tiny-2llc --scenario nested_task_move \
    --scheduler "$BIN/scx_simple" --duration 3
expect "nested_task_move with the move never done: fail on cpuset_isolation" contains \
    "$(field .reason)" cpuset_isolation
unset KTSTR_TEST_GUEST_CMDLINE
finish

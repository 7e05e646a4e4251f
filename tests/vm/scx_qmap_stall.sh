# scx_qmap -t 3 stalls every third user task: the kernel's watchdog disables
# it and the cell must fail, naming the stall. Never a pass.
source "$(dirname "$0")/lib.sh"
need_fixture
run_cell qmap --kernel "$KERNEL" --topology tiny-2llc --scenario steady \
    --scheduler "$BIN/scx_qmap" --sched-args "-t 3" --duration 10
expect "exit status 1 (fail)" eq "$RC" 1
expect "verdict fail" eq "$(field .verdict)" fail
expect "reason names the stall" contains "$(field .reason)" "runnable task stall"
# The line the kernel prints after "disabled (...)" says which task stalled.
expect "reason carries the kernel's message line" contains "$(field .reason)" "failed to run for"
expect "scheduler_state.exit names the kind" eq "$(field .scheduler_state.exit.kind)" "runnable task stall"
expect "scheduler_state.exit is an error exit" eq "$(field .scheduler_state.exit.error)" true
expect "scheduler_state.exit.message names the task" \
    contains "$(field .scheduler_state.exit.message)" "failed to run for"
expect "scheduler_state.exit has a backtrace" test "$(field '.scheduler_state.exit.backtrace | length')" -gt 0
expect "kernel log kept" contains "$(field '.kernel_log | join(" ")')" "qmap"
finish

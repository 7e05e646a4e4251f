# Payload cells: a static binary run in the guest as the workload. One that
# prints JSON and exits 0 passes with its metrics; a metric check it misses
# fails naming the check; an unexpected exit status fails; a payload that
# hangs is killed at its timeout and is an error; a payload beside a
# scenario's workers runs with them under scx_simple.
source "$(dirname "$0")/lib.sh"
need_fixture
if ! command -v gcc > /dev/null; then
    echo "SKIP: gcc is needed to build the test payloads"
    exit 77
fi
cat > "$TMP/bench.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    int code = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--exit") == 0 && i + 1 < argc) {
            code = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--hang") == 0) {
            for (;;)
                pause();
        } else if (strcmp(argv[i], "--spin") == 0 && i + 2 < argc) {
            /* N processes spinning for S seconds. */
            int n = atoi(argv[i + 1]), secs = atoi(argv[i + 2]);
            i += 2;
            for (int k = 0; k < n; k++) {
                if (fork() == 0) {
                    time_t end = time(NULL) + secs;
                    while (time(NULL) < end)
                        ;
                    _exit(0);
                }
            }
            while (wait(NULL) > 0)
                ;
        }
    }
    printf("bench: %d argument(s)\n", argc - 1);
    fprintf(stderr, "bench: a line on stderr\n");
    printf("{\"ops\": 123, \"lat\": {\"p99\": 4.5}}\n");
    return code;
}
C
if ! gcc -static -O1 -o "$TMP/bench" "$TMP/bench.c" 2> "$TMP/gcc.log"; then
    echo "SKIP: gcc -static failed (no static libc?):"; cat "$TMP/gcc.log"
    exit 77
fi
common=(--kernel "$KERNEL" --topology tiny-1llc --payload "$TMP/bench")

run_cell pass "${common[@]}" --payload-check 'ops>=100' --payload-check 'lat.p99=1..5'
expect "exit status 0" eq "$RC" 0
expect "verdict pass" eq "$(field .verdict)" pass
expect "ops metric" eq "$(field .payload.metrics.ops)" 123
expect "lat.p99 metric" eq "$(field '.payload.metrics["lat.p99"]')" 4.5
expect "exit code 0" eq "$(field .payload.exit_code)" 0
expect "output kept" contains "$(field .payload.output_head)" "a line on stderr"
expect "wall time measured" eq "$(field '.payload.wall_ms > 0')" true
expect "three checks ran" eq "$(field '[.checks[].name] | sort | join(",")')" \
    "payload_exit,payload_metric,payload_metric"

run_cell ops "${common[@]}" --payload-check 'ops>=1000'
expect "exit status 1" eq "$RC" 1
expect "verdict fail" eq "$(field .verdict)" fail
expect "reason names the check" contains "$(field .reason)" "ops>=1000: measured 123"
expect "failed check listed" eq "$(field '[.failed_check_list[].name] | join(",")')" payload_metric

run_cell exit3 "${common[@]}" --payload-args "--exit 3"
expect "exit status 1" eq "$RC" 1
expect "verdict fail" eq "$(field .verdict)" fail
expect "reason says status 3" contains "$(field .reason)" "exited with status 3, expected 0"
run_cell exit3ok "${common[@]}" --payload-args "--exit 3" --payload-check 'exit==3'
expect "exit==3 expected: pass" eq "$(field .verdict)" pass

run_cell hang "${common[@]}" --payload-args "--hang" --payload-timeout 3
expect "exit status 2" eq "$RC" 2
expect "verdict error" eq "$(field .verdict)" error
expect "reason says timeout" contains "$(field .reason)" "timed out after 3000 ms: killed"
expect "timed_out recorded" eq "$(field .payload.timed_out)" true
expect "killed by SIGKILL" eq "$(field .payload.signal)" 9

# A scheduler that fails while the payload runs: the cell fails with the
# kernel's words, and the payload is killed rather than waited for.
run_cell stall --kernel "$KERNEL" --topology tiny-2llc --scheduler "$BIN/scx_qmap" \
    --sched-args "-t 3" --payload "$TMP/bench" --payload-args "--spin 6 60" --payload-timeout 90
expect "stall under the payload: exit status 1" eq "$RC" 1
expect "stall: verdict fail" eq "$(field .verdict)" fail
expect "stall: reason names it" contains "$(field .reason)" "runnable task stall"
expect "stall: the payload was stopped early" eq "$(field '.payload.wall_ms < 60000')" true
expect "stall: not a timeout" eq "$(field .payload.timed_out)" false
expect "stall: killed by us" eq "$(field .payload.killed)" true
expect "stall: its exit status is not judged" eq "$(field 'any(.checks[]; .name == "payload_exit")')" false

run_cell beside --kernel "$KERNEL" --topology tiny-2llc --scenario steady \
    --scheduler "$BIN/scx_simple" --payload "$TMP/bench" --payload-check 'ops>=1'
expect "beside steady under scx_simple: pass" eq "$(field .verdict)" pass
expect "the workers ran too" eq "$(field '[.cgroups[].work_units] | add > 0')" true
expect "scheduler enabled" eq "$(field .scheduler_state.ops)" simple
finish

# Payloads declared in files, end to end on the fixture kernel under EEVDF:
# a gauntlet's payloads: entries (a static binary built here, printing a
# JSON object with a metric) run through `ktstr-coord run --gauntlet` on
# the embedded worker, the binary shipped as an artifact: the cell whose
# check holds passes, the one whose check misses fails naming the metric.
# `list --gauntlet` shows the payload cells, and a scenario file's payload:
# runs through `ktstr-worker run-cell --scenario FILE.yaml` beside its
# workers.
source "$(dirname "$0")/lib.sh"
need_fixture
COORD=${KT_COORD:-$KT_BUILD/coordinator/ktstr-coord}
if [ ! -x "$COORD" ]; then
    echo "SKIP: needs $COORD"
    exit 77
fi
if ! command -v cc > /dev/null; then
    echo "SKIP: cc is needed to build the test payload"
    exit 77
fi
mkdir -p "$TMP/g/bin"
cat > "$TMP/bench.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv)
{
    int ops = argc > 1 ? atoi(argv[1]) : 123;
    printf("bench: %d ops\n{\"ops\": %d, \"lat\": {\"p99\": 4.5}}\n", ops, ops);
    return 0;
}
C
if ! cc -static -O1 -o "$TMP/g/bin/bench" "$TMP/bench.c" 2> "$TMP/cc.log"; then
    echo "SKIP: cc -static failed (no static libc?):"; cat "$TMP/cc.log"
    exit 77
fi

cat > "$TMP/g/gauntlet.yaml" <<YAML
kernels: ["$KERNEL"]
topologies: [tiny-1llc]
payloads:
  - name: enough
    binary: bin/bench
    args: ["150"]
    checks: ["ops>=100", "lat.p99=1..5", "exit==0"]
    timeout: 60s
  - name: short
    binary: bin/bench
    checks: ["ops>=1000"]
    timeout: 60s
YAML

list=$("$COORD" list --gauntlet "$TMP/g/gauntlet.yaml" 2> "$TMP/list.err")
RC=$?
echo "$list"
expect "list: exit status 0" eq "$RC" 0
expect "list: the passing payload's cell" contains "$list" "gauntlet/enough/tiny-1llc/eevdf/"
expect "list: the failing payload's cell" contains "$list" "gauntlet/short/tiny-1llc/eevdf/"
expect "list: two cells" eq "$(printf '%s\n' "$list" | wc -l)" 2
expect "list: the summary counts the payloads" contains "$(cat "$TMP/list.err")" "2 payloads"

"$COORD" run --gauntlet "$TMP/g/gauntlet.yaml" --results "$TMP/res" --progress plain \
    > "$TMP/run.out" 2>&1
RC=$?
cat "$TMP/run.out" | tail -n 20
RUN_DIR=$(ls -d "$TMP/res"/2*/ 2>/dev/null | head -n1)
expect "run: exit status 1 (a cell failed)" eq "$RC" 1
SIDECAR=$(ls "$RUN_DIR"/*/gauntlet__enough__*.ktstr.json 2>/dev/null | head -n1)
expect "enough: a sidecar" test -n "$SIDECAR"
expect "enough: verdict pass" eq "$(field .verdict)" pass
expect "enough: the payload ran with its argument" eq "$(field '.payload.args | join(" ")')" 150
expect "enough: its metric" eq "$(field .payload.metrics.ops)" 150
expect "enough: under EEVDF" eq "$(field .scheduler)" eevdf
SIDECAR=$(ls "$RUN_DIR"/*/gauntlet__short__*.ktstr.json 2>/dev/null | head -n1)
expect "short: a sidecar" test -n "$SIDECAR"
expect "short: verdict fail" eq "$(field .verdict)" fail
expect "short: reason names the metric" contains "$(field .reason)" "ops>=1000: measured 123"
expect "short: the failed check" eq "$(field '[.failed_check_list[].name] | join(",")')" \
    payload_metric
expect "run.json lists 2 cells" eq "$(jq '.cells | length' "$RUN_DIR/run.json")" 2

# A scenario file with a payload beside one cgroup of workers.
cat > "$TMP/g/beside.yaml" <<YAML
name: beside
duration: 2s
cgroups: [{name: cg_0, workers: 2}]
payload: {binary: bin/bench, args: "200", checks: ["ops>=200"]}
YAML
run_cell scenario_payload --kernel "$KERNEL" --topology tiny-1llc --scenario "$TMP/g/beside.yaml"
expect "scenario payload: exit status 0" eq "$RC" 0
expect "scenario payload: verdict pass" eq "$(field .verdict)" pass
expect "scenario payload: its metric" eq "$(field .payload.metrics.ops)" 200
expect "scenario payload: the workers ran too" eq "$(field '[.cgroups[].work_units] | add > 0')" true
finish

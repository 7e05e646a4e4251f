# Bad input gets a clear error naming what and where, and never a pass.
source "$(dirname "$0")/lib.sh"
need_fixture
run_cell missing --kernel "$TMP/no-such-bzImage" --topology tiny-1llc --scenario steady
expect "missing kernel: exit 2" eq "$RC" 2
expect "missing kernel: verdict error" eq "$(field .verdict)" error
expect "missing kernel: reason names the path" contains "$(field .reason)" "no-such-bzImage"

head -c 4194304 /dev/urandom > "$TMP/random-bzImage"
t0=$(date +%s)
run_cell random --kernel "$TMP/random-bzImage" --topology tiny-1llc --scenario steady --accel tcg
t1=$(date +%s)
expect "random kernel: exit 2" eq "$RC" 2
expect "random kernel: verdict error" eq "$(field .verdict)" error
expect "random kernel: phase boot" eq "$(field .phase)" boot
expect "random kernel: within the boot timeout" test $((t1 - t0)) -le 60
expect "random kernel: console log kept" test -f "$(field .console_log)"

printf 'name: broken\ncgroups:\n  - name: cg_0\n    workers: [1\n' > "$TMP/broken.yaml"
"$KT_WORKER" run-cell --kernel "$KERNEL" --topology tiny-1llc --scenario "$TMP/broken.yaml" \
    --out "$TMP" > /dev/null 2> "$TMP/broken.err"
rc=$?
expect "malformed YAML: exit 2" eq "$rc" 2
expect "malformed YAML: file:line:col" grep -Eq "broken.yaml:[0-9]+:[0-9]+:" "$TMP/broken.err"

printf 'name: typo\ncgroups:\n  - name: cg_0\n    workers: 2\n    work: spinn\n' > "$TMP/typo.yaml"
"$KT_WORKER" run-cell --kernel "$KERNEL" --topology tiny-1llc --scenario "$TMP/typo.yaml" \
    --out "$TMP" > /dev/null 2> "$TMP/typo.err"
expect "unknown work type: names line 5" grep -q "typo.yaml:5:" "$TMP/typo.err"

"$KT_WORKER" run-cell --kernel "$KERNEL" --topology 3,2,2,1 --scenario steady --out "$TMP" \
    > /dev/null 2> "$TMP/topo.err"
rc=$?
expect "bad topology: exit 2" eq "$rc" 2
expect "bad topology: says why" grep -q "topology '3,2,2,1'" "$TMP/topo.err"
finish

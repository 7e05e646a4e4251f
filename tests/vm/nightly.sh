# deploy/nightly.sh, three nights on the fixture kernel (EEVDF, steady, one
# cell, embedded worker): the first has nothing to compare (exit 0), the
# second compares with the first (no regression: exit 0, compare.txt and
# compare.json beside the run), the third runs a gauntlet whose spread
# bound (0.01 %) the cell cannot meet: exit 1, and compare.txt names the
# regression; the fourth relaxes it again (a fix: exit 0) and history calls
# the cell flaky. A run that cannot start is exit 2.
source "$(dirname "$0")/lib.sh"
need_fixture
COORD=${KT_COORD:-$KT_BUILD/coordinator/ktstr-coord}
[ -x "$COORD" ] || { echo "SKIP: needs $COORD"; exit 77; }
g() {  # g FILE [CHECKS]
    {
        echo "kernels: [\"$KERNEL\"]"
        echo "schedulers:"
        echo "  - name: eevdf"
        [ -n "${2:-}" ] && echo "    checks: $2"
        echo "topologies: [tiny-2llc]"
        echo "scenarios: [steady]"
        echo "duration: 2s"
    } > "$1"
}
g "$TMP/ok.yaml"
g "$TMP/tight.yaml" "{fairness_spread: 0.01}"
R=$TMP/nights
night() {  # night N GAUNTLET
    KTSTR_COORD=$COORD bash "$KT_SRC/deploy/nightly.sh" --gauntlet "$2" --results "$R" \
        > "$TMP/night$1.out" 2>&1
    RC=$?
    tail -n 3 "$TMP/night$1.out"
    local d
    d=$(latest)
    [ -n "$d" ] && jq -r '"  sidecar: " + .verdict + " [" + .phase + "] " + .reason' "$d"*/*.ktstr.json
}
latest() { ls -d "$R"/2*/ 2>/dev/null | sort | tail -n 1; }

night 1 "$TMP/ok.yaml"
expect "night 1: exit 0" eq "$RC" 0
expect "night 1: nothing to compare" grep -q "nothing to compare yet" "$TMP/night1.out"
night 2 "$TMP/ok.yaml"
expect "night 2: exit 0 (no regression)" eq "$RC" 0
d=$(latest)
expect "night 2: compare.txt beside the run" test -s "${d}compare.txt"
expect "night 2: compare.json says no regression" \
    eq "$(jq -r .counts.regression "${d}compare.json" 2> /dev/null)" 0
night 3 "$TMP/tight.yaml"
expect "night 3: exit 1 (a regression)" eq "$RC" 1
d=$(latest)
expect "night 3: compare.txt names the cell" \
    grep -q "gauntlet/steady/tiny-2llc/eevdf  pass -> fail" "${d}compare.txt"
expect "night 3: says REGRESSIONS" grep -q "REGRESSIONS against the previous run" \
    "$TMP/night3.out"
# The bound relaxed again: a fix, no regression; the cell's history has
# changed twice (pass, pass, fail, pass): flaky.
night 4 "$TMP/ok.yaml"
expect "night 4: exit 0 (a fix is no regression)" eq "$RC" 0
d=$(latest)
expect "night 4: compare.txt lists the fix" grep -q "^fixes: " "${d}compare.txt"
"$COORD" history 'gauntlet/steady/*' --results "$R" > "$TMP/hist.txt" 2>&1
cat "$TMP/hist.txt"
expect "history: 4 runs, 3 passed, changed twice: flaky" \
    grep -q "4 run(s), 3 passed; fail -> pass in run .*; the verdict changed 2 times: flaky" \
    "$TMP/hist.txt"
expect "history --json: verdict_changes 2" \
    eq "$("$COORD" history --results "$R" --json | jq '.[0].verdict_changes')" 2
KTSTR_COORD=$COORD bash "$KT_SRC/deploy/nightly.sh" --gauntlet "$TMP/missing.yaml" \
    --results "$R" > "$TMP/night5.out" 2>&1
expect "a gauntlet that does not exist: exit 2" eq "$?" 2
finish
